"""Cold-start import cost: each handler module imported as Lambda does, in fresh processes, against ``import boto3``.

Lambda puts the function's directory (and the layer) on ``sys.path`` and imports ``app``; here the layer's
``aijobs`` package comes from the editable install. Only the import is timed, not the interpreter's start.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
from collections import defaultdict
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
FUNCTIONS = ("api", "worker", "webhook", "scheduler", "sweeper", "stream")

# What the first request builds on top of the import (clients, lazily imported modules; no I/O).
FIRST_USE = {
    "api": "from aijobs.services import get_services\ns = get_services()\ns.jobs\ns.idempotency\ns.limiter",
    "worker": "app.services.worker\nimport aws_lambda_powertools.utilities.batch",  # the SQS batch processor
}
# The others' imports are timed too (issue 16's goals), their first use is not.

_CHILD = """
import sys, time
{path}
t0 = time.perf_counter()
{statement}
elapsed_ms = (time.perf_counter() - t0) * 1000
import json
print(json.dumps({{"ms": elapsed_ms, "openai": "openai" in sys.modules, "tokenizer": "bpe_openai" in sys.modules,
                  "modules": len(sys.modules)}}))
"""


def lambda_env() -> dict[str, str]:
    """The environment a function sees (dummy resource names: nothing is called at import)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "AIJOBS_", "POWERTOOLS_"))}
    env.update({
        "AWS_DEFAULT_REGION": "us-east-1", "AWS_REGION": "us-east-1",
        "AWS_ACCESS_KEY_ID": "bench", "AWS_SECRET_ACCESS_KEY": "bench",
        "AIJOBS_STAGE": "bench", "AIJOBS_JOBS_TABLE": "bench-jobs", "AIJOBS_IDEMPOTENCY_TABLE": "bench-idempotency",
        "AIJOBS_JOBS_QUEUE_URL": "https://sqs.us-east-1.amazonaws.com/123456789012/bench-jobs",
        "AIJOBS_MODEL_BASE_URL": "http://127.0.0.1:9/v1", "AIJOBS_MODEL_API_KEY": "bench",
        "POWERTOOLS_SERVICE_NAME": "aijobs", "POWERTOOLS_LOG_LEVEL": "INFO",
    })
    return env


def _script(function: str | None, statement: str) -> str:
    path = f"sys.path.insert(0, {str(ROOT / 'functions' / function)!r})" if function else ""
    return _CHILD.format(path=path, statement=statement)


def _python(*args: str) -> subprocess.CompletedProcess[str]:
    out = subprocess.run([sys.executable, *args], env=lambda_env(), cwd=ROOT, capture_output=True, text=True)
    if out.returncode != 0:
        raise RuntimeError(f"python {' '.join(args[:-1])} failed:\n{args[-1]}\n{out.stderr[-3000:]}")
    return out


def _run(function: str | None, statement: str) -> dict[str, Any]:
    out = _python("-c", _script(function, statement))
    return dict(json.loads(out.stdout.strip().splitlines()[-1]))


def heaviest_packages(function: str, top: int = 6) -> dict[str, float]:
    """Self import time by top-level package (ms) from one ``python -X importtime`` run of the handler."""
    code = f"import sys; sys.path.insert(0, {str(ROOT / 'functions' / function)!r}); import app"
    out = _python("-X", "importtime", "-c", code)
    totals: dict[str, float] = defaultdict(float)
    for line in out.stderr.splitlines():
        parts = line.removeprefix("import time:").split("|")
        if len(parts) == 3 and parts[0].strip().isdigit():
            totals[parts[2].strip().split(".")[0]] += int(parts[0]) / 1000
    return {name: round(ms, 1) for name, ms in sorted(totals.items(), key=lambda kv: -kv[1])[:top]}


def measure(runs: int = 11) -> dict[str, Any]:
    """Median import ms of each handler and of ``import boto3`` over ``runs`` fresh processes each."""
    cases: dict[str, tuple[str | None, str]] = {"boto3": (None, "import boto3")}
    for function in FUNCTIONS:
        cases[function] = (function, "import app")
        if function in FIRST_USE:
            cases[f"{function}_first_use"] = (function, f"import app\n{FIRST_USE[function]}")
    for where, statement in cases.values():  # warm the disk cache and the .pyc files; not counted
        _run(where, statement)
    samples: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for _ in range(runs):  # interleaved, so that drift in the machine's load hits every case alike
        for name, (where, statement) in cases.items():
            samples[name].append(_run(where, statement))
    median = {name: statistics.median(s["ms"] for s in runs_) for name, runs_ in samples.items()}
    result: dict[str, Any] = {"runs": runs, "boto3_ms": round(median["boto3"], 1),
                              "boto3_samples_ms": [round(s["ms"], 1) for s in samples["boto3"]], "functions": {}}
    for function in FUNCTIONS:
        timed = result["functions"][function] = {
            "import_ms": round(median[function], 1),
            "import_ratio_vs_boto3": round(median[function] / median["boto3"], 2),
            "samples_ms": [round(s["ms"], 1) for s in samples[function]],
            "imports_openai": any(s["openai"] for s in samples[function]),
            "modules_loaded": samples[function][0]["modules"],
        }
        if function in FIRST_USE:
            timed |= {
                "first_use_ms": round(median[f"{function}_first_use"], 1),
                "first_use_imports_openai": any(s["openai"] for s in samples[f"{function}_first_use"]),
                # the tokenizer (75 MB, in the layer) loads at a job's first admission, never at the import
                "imports_tokenizer": any(s["tokenizer"] for s in samples[function]),
                "first_use_imports_tokenizer": any(s["tokenizer"] for s in samples[f"{function}_first_use"]),
                "heaviest_packages_ms": heaviest_packages(function),
            }
    return result
