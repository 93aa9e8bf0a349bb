"""Run every benchmark, print a table and write bench/latest.json."""

from __future__ import annotations

import json
import os
import platform
import subprocess
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench import (
    capacity,
    cost,
    fairness,
    goals,
    imports,
    kinds,
    lifecycle,
    lists,
    reliability,
    search,
    streams,
    streams100,
    throughput,
    waiters,
    webhooks,
)

# The bench modules load aijobs only inside their functions: after main() has quietened its logs.
ROOT = Path(__file__).resolve().parents[1]
OUTPUT = ROOT / "bench" / "latest.json"


def _source() -> dict[str, Any]:
    """The commit measured, and which code paths differed from it (others may be editing the tree)."""
    def git(*args: str) -> str:
        out = subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True)
        return out.stdout.strip() if out.returncode == 0 else ""

    changed = git("status", "--porcelain", "--", "layers", "functions", "template.yaml", "events")
    return {"commit": git("rev-parse", "HEAD") or None,
            "uncommitted_code_changes": [line[3:] for line in changed.splitlines()]}


def _lifecycle_block(measured: dict[str, Any]) -> dict[str, Any]:
    from bench.recorder import summarize

    def per_job(run: Any) -> dict[str, Any]:
        return summarize(run.calls, exclude_kinds=frozenset({"KEY", "LIMITS"}))

    key_lookup = summarize([c for c in measured["with_key"].calls if c.kind in ("KEY", "LIMITS")])
    return {
        "steps": lifecycle.STEPS,
        "with_idempotency_key": per_job(measured["with_key"]),
        "without_idempotency_key": per_job(measured["without_key"]),
        "api_key_lookup": {k: key_lookup[k] for k in ("aws_requests", "rru", "by_operation")}
                          | {"note": "set apart: the API caches a key's tenant and its limits for 60 s per warm "
                                     "container"},
        "limits": _limits_cost(measured["with_key"].calls),
    }


def _limits_cost(calls: list[Any]) -> dict[str, Any]:
    """What the limits add (the tenant's USAGE# item, aijobs/usage.py): the request rate's counter, the first write
    of each API request; the job's token reservation, the submit's second; the usage the worker adds at its end."""
    from bench.recorder import summarize

    usage = [c for c in calls if c.kind == "USAGE"]
    api_phases = [p for p in dict.fromkeys(c.phase for c in calls) if p.startswith("api ")]
    counters = [next(c for c in usage if c.phase == phase) for phase in api_phases]
    per_job = [c for c in usage if c not in counters]
    request, job = summarize(counters), summarize(per_job)
    return {
        "api_requests": len(api_phases),
        "per_api_request": {"dynamodb_requests": request["dynamodb_requests"] / len(api_phases),
                            "wru": request["wru"] / len(api_phases)},
        "per_job": {"dynamodb_requests": job["dynamodb_requests"], "wru": job["wru"],
                    "by_operation": job["by_operation"]},
        "budget": "at most 1 WRU per API request plus 2 WRU per job (issue 11)",
    }


def collect() -> dict[str, Any]:
    started = time.perf_counter()
    imported = imports.measure()
    api = imported["functions"]["api"]
    api_imports_openai = api["imports_openai"] or api["first_use_imports_openai"]
    if api_imports_openai:
        raise SystemExit("FAIL: the API function loads openai (at import or first use); it must not")
    measured = lifecycle.measure()
    life = _lifecycle_block(measured)
    totals = life["with_idempotency_key"]
    api_ms = list(measured["api_ms"].values())
    batch = measured["batch"]
    costs = cost.per_million_jobs(totals=totals, api_ms=api_ms, worker_ms=measured["worker_ms"],
                                  webhook_ms=measured["webhook_ms"],
                                  batch_overhead_s=batch["ten_jobs_s"] - batch["model_delay_ms"] / 1000)
    waits = waiters.measure()
    faults = reliability.measure()
    if broken := reliability.failures(faults):
        raise SystemExit("FAIL: a fault lost or doubled a job:\n  " + "\n  ".join(broken))
    isolation = webhooks.measure()
    live = streams.measure()
    concurrency = fairness.measure()
    job_kinds = kinds.measure()
    searched = search.measure()
    local = throughput.measure()
    hundred = streams100.measure()
    return {
        "generated_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "source": _source(),
        "environment": {"python": platform.python_version(), "machine": platform.machine(),
                        "system": platform.system(), "cpus": os.cpu_count()},
        "functions": imported["functions"],
        "boto3_import_ms": imported["boto3_ms"],
        "boto3_import_samples_ms": imported["boto3_samples_ms"],
        "import_runs": imported["runs"],
        "api_imports_openai": api_imports_openai,
        "aws_requests_per_job": totals["aws_requests"],
        "wru_per_job": totals["wru"],
        "rru_per_job": totals["rru"],
        "lifecycle": life,
        "handler_ms_warm": {"api": measured["api_ms"], "worker": measured["worker_ms"],
                            "webhook": measured["webhook_ms"],
                            "note": "in-process against moto and the fake model, without the counting hooks"},
        "usd_per_million_jobs": costs["usd_per_million_jobs"],
        "cost": costs,
        "worker_batch10_ratio": round(batch["ratio"], 3),
        "worker_batch": {k: round(v, 3) if isinstance(v, float) else v for k, v in batch.items()},
        "capacity_rules": capacity.CAPACITY_RULES,
        "waiters": waits,
        "reliability": faults,
        "lists": lists.measure(),
        "webhook_isolation": isolation,
        "stream_delta_p50_ms": live["stream_delta_p50_ms"],
        "stream_delta_p95_ms": live["stream_delta_p95_ms"],
        "stream_wru_per_s": live["stream_wru_per_s"],
        "cancel_to_abort_ms": live["cancel_to_abort_ms"],
        "live_jobs": live,
        "concurrency_limit_extra_wru_per_job": concurrency["cost"]["extra_wru_per_job"],
        "concurrency_limit_extra_requests_per_job": concurrency["cost"]["extra_requests_per_job"],
        "fairness_small_tenant_wait_ratio": concurrency["fairness"]["ratio"],
        "concurrency": concurrency,
        "lanes_low_done_before_high": job_kinds["lanes"]["low_done_before_high"],
        "embedding_1000_texts_worker_s": job_kinds["embedding_1000_texts"]["worker_s"],
        "kinds": job_kinds,
        "search_p50_ms": searched["search_p50_ms"],
        "ingest_chunks_per_s": searched["chunks_per_s"],
        "search": searched,
        "local_throughput_ratio": local["ratio"],
        "throughput": local,
        "streams_100": hundred,
        "bench_seconds": round(time.perf_counter() - started, 1),
    }


def _row(*cells: Any, widths: tuple[int, ...]) -> str:
    out = []
    for i, (cell, width) in enumerate(zip(cells, widths, strict=True)):
        text = f"{cell:.2f}" if isinstance(cell, float) else str(cell)
        out.append(text.ljust(width) if i == 0 else text.rjust(width))
    return "  " + " ".join(out)


def render(r: dict[str, Any]) -> str:
    commit = (r["source"]["commit"] or "unknown")[:10]
    dirty = len(r["source"]["uncommitted_code_changes"])
    header = (f"aijobs bench: commit {commit}{f' + {dirty} uncommitted code files' if dirty else ''}, "
              f"python {r['environment']['python']} on {r['environment']['machine']}, {r['generated_at']}")
    b = r["worker_batch"]
    batch = [f"Worker concurrency: one invocation, fake model latency {b['model_delay_ms']} ms per job",
             f"  1 job {b['one_job_s']:.3f} s, {b['jobs']} jobs {b['ten_jobs_s']:.3f} s (medians of "
             f"{len(b['pairs_s'])} each, taken in turn): "
             f"worker_batch10_ratio {r['worker_batch10_ratio']:.2f}",
             f"  the batch (one tenant's 10 jobs, no callback) per job: {b['worker_aws_requests_per_job']:.1f} AWS "
             f"requests, {b['worker_wru_per_job']:.1f} WRU (its first read, slots and usage shared by the batch)"]
    sections = [[header], _render_imports(r), _render_lifecycle(r), _render_cost(r), batch,
                waiters.render(r["waiters"]), reliability.render(r["reliability"]), lists.render(r["lists"]),
                webhooks.render(r["webhook_isolation"]), streams.render(r["live_jobs"]),
                fairness.render(r["concurrency"]), kinds.render(r["kinds"]), search.render(r["search"]),
                throughput.render(r["throughput"]), streams100.render(r["streams_100"]),
                goals.render(r["goals"]), [f"wrote {OUTPUT.relative_to(ROOT)} in {r['bench_seconds']} s"]]
    return "\n\n".join("\n".join(lines) for lines in sections)


def _render_imports(r: dict[str, Any]) -> list[str]:
    lines = [f"Cold start: handler module import in a fresh process, median of {r['import_runs']}"]
    widths = (9, 10, 8, 13, 19)
    lines.append(_row("", "import ms", "x boto3", "first use ms", "openai loaded", widths=widths))
    lines.append(_row("boto3", r["boto3_import_ms"], 1.0, "", "", widths=widths))
    for name, f in r["functions"].items():
        loaded = "at first use" if f.get("first_use_imports_openai") else "no"
        lines.append(_row(name, f["import_ms"], f["import_ratio_vs_boto3"], f.get("first_use_ms", ""),
                          "at import" if f["imports_openai"] else loaded, widths=widths))
    for name, f in r["functions"].items():
        if "heaviest_packages_ms" in f:
            heavy = ", ".join(f"{pkg} {ms:g}" for pkg, ms in f["heaviest_packages_ms"].items())
            lines.append(f"  {name} heaviest (self ms, -X importtime): {heavy}")
    lines.append("  first use = import + the clients and lazy imports the first request builds (no I/O); api and "
                 "worker only")
    tokenizer = {name: "at import" if f.get("imports_tokenizer") else
                 "at first use" if f.get("first_use_imports_tokenizer") else "no" for name, f in r["functions"].items()
                 if "imports_tokenizer" in f}
    lines.append("  tokenizer (bpe-openai) loaded: " + ", ".join(f"{n} {w}" for n, w in tokenizer.items())
                 + " (it loads at an instance's first admission of an OpenAI model's job)")
    return lines


def _render_lifecycle(r: dict[str, Any]) -> list[str]:
    life = r["lifecycle"]
    per_job = life["with_idempotency_key"]
    lines = ["One job's AWS requests, counted with botocore hooks (submit with Idempotency-Key)",
             f"  {life['steps']}"]
    widths = (36, 5, 4, 4, 5, 4, 10)
    lines.append(_row("request", "calls", "WRU", "GSI", "RRU", "SQS", "item bytes", widths=widths) + "  phase")
    for label, row in per_job["by_operation"].items():
        lines.append(_row(label, row["requests"], row["wru"], row["gsi_wru"], row["rru"], row["sqs_billed"],
                          row["max_item_bytes"] or "", widths=widths) + "  " + ", ".join(row["phases"]))
    lines.append(_row("per job", per_job["aws_requests"], per_job["wru_base_table"], per_job["wru_gsi"],
                      per_job["rru"], per_job["sqs_billed_requests"], "", widths=widths)
                 + f"  = {per_job['wru']} WRU (table + GSI)")
    without = life["without_idempotency_key"]
    lines.append(f"  without Idempotency-Key: {without['aws_requests']} requests, {without['wru']} WRU, "
                 f"{without['rru']:g} RRU, {without['sqs_billed_requests']} SQS")
    lookup = life["api_key_lookup"]
    lines.append(f"  set apart, API-key and limits lookups: {lookup['aws_requests']} requests, {lookup['rru']:g} RRU "
                 "(cached 60 s per warm API container)")
    limits = life["limits"]
    lines.append(f"  limits on, included above: +{limits['per_api_request']['dynamodb_requests']:g} request, "
                 f"{limits['per_api_request']['wru']:g} WRU per API request (the rate counter); "
                 f"+{limits['per_job']['dynamodb_requests']:g} requests, {limits['per_job']['wru']:g} WRU per job "
                 f"(token reservation, usage at its end); {limits['budget']}")
    return lines + ["  units: " + rule for rule in r["capacity_rules"]]


def _render_cost(r: dict[str, Any]) -> list[str]:
    c = r["cost"]
    lines = [f"Cost per million jobs, infrastructure only (us-east-1 on-demand, prices as of {c['prices_as_of']})",
             f"  {'':<26} {'under load':>10} {'alone':>10}"]
    for name, usd in c["lines"].items():
        lines.append(f"  {name:<26} ${usd:>9.3f} ${c['lines_alone'][name]:>9.3f}")
    lines.append(f"  {'total':<26} ${r['usd_per_million_jobs']:>9.2f} ${c['usd_per_million_jobs_alone']:>9.2f}")
    warm = r["handler_ms_warm"]
    api_ms = ", ".join(f"{k} {v:.1f}" for k, v in warm["api"].items())
    lines.append(f"  handler ms (warm): api {api_ms}; worker {warm['worker']:.1f}; webhook {warm['webhook']:.1f}")
    return lines + ["  assumption: " + a for a in c["assumptions"]]


def main() -> None:
    # Before any aijobs module exists: the job logs of the runs would drown the table.
    os.environ["POWERTOOLS_LOG_LEVEL"] = "WARNING"
    result = collect()
    result["goals"] = goals.evaluate(result)
    OUTPUT.write_text(json.dumps(result, indent=2) + "\n")
    print(render(result))


if __name__ == "__main__":
    main()
