"""aijobs: asynchronous AI-inference jobs on AWS Lambda."""
