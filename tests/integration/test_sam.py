"""The SAM CLI accepts the template and builds the stack offline: no Docker, no AWS account."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.sam


def _sam(*args: str) -> subprocess.CompletedProcess[str]:
    # No credentials must be needed: hide any the caller has.
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    return subprocess.run(
        ["bash", str(ROOT / "scripts" / "sam.sh"), *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )


def test_sam_validate_lint_accepts_the_template() -> None:
    result = _sam("validate", "--lint")

    assert result.returncode == 0, result.stdout + result.stderr


def test_sam_build_bundles_an_arm64_layer_and_thin_handlers(tmp_path: Path) -> None:
    build_dir = tmp_path / "build"

    result = _sam("build", "--build-dir", str(build_dir))

    assert result.returncode == 0, result.stdout + result.stderr
    site = build_dir / "CoreLayer" / "python"
    for package in ("fastapi", "mangum", "pydantic", "aws_lambda_powertools", "openai", "aijobs", "croniter",
                    "tzdata"):
        assert (site / package / "__init__.py").is_file(), package
    assert list((site / "pydantic_core").glob("*.cpython-313-aarch64-linux-gnu.so"))
    assert not (site / "aijobs" / "local").exists()
    assert not (site / "boto3").exists()
    assert (build_dir / "ApiFunction" / "app.py").is_file()
    assert (build_dir / "WorkerFunction" / "app.py").is_file()
    assert (build_dir / "WebhookFunction" / "app.py").is_file()
    for package in ("standardwebhooks", "httpx", "certifi"):  # what the webhook sender needs at run time
        assert (site / package / "__init__.py").is_file(), package
    assert (build_dir / "SchedulerFunction" / "app.py").is_file()
    assert (build_dir / "template.yaml").is_file()
