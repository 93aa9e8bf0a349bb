"""The ``aijobs`` command: click commands over :class:`aijobs.cli.client.ApiClient`, shown with rich."""

from __future__ import annotations

import datetime as dt
import json
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn

import click
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table

from aijobs.cli.batch import BatchRun, Interrupted, Summary, describe
from aijobs.cli.client import FINISHED, ApiClient, ApiError
from aijobs.cli.jsonl import CHUNK_SIZE, read_prompts
from aijobs.cli.resume import ResumeError

DEFAULT_URL = "http://127.0.0.1:8000"
# `batch cancel` calls again while the server answers `cancelling` (each call cancels for up to 15 s), this often.
CANCEL_CALLS = 20
out = Console(highlight=False)
err = Console(stderr=True, highlight=False, soft_wrap=True)


def fail(message: str, code: int = 1) -> NoReturn:
    err.print(message, markup=False)
    sys.exit(code)


@dataclass
class Settings:
    url: str
    key: str | None
    as_json: bool

    def api(self) -> ApiClient:
        if not self.key:
            fail("error: no API key: pass --key or set AIJOBS_API_KEY (make run prints one)", 2)
        return ApiClient(self.url, self.key, notify=lambda message: err.print(f"[dim]{message}[/]"))


JSON_HELP = "Print the API's JSON, one object a line."


def as_json(ctx: click.Context, _: click.Parameter, value: bool) -> None:
    if value:
        ctx.find_object(Settings).as_json = True  # type: ignore[union-attr]


class Group(click.Group):
    """Any API error, under any command, is one line on stderr and exit status 1; a Ctrl-C exits 130 (as a shell
    says a SIGINT); ``--json`` may come before the command or after it."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except (ApiError, ResumeError) as exc:
            fail(str(exc) if isinstance(exc, ApiError) else f"error: {exc}")
        except OSError as exc:  # --out in a folder that is not there, a full disk
            fail(f"error: {exc.strerror or exc}: {exc.filename or ''}".rstrip(": "))
        except KeyboardInterrupt:
            fail("interrupted", 130)

    def add_command(self, cmd: click.Command, name: str | None = None) -> None:
        if not isinstance(cmd, click.Group):
            cmd.params.append(click.Option(["--json"], is_flag=True, expose_value=False, callback=as_json,
                                           help=JSON_HELP))
        super().add_command(cmd, name)


pass_settings = click.make_pass_decorator(Settings)


def emit(settings: Settings, value: Any, human: str | Table | None = None) -> None:
    if settings.as_json or human is None:
        click.echo(json.dumps(value, separators=(",", ":")))
    else:
        out.print(human)


@click.group(cls=Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--url", envvar="AIJOBS_URL", default=DEFAULT_URL, show_default=True, help="The API (env AIJOBS_URL).")
@click.option("--key", envvar="AIJOBS_API_KEY", help="An API key (env AIJOBS_API_KEY).")
@click.option("--json", "as_json", is_flag=True, help=JSON_HELP)
@click.pass_context
def cli(ctx: click.Context, url: str, key: str | None, as_json: bool) -> None:
    """Submit, watch and batch AI jobs on an aijobs API (local or deployed)."""
    ctx.obj = Settings(url, key, as_json)


# -- one job ----------------------------------------------------------------------------------------------------

def parse_metadata(pairs: tuple[str, ...]) -> dict[str, str]:
    metadata = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name:
            raise click.BadParameter(f"{pair!r} is not k=v", param_hint="--metadata")
        metadata[name] = value
    return metadata


def totals(job: dict[str, Any]) -> str:
    usage = job.get("usage") or {}
    parts = [f"{job.get('status')}", f"{usage.get('input_tokens', 0)} in + {usage.get('output_tokens', 0)} out tokens"]
    if job.get("cost_usd") is not None:
        parts.append(f"${job['cost_usd']:.6f}")
    if job.get("duration_ms") is not None:
        parts.append(f"{job['duration_ms'] / 1000:.2f} s")
    return " · ".join(parts)


def output_text(job: dict[str, Any]) -> str:
    output = job.get("output") or {}
    return str(output["text"]) if "text" in output else json.dumps(output)


def show_ended(settings: Settings, job: dict[str, Any]) -> None:
    """A finished job: its output on stdout, the totals on stderr; a job that did not complete exits 1."""
    if settings.as_json:
        emit(settings, job)
    elif job["status"] == "completed":
        out.print(output_text(job), markup=False, soft_wrap=True)  # as the model wrote it: no wrap
        err.print(f"[dim]{job['id']} {totals(job)}[/]")
    if job["status"] != "completed":
        fail_job(job)


def fail_job(job: dict[str, Any]) -> NoReturn:
    error = job.get("error") or {}
    fail(ApiError(error.get("type", job["status"]), error.get("code"),
                  error.get("message", f"the job was {job['status']}")).line() + f" (job {job['id']})")


def wait_for(api: ApiClient, job_id: str) -> dict[str, Any]:
    started = time.monotonic()
    job: dict[str, Any] = api.request("GET", f"/v1/jobs/{job_id}")
    with err.status("") as spinner:
        while job["status"] not in FINISHED:
            spinner.update(f"{job_id} {job['status']} · {time.monotonic() - started:.1f} s")
            time.sleep(0.5)
            job = api.request("GET", f"/v1/jobs/{job_id}")
    return job


def stream(api: ApiClient, settings: Settings, job_id: str) -> dict[str, Any]:
    """Print the job's text as it comes; answer the final job."""
    for event in api.events(job_id):
        if settings.as_json:
            click.echo(json.dumps({"id": event.id, "event": event.event, "data": event.json()}))
        elif event.event == "delta":
            out.print(event.json().get("text", ""), end="", markup=False, soft_wrap=True)  # as it came: no wrap
            out.file.flush()
        elif event.event == "status" and event.json().get("attempt", 1) > 1:
            err.print(f"\n[dim]attempt {event.json()['attempt']}: the output starts again[/]")
        if event.event in FINISHED:
            job: dict[str, Any] = event.json()
            if not settings.as_json:
                out.print()
                err.print(f"[dim]{job['id']} {totals(job)}[/]")
            if job["status"] != "completed":
                fail_job(job)
            return job
    raise ApiError("stream", None, "the stream ended without the job's end")


@cli.command()
@click.argument("prompt")
@click.option("--model", help="The model (default: the stack's).")
@click.option("--wait", "wait_", is_flag=True, help="Wait for the end, then print the output.")
@click.option("--stream", "stream_", is_flag=True, help="Print the output as it is made.")
@click.option("--callback-url", help="A webhook for the job's end.")
@click.option("--metadata", multiple=True, metavar="K=V", help="Metadata (repeatable).")
@pass_settings
def submit(settings: Settings, prompt: str, model: str | None, wait_: bool, stream_: bool,
           callback_url: str | None, metadata: tuple[str, ...]) -> None:
    """Submit a job; print its id (or, with --wait/--stream, its output)."""
    if wait_ and stream_:
        raise click.UsageError("--wait and --stream go one at a time")
    body: dict[str, Any] = {"input": prompt, "model": model, "callback_url": callback_url,
                            "metadata": parse_metadata(metadata) or None, "stream": stream_ or None}
    api = settings.api()
    job = api.request("POST", "/v1/jobs", json={k: v for k, v in body.items() if v is not None})
    if stream_:
        stream(api, settings, job["id"])
    elif wait_:
        show_ended(settings, wait_for(api, job["id"]))
    else:
        emit(settings, job, job["id"])


@cli.command()
@click.argument("job_id")
@pass_settings
def get(settings: Settings, job_id: str) -> None:
    """Show a job."""
    job = settings.api().request("GET", f"/v1/jobs/{job_id}")
    table = Table.grid(padding=(0, 2))
    for name in ("id", "status", "model", "created_at", "attempt", "cost_usd", "error", "batch_id", "retry_of"):
        if job.get(name) is not None:
            value = job[name]
            table.add_row(name, str(dt.datetime.fromtimestamp(value, dt.UTC)) if name == "created_at" else str(value))
    if job.get("usage"):
        table.add_row("tokens", f"{job['usage'].get('input_tokens')} in, {job['usage'].get('output_tokens')} out")
    if job.get("output"):
        table.add_row("output", output_text(job))
    emit(settings, job, table)


@cli.command("wait")
@click.argument("job_id")
@pass_settings
def wait_command(settings: Settings, job_id: str) -> None:
    """Wait for a job to end and print its output."""
    api = settings.api()
    show_ended(settings, wait_for(api, job_id))


@cli.command("stream")
@click.argument("job_id")
@pass_settings
def stream_command(settings: Settings, job_id: str) -> None:
    """Print a job's output as it is made (resumes by itself after a dropped connection)."""
    stream(settings.api(), settings, job_id)


@cli.command()
@click.argument("job_id")
@pass_settings
def cancel(settings: Settings, job_id: str) -> None:
    """Cancel a queued or running job."""
    job = settings.api().request("DELETE", f"/v1/jobs/{job_id}")
    emit(settings, job, f"{job['id']} {job['status']}")


@cli.command()
@click.argument("job_id")
@pass_settings
def retry(settings: Settings, job_id: str) -> None:
    """Run a failed or cancelled job again; print the new job's id."""
    job = settings.api().request("POST", f"/v1/jobs/{job_id}/retry")
    emit(settings, job, job["id"])


@cli.command("list")
@click.option("--status", type=click.Choice(["queued", "in_progress", "completed", "failed", "cancelled"]))
@click.option("--limit", type=click.IntRange(1, 10_000), default=20, show_default=True)
@pass_settings
def list_command(settings: Settings, status: str | None, limit: int) -> None:
    """List your jobs, newest first."""
    jobs = collect_pages(settings.api(), "/v1/jobs", {"status": status, "limit": min(limit, 100)}, limit)
    table = Table("status", "model", "created", "cost_usd")
    table.add_column("id", no_wrap=True)
    for job in jobs:
        table.add_row(job["status"], job.get("model"),
                      dt.datetime.fromtimestamp(job["created_at"], dt.UTC).strftime("%Y-%m-%d %H:%M:%S"),
                      f"{job['cost_usd']:.6f}" if job.get("cost_usd") is not None else "", job["id"])
    emit_list(settings, jobs, table)


def collect_pages(api: ApiClient, path: str, params: dict[str, Any], limit: int) -> list[dict[str, Any]]:
    """Follow ``next_cursor`` (a filtered page may be short or empty) until ``limit`` items or the end."""
    items: list[dict[str, Any]] = []
    query = {k: v for k, v in params.items() if v is not None}
    while len(items) < limit:
        page = api.request("GET", path, params=query)
        items.extend(page["data"])
        if not page.get("next_cursor"):
            break
        query["cursor"] = page["next_cursor"]
    return items[:limit]


def emit_list(settings: Settings, items: list[dict[str, Any]], table: Table) -> None:
    if settings.as_json:
        for item in items:
            click.echo(json.dumps(item, separators=(",", ":")))
    else:
        out.print(table)


# -- usage and schedules ---------------------------------------------------------------------------------------

@cli.command()
@click.option("--days", type=click.IntRange(1, 92), default=7, show_default=True)
@pass_settings
def usage(settings: Settings, days: int) -> None:
    """Your usage per UTC day, and today's budget."""
    today = dt.datetime.now(dt.UTC).date()
    report = settings.api().request("GET", "/v1/usage", params={
        "from": (today - dt.timedelta(days=days - 1)).isoformat(), "to": today.isoformat()})
    table = Table("date", "requests", "jobs", "input tokens", "output tokens", "cost_usd",
                  caption=f"budget today: ${report['budget']['spent_usd']} of ${report['budget']['daily_cost_usd']}")
    for day in report["data"]:
        table.add_row(day["date"], *(str(day[k]) for k in ("requests", "jobs", "input_tokens", "output_tokens")),
                      f"{day['cost_usd']:.6f}")
    emit(settings, report, table)


@cli.group(cls=Group)
def schedules() -> None:
    """Cron schedules that submit jobs."""


@schedules.command("list")
@pass_settings
def schedules_list(settings: Settings) -> None:
    """List your schedules."""
    items = collect_pages(settings.api(), "/v1/schedules", {"limit": 100}, 10_000)
    table = Table("id", "expression", "timezone", "enabled", "next fire (UTC)")
    for item in items:
        upcoming = item.get("next_fire_times") or []
        table.add_row(item["id"], item["expression"], item["timezone"], str(item["enabled"]),
                      str(dt.datetime.fromtimestamp(upcoming[0], dt.UTC)) if upcoming else "")
    emit_list(settings, items, table)


@schedules.command("create")
@click.argument("expression")
@click.argument("prompt")
@click.option("--timezone", default="UTC", show_default=True)
@click.option("--model")
@click.option("--disabled", is_flag=True)
@pass_settings
def schedules_create(settings: Settings, expression: str, prompt: str, timezone: str, model: str | None,
                     disabled: bool) -> None:
    """Create a schedule: EXPRESSION as EventBridge's `rate(...)`, `cron(...)` or `at(...)`."""
    job = {"input": prompt, **({"model": model} if model else {})}
    schedule = settings.api().request("POST", "/v1/schedules", json={
        "expression": expression, "timezone": timezone, "job": job, "enabled": not disabled})
    emit(settings, schedule, schedule["id"])


@schedules.command("delete")
@click.argument("schedule_id")
@pass_settings
def schedules_delete(settings: Settings, schedule_id: str) -> None:
    """Delete a schedule."""
    settings.api().request("DELETE", f"/v1/schedules/{schedule_id}")
    emit(settings, {"id": schedule_id, "deleted": True}, f"{schedule_id} deleted")


@schedules.command("run")
@click.argument("schedule_id")
@pass_settings
def schedules_run(settings: Settings, schedule_id: str) -> None:
    """Fire a schedule now; print the new job's id."""
    job = settings.api().request("POST", f"/v1/schedules/{schedule_id}/run")
    emit(settings, job, job["id"])


# -- batches ---------------------------------------------------------------------------------------------------

@cli.group(cls=Group)
def batch() -> None:
    """Many prompts at once, from a JSONL file."""


class ProgressReporter:
    """The live bar: results written of all prompts, the batch's counts, throughput and ETA."""

    def __init__(self, bar: Progress) -> None:
        self.bar, self.started = bar, time.monotonic()
        self.task = bar.add_task("batch", total=None, counts="", rate="")
        self.first: int | None = None  # results there before this run: not counted in its throughput

    def progress(self, *, done: int, total: int, counts: dict[str, int]) -> None:
        self.first = done if self.first is None else self.first
        elapsed = max(time.monotonic() - self.started, 1e-6)
        self.bar.update(self.task, completed=done, total=total, counts=describe(counts),
                        rate=f"{(done - self.first) / elapsed:.1f}/s")


def summary_table(summary: Summary, out_path: Path) -> Table:
    table = Table(title=f"{out_path}", show_header=False)
    rows = [("prompts", summary.prompts), *sorted(summary.statuses.items()), ("bad lines (not sent)", summary.invalid),
            ("input tokens", summary.input_tokens), ("output tokens", summary.output_tokens),
            ("cost_usd", f"{summary.cost_usd:.6f}"), ("wall time", f"{summary.wall_s:.1f} s")]
    if summary.batch_id:
        rows.insert(0, ("batch", summary.batch_id))
    for name, value in rows:
        table.add_row(name, str(value))
    return table


def summary_json(summary: Summary) -> dict[str, Any]:
    return {"batch_id": summary.batch_id, "prompts": summary.prompts, "statuses": dict(summary.statuses),
            "bad_lines": summary.invalid, "input_tokens": summary.input_tokens,
            "output_tokens": summary.output_tokens, "cost_usd": round(summary.cost_usd, 8),
            "wall_s": round(summary.wall_s, 3)}


@batch.command("run")
@click.argument("prompts", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--out", "out_path", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="Results, one JSON line per prompt (appended to on a resumed run).")
@click.option("--concurrency", type=click.IntRange(1, 32), default=4, show_default=True,
              help="Requests in flight at once.")
@click.option("--chunk-size", type=click.IntRange(1, CHUNK_SIZE), default=CHUNK_SIZE, show_default=True,
              help="Jobs per /v1/jobs/batch request.")
@click.option("--model", help="The model of lines that name none.")
@click.option("--strict", is_flag=True, help="Stop before sending anything if a line is bad.")
@click.option("--stop-after", type=int, hidden=True, help="Tests: stop as Ctrl-C does after N results.")
@pass_settings
def batch_run(settings: Settings, prompts: Path, out_path: Path, concurrency: int, chunk_size: int,
              model: str | None, strict: bool, stop_after: int | None) -> None:
    """Run every prompt of a JSONL file; run it again after a stop to resume."""
    source = read_prompts(prompts, {"model": model} if model else None)
    for bad in source.bad:
        err.print(f"{prompts}: {bad} (skipped)", markup=False)
    if strict and source.bad:
        fail(f"error: {len(source.bad)} bad line(s) in {prompts}; nothing was sent (--strict)")
    api = settings.api()
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.fields[counts]}"),
               TextColumn("{task.fields[rate]}"), TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn())
    with Progress(*columns, console=err, disable=settings.as_json) as bar:
        run = BatchRun(api, source, out_path, ProgressReporter(bar), concurrency=concurrency, chunk_size=chunk_size,
                       stop_after=stop_after)
        try:
            summary = run.run()
        except Interrupted:
            bar.stop()
            err.print(f"interrupted: {len(run.results)} of {len(source.prompts)} results in {out_path}; "
                      "run the same command again to resume (nothing is sent twice)", markup=False)
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(130)  # not sys.exit: that would join the pool's threads, one maybe asleep on a Retry-After
    emit(settings, summary_json(summary), summary_table(summary, out_path))
    if summary.failed or summary.invalid:
        sys.exit(1)


@batch.command("status")
@click.argument("batch_id")
@pass_settings
def batch_status(settings: Settings, batch_id: str) -> None:
    """A batch's status and counts (servers with batch objects)."""
    found = settings.api().request("GET", f"/v1/batches/{batch_id}")
    emit(settings, found, f"{found['id']} {found['status']}  {describe(found.get('counts') or {})}  "
                          f"cancelled {(found.get('counts') or {}).get('cancelled', 0)}  "
                          f"cost_usd {found.get('cost_usd')}")


@batch.command("cancel")
@click.argument("batch_id")
@pass_settings
def batch_cancel(settings: Settings, batch_id: str) -> None:
    """Cancel a batch's jobs that have not ended (a large batch is cancelled in several calls: the server answers
    `cancelling` while jobs are left, and each call goes on from where the last stopped)."""
    api = settings.api()
    found = api.request("POST", f"/v1/batches/{batch_id}/cancel")
    for _ in range(CANCEL_CALLS):
        if found["status"] != "cancelling":
            break
        found = api.request("POST", f"/v1/batches/{batch_id}/cancel")
    emit(settings, found, f"{found['id']} {found['status']}")
