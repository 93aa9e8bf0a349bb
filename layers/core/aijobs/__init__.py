"""aijobs: asynchronous AI-inference jobs on AWS Lambda."""

__version__ = "0.1.0"  # as pyproject.toml says (tests/unit/test_version.py): every answer names it
