"""The SAM CLI accepts the template and builds the stack offline: no Docker, no AWS account."""

from __future__ import annotations

import json
import os
import subprocess
from importlib.metadata import Distribution
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[2]
# Lambda's python3.13 on arm64, for the markers of a package's requirements
TARGET = {"python_version": "3.13", "python_full_version": "3.13.0", "sys_platform": "linux",
          "platform_system": "Linux", "platform_machine": "aarch64", "os_name": "posix",
          "implementation_name": "cpython", "platform_python_implementation": "CPython", "extra": ""}

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
                    "tzdata", "sse_starlette"):
        assert (site / package / "__init__.py").is_file(), package
    assert list((site / "pydantic_core").glob("*.cpython-313-aarch64-linux-gnu.so"))
    assert not (site / "aijobs" / "local").exists()
    # boto3 is bundled: the runtime's may predate the s3vectors client that the vector index uses
    assert (site / "boto3" / "__init__.py").is_file() and (site / "botocore" / "data" / "s3vectors").is_dir()
    assert (build_dir / "ApiFunction" / "app.py").is_file()
    assert (build_dir / "WorkerFunction" / "app.py").is_file()
    # the tokenizer (admission's token counts, a stopped call's usage) ships its encodings, for arm64, in the layer
    tokenizer = site / "bpe_openai"
    assert (tokenizer / "data" / "o200k_base.tiktoken.gz").is_file() and (tokenizer / "_bindings.abi3.so").is_file()
    assert not (build_dir / "WorkerFunction" / "bpe_openai").exists()
    # Lambda refuses a function whose code and layers pass 250 MB unzipped
    layer_mb = _size_mb(build_dir / "CoreLayer")
    for function in ("ApiFunction", "StreamFunction", "WorkerFunction", "SchedulerFunction"):
        assert layer_mb + _size_mb(build_dir / function) < 250, function
    assert (build_dir / "WebhookFunction" / "app.py").is_file()
    for package in ("standardwebhooks", "httpx", "certifi"):  # what the webhook sender needs at run time
        assert (site / package / "__init__.py").is_file(), package
    assert (build_dir / "SchedulerFunction" / "app.py").is_file()
    stream = build_dir / "StreamFunction"  # the adapter's wrapper executes run.sh, which starts uvicorn on app.py
    assert (stream / "app.py").is_file() and os.access(stream / "run.sh", os.X_OK)
    for package in ("uvicorn", "click"):
        assert (stream / package / "__init__.py").is_file(), package
    for package in ("h11", "aijobs", "fastapi", "starlette"):  # CoreLayer's: a copy here would shadow it
        assert not (stream / package).exists(), package
    _assert_every_requirement_is_installed(stream, [stream, site])
    assert (build_dir / "template.yaml").is_file()


def _size_mb(path: Path) -> float:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) / 2**20


def _assert_every_requirement_is_installed(packages: Path, search: list[Path]) -> None:
    """Each requirement (for Lambda's python3.13/arm64) of what ``packages`` holds is met in one of ``search``."""
    installed = {canonicalize_name(dist.metadata["Name"]): dist.version for path in search
                 for dist in (Distribution.at(info) for info in path.glob("*.dist-info"))}
    for info in packages.glob("*.dist-info"):
        for line in Distribution.at(info).requires or []:
            requirement = Requirement(line)
            if requirement.marker and not requirement.marker.evaluate(TARGET):
                continue
            version = installed.get(canonicalize_name(requirement.name))
            assert version is not None, f"{info.name} needs {requirement}: not in {[p.name for p in search]}"
            assert requirement.specifier.contains(version, prereleases=True), f"{info.name} needs {requirement}"


# The SAM transform run offline on the template (as CloudFormation runs it at deploy), to check what SAM adds.
TRANSLATE = """
import json, sys
from samtranslator.translator.transform import transform
from samtranslator.yaml_helper import yaml_parse
template = yaml_parse(open("template.yaml").read())
for resource in template["Resources"].values():  # as `sam package` leaves them
    for key in ("CodeUri", "ContentUri"):
        if key in resource.get("Properties", {}):
            resource["Properties"][key] = "s3://bucket/key"
class NoManagedPolicies:
    def load(self):
        return {}
json.dump(transform(template, {}, NoManagedPolicies())["Resources"], sys.stdout)
"""


def test_sams_transform_makes_the_stream_url_public_with_both_invoke_permissions() -> None:
    assert _sam("--version").returncode == 0  # its own virtual environment, with samtranslator
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")} | {"AWS_DEFAULT_REGION": "us-east-1"}
    result = subprocess.run([str(ROOT / ".venv-sam" / "bin" / "python"), "-c", TRANSLATE], cwd=ROOT, env=env,
                            capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 0, result.stderr
    resources = json.loads(result.stdout)

    url = resources["StreamFunctionUrl"]  # the name the template's !GetAtt StreamFunctionUrl.FunctionUrl needs
    assert url["Type"] == "AWS::Lambda::Url"
    assert url["Properties"] == {"TargetFunctionArn": {"Ref": "StreamFunction"}, "AuthType": "NONE",
                                 "InvokeMode": "RESPONSE_STREAM"}
    permissions = [r["Properties"] for r in resources.values() if r["Type"] == "AWS::Lambda::Permission"
                   and r["Properties"]["FunctionName"] == {"Ref": "StreamFunction"}]
    # New function URLs (since October 2025) need lambda:InvokeFunction too, limited to calls through the URL.
    assert sorted(permissions, key=lambda p: p["Action"]) == [
        {"Action": "lambda:InvokeFunction", "FunctionName": {"Ref": "StreamFunction"}, "Principal": "*",
         "InvokedViaFunctionUrl": True},
        {"Action": "lambda:InvokeFunctionUrl", "FunctionName": {"Ref": "StreamFunction"}, "Principal": "*",
         "FunctionUrlAuthType": "NONE"}]
    for function in ("ApiFunction", "StreamFunction"):  # the one managed policy; inline, the secrets when set
        role = resources[f"{function}Role"]["Properties"]
        assert {"Ref": "ApiAccessPolicy"} in role["ManagedPolicyArns"], function
        for inline, (condition, secret) in zip(role["Policies"], [
                ("HasAdminKeySecret", "AdminKeySecretArn"), ("HasModelApiKeySecret", "ModelApiKeySecretArn"),
                ("HasModelBackendSecrets", "ModelBackendSecretArns")], strict=True):
            assert inline["Fn::If"][0] == condition and inline["Fn::If"][2] == {"Ref": "AWS::NoValue"}, function
            assert inline["Fn::If"][1]["PolicyDocument"]["Statement"] == [{
                "Effect": "Allow", "Action": "secretsmanager:GetSecretValue", "Resource": {"Ref": secret}}]
