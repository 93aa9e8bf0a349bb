"""What a filtered list costs on a long history: ``GET /v1/jobs?status=cancelled&limit=20`` over 10,000 jobs.

In-process against moto (bench/lifecycle.py's stack): the jobs are written straight into the table, then the real
API handler (functions/api/app.py, Mangum) answers the list. Every DynamoDB Query it makes is counted with botocore
hooks: calls, entries evaluated (``ScannedCount``, what DynamoDB charges a filtered Query for) and the read units of
those entries, priced from their sizes in the index (its projection: keys and what lists filter on), and the page's
items read from the table (BatchGetItem: each item's own units); moto's ConsumedCapacity is a constant, so it is
not used.

moto's Query walks and sorts the whole table on every call, whatever its Limit, so the times here are mostly moto's
and grow with the table; the read counts are what DynamoDB would do.
"""

from __future__ import annotations

import json
import statistics
import time
from dataclasses import dataclass, field
from typing import Any

from bench.capacity import item_size, projected, read_units
from bench.lifecycle import Stack, invoke_api, load_event, local_stack

JOBS = 10_000
CANCELLED_EVERY = 500  # 20 cancelled jobs in 10,000: a rare status, the case that read a whole history
LIMIT = 20
TIMING_RUNS = 3
API_KEY = "aj_bench_lists"
TENANT = "bench-lists"
START_MS = 1_767_225_600_000


@dataclass
class QueryLog:
    """Each Query's entries evaluated and their read units, by hooks on the API's DynamoDB client."""

    order: list[str]  # the tenant's job ids, newest first (the index's order)
    sizes: dict[str, int]  # bytes of each job's index entry
    calls: list[dict[str, Any]] = field(default_factory=list)
    _start: str | None = None

    def before(self, params: dict[str, Any], **_: Any) -> None:
        body = json.loads(params.get("body") or b"{}")
        self._start = body.get("ExclusiveStartKey", {}).get("gsi1sk", {}).get("S")

    def after(self, parsed: dict[str, Any], **_: Any) -> None:
        first = self.order.index(self._start) + 1 if self._start else 0
        last = parsed.get("LastEvaluatedKey", {}).get("gsi1sk", {}).get("S")
        evaluated = self.order[first:self.order.index(last) + 1 if last else len(self.order)]
        if len(evaluated) != parsed["ScannedCount"]:
            raise RuntimeError(f"sized {len(evaluated)} entries, DynamoDB evaluated {parsed['ScannedCount']}")
        self.calls.append({"evaluated": len(evaluated), "returned": parsed["Count"],
                           "rru": read_units(sum(self.sizes[i] for i in evaluated), consistent=False)})

    def items_read(self, parsed: dict[str, Any], **_: Any) -> None:
        """A page's items, read from the table by key (each item its own read units)."""
        items = [item for found in parsed.get("Responses", {}).values() for item in found]
        self.calls.append({"batch_get": 1, "items": len(items),
                           "rru": sum(read_units(item_size(item), consistent=False) for item in items)})

    def take(self) -> list[dict[str, Any]]:
        calls, self.calls = self.calls, []
        return calls


def _seed(stack: Stack) -> QueryLog:
    """10,000 completed jobs of one tenant (a prompt, an output and usage each), every 500th one cancelled."""
    from boto3.dynamodb.types import TypeSerializer
    from botocore.config import Config

    from aijobs.dynamo import TENANT_INDEX
    from aijobs.ids import new_ulid
    from aijobs.local.template import load_template
    from aijobs.models.jobs import Job, JobRequest, JobStatus, Usage
    from aijobs.store import job_item

    services = stack.services
    services.tenants.add_api_key(TENANT, API_KEY)
    index = next(gsi for gsi in load_template()["Resources"]["JobsTable"]["Properties"]["GlobalSecondaryIndexes"]
                 if gsi.get("IndexName") == TENANT_INDEX)
    serialize = TypeSerializer().serialize
    items = []
    for i in range(JOBS):
        at = START_MS + i
        cancelled = i % CANCELLED_EVERY == CANCELLED_EVERY // 2
        job = Job(id=f"job_{new_ulid(at)}", tenant=TENANT, model="fake-model", created_at=at // 1000,
                  status=JobStatus.cancelled if cancelled else JobStatus.completed,
                  request=JobRequest(input=f"summarise ticket {i}: " + "lorem ipsum " * 20),
                  completed_at=at // 1000 + 3, started_at=at // 1000 + 1,
                  output_text=None if cancelled else "a summary " * 80,
                  usage=None if cancelled else Usage(input_tokens=60, output_tokens=160, total_tokens=220))
        items.append({name: serialize(value) for name, value in job_item(job).items()})
    # Straight into the table: the stack's own session, unhooked, without botocore's parameter validation.
    client = services.session.client("dynamodb", config=Config(parameter_validation=False))
    for start in range(0, len(items), 25):
        requests = {services.settings.jobs_table: [{"PutRequest": {"Item": item}} for item in items[start:start + 25]]}
        while requests:
            requests = client.batch_write_item(RequestItems=requests).get("UnprocessedItems")
    order = sorted((item["id"]["S"] for item in items), reverse=True)
    return QueryLog(order=order, sizes={item["id"]["S"]: item_size(projected(item, index, ["pk", "sk"]))
                                        for item in items})


def _list(stack: Stack, params: dict[str, Any]) -> tuple[dict[str, Any], float]:
    from urllib.parse import urlencode

    event = load_event("api_get_job")
    event["headers"]["authorization"] = f"Bearer {API_KEY}"
    event["rawPath"] = event["requestContext"]["http"]["path"] = "/v1/jobs"
    event["pathParameters"]["proxy"] = "v1/jobs"
    event["rawQueryString"] = urlencode(params)
    event["queryStringParameters"] = {k: str(v) for k, v in params.items()}
    started = time.perf_counter()
    response = invoke_api(stack, event)
    elapsed_ms = (time.perf_counter() - started) * 1000
    if response["statusCode"] != 200:
        raise RuntimeError(f"list answered {response['statusCode']}: {response['body']}")
    return json.loads(response["body"]), elapsed_ms


def _moto_query_ms(stack: Stack) -> float:
    """What one Query costs moto on this table whatever it asks for (one entry, no filter), median of 3."""
    from boto3.dynamodb.conditions import Key

    from aijobs.dynamo import TENANT_INDEX, tenant_partition

    table = stack.services.session.resource("dynamodb").Table(stack.services.settings.jobs_table)  # unhooked
    times = []
    for _ in range(3):
        started = time.perf_counter()
        table.query(IndexName=TENANT_INDEX, KeyConditionExpression=Key("gsi1pk").eq(tenant_partition(TENANT)), Limit=1)
        times.append((time.perf_counter() - started) * 1000)
    return round(statistics.median(times), 1)


def _reads(calls: list[dict[str, Any]]) -> dict[str, Any]:
    queries = [c for c in calls if "batch_get" not in c]
    return {"query_calls": len(queries), "entries_evaluated": sum(c["evaluated"] for c in queries),
            "entries_returned": sum(c["returned"] for c in queries),
            "batch_get_calls": len(calls) - len(queries), "items_read": sum(c.get("items", 0) for c in calls),
            "rru": sum(c["rru"] for c in calls)}


def measure(*, timing_runs: int = TIMING_RUNS) -> dict[str, Any]:
    """The first page's reads and time (median of ``timing_runs``), then a walk through every page to the end."""
    from aijobs.dynamo import LIST_QUERIES, LIST_READ_ENTRIES

    params: dict[str, Any] = {"status": "cancelled", "limit": LIMIT}
    with local_stack() as stack:
        started = time.perf_counter()
        log = _seed(stack)
        seed_s = time.perf_counter() - started
        events = stack.services.dynamodb.meta.client.meta.events
        events.register("before-call.dynamodb.Query", log.before)
        events.register("after-call.dynamodb.Query", log.after)
        events.register("after-call.dynamodb.BatchGetItem", log.items_read)
        _list(stack, {"limit": 1})  # the API key's lookup, cached from here on
        log.take()
        first, _ = _list(stack, params)
        first_reads = _reads(log.take())
        times = [_list(stack, params)[1] for _ in range(timing_runs)]
        log.take()
        floor_ms = _moto_query_ms(stack)
        walk, cursor, found = [], None, 0
        while True:
            page, elapsed_ms = _list(stack, {**params, **({"cursor": cursor} if cursor else {})})
            walk.append({**_reads(log.take()), "ms": elapsed_ms, "items": len(page["data"])})
            found += len(page["data"])
            if (cursor := page["next_cursor"]) is None:
                break
    return {
        "request": "GET /v1/jobs?status=cancelled&limit=20 (Mangum handler, events/api_get_job.json)",
        "jobs": JOBS, "matching": JOBS // CANCELLED_EVERY, "seed_s": round(seed_s, 1),
        "budget": {"entries_per_request": LIST_READ_ENTRIES, "query_calls_per_request": LIST_QUERIES},
        "first_page": {"ms_median": round(statistics.median(times), 1), "items": len(first["data"]),
                       "has_next_cursor": first["next_cursor"] is not None, **first_reads},
        "walk": {"requests": len(walk), "found": found,
                 "max_query_calls": max(w["query_calls"] for w in walk),
                 "max_entries_evaluated": max(w["entries_evaluated"] for w in walk),
                 "max_rru": max(w["rru"] for w in walk), "rru_total": sum(w["rru"] for w in walk),
                 "ms_median": round(statistics.median(w["ms"] for w in walk), 1),
                 "ms_max": round(max(w["ms"] for w in walk), 1)},
        "moto_query_ms": floor_ms,
        "note": "moto's Query reads its whole table on every call (moto_query_ms: one Query of one entry), so a "
                "request's time is about its Query calls times that; the counts are what DynamoDB would read",
    }


def render(r: dict[str, Any]) -> list[str]:
    first, walk, budget = r["first_page"], r["walk"], r["budget"]
    return [f"Bounded lists: {r['request']}, {r['jobs']:,} jobs of one tenant, {r['matching']} of them cancelled",
            f"  first page: {first['ms_median']:.1f} ms (median of {TIMING_RUNS}), {first['items']} items, "
            f"{first['query_calls']} Query calls, {first['entries_evaluated']} entries evaluated, "
            f"{first['items_read']} items read from the table, {first['rru']:g} RRU, "
            f"next_cursor {'set' if first['has_next_cursor'] else 'null'}",
            f"  every page to the end: {walk['requests']} requests found {walk['found']}; per request at most "
            f"{walk['max_query_calls']} Query calls, {walk['max_entries_evaluated']} entries, {walk['max_rru']:g} RRU "
            f"(budget {budget['entries_per_request']} entries, {budget['query_calls_per_request']} calls); "
            f"{walk['rru_total']:g} RRU in all; ms median {walk['ms_median']:.1f}, max {walk['ms_max']:.1f}",
            f"  moto alone: {r['moto_query_ms']:.1f} ms for one Query of one entry on this table (it walks the "
            "whole table on every call); a request's time is about its calls times that"]


if __name__ == "__main__":
    import os

    os.environ["POWERTOOLS_LOG_LEVEL"] = "WARNING"
    result = measure()
    print(json.dumps(result, indent=2))
    print("\n".join(render(result)))
