"""The single table's layout and the helpers every store shares: keys, items, conditional writes, updates, pages.

| item | pk | sk | gsi1 (pk / sk) | gsi2 (pk / sk) |
|---|---|---|---|---|
| job | ``JOB#<id>`` | ``JOB`` | ``TENANT#<t>`` / id | ``TENANT#<t>#SCHEDULE#<s>`` / id (scheduled jobs), |
| | | | | ``TENANT#<t>#BATCH#<b>`` / id, once ended ``~<ended_at>#<id>`` (a batch's jobs: never both) |
| batch (batches.py: its jobs' counters) | ``BATCH#<id>`` | ``BATCH`` | ``BATCHES#<t>`` / id | |

A job the sweeper must look at (one that runs, waits for a retry, or waits for its webhook to be queued) is also in
gsi3, the sweep index: ``SWEEP#<shard>`` / ``<due, 10 digits>#<id>``, keys only; a job leaves it when nothing
about it can get stuck any more.
| delivery attempt | ``JOB#<id>`` | ``DELIVERY#<webhook id>#<attempt 0-padded>`` | | |
| tenant | ``TENANT#<t>`` | ``TENANT`` | ``TENANTS`` / t (the admin API's list) | |
| tenant's limits | ``TENANT#<t>`` | ``LIMITS`` | | |
| tenant's concurrency slots (concurrency.py) | ``TENANT#<t>`` | ``SLOTS`` | | |
| tenant's day: usage and the minute's rate window | ``TENANT#<t>`` | ``USAGE#<YYYY-MM-DD>`` | | | (usage.py)
| signing secret | ``TENANT#<t>`` | ``WHSEC#<ulid>`` (newest last) | | |
| webhook endpoints (all of the tenant's, one map by id) | ``TENANT#<t>`` | ``WEBHOOK_ENDPOINTS`` | | |
| API key | ``KEY#<sha256>`` | ``KEY`` | | |
| API key by id | ``APIKEY#<key id>`` | ``APIKEY`` | ``APIKEYS#<t>`` / key id | |
| admin audit entry | ``AUDIT`` | ``<ulid>`` (newest last) | | |

An API key has two items: the one authentication reads (by the key's hash; keys made before key ids have only this
one, without ``key_id``) and the one lists and revocation read (by id, and per tenant in gsi1).
| schedule | ``SCHEDULE#<id>`` | ``SCHEDULE`` | ``SCHEDULES#<t>`` / id | |
| registry prompt (prompts.py) | ``TENANT#<t>`` | ``PROMPT#<id>`` | | |
| prompt version (immutable) | ``TENANT#<t>`` | ``PROMPTVER#<id>#<n, 6 digits>`` | | |

| collection (collections.py) | ``TENANT#<t>`` | ``COLLECTION#<id>`` | | |
| document of a collection | ``TENANT#<t>`` | ``DOC#<collection id>#<id>`` | | |
| search in a collection's query log (TTL: the job retention) | ``TENANT#<t>`` | ``QUERY#<collection id>#<id>`` | | |

A tenant's prompts are listed by the ``PROMPT#`` prefix of its partition (newest first: ids are ULIDs), a prompt's
versions by ``PROMPTVER#<id>#``, its collections by ``COLLECTION#``, a collection's documents by
``DOC#<collection id>#`` and its query log by ``QUERY#<collection id>#``; no prefix is another's start. Deleting a
tenant deletes its whole partition, prompts and collections included.
"""

from __future__ import annotations

import base64
import json
import os
import re
import zlib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from botocore.exceptions import ClientError
from pydantic import BaseModel

from aijobs.errors import InvalidRequest

Key = dict[str, str]

# A tenant's jobs, and (in other partitions) its schedules, batches and API keys, newest first: gsi1pk / gsi1sk with
# only the attributes lists filter on (gsi1lite), so that only a job's status changes write the index; a page's items
# are read from the table.
# AIJOBS_TENANT_INDEX=gsi1 names the index of every attribute that stacks made before it keep while they upgrade
# (README: Upgrading).
TENANT_INDEX = os.environ.get("AIJOBS_TENANT_INDEX") or "gsi1lite"
SCHEDULE_INDEX = "gsi2"  # a tenant's jobs of one schedule or one batch; sparse: only those jobs carry its keys
BATCH_RESULTS = "~"  # the prefix of an ended batch job's gsi2 sort key: after every job id (job_<ULID>)
SWEEP_INDEX = "gsi3"  # jobs the sweeper must look at, by when; sparse
SWEEP_SHARDS = 8  # spreads the index's writes over partitions; the sweeper reads every shard
SWEEP_KEYS = ("gsi3pk", "gsi3sk")


# --- keys ---------------------------------------------------------------------------------------------------------

def job_key(job_id: str) -> Key:
    return {"pk": f"JOB#{job_id}", "sk": "JOB"}


def output_chunk_key(job_id: str, attempt: int, seq: int) -> Key:
    """One piece of an attempt's streamed output, in order: read by key, never by Query. In a partition of its own,
    beside the job's: the worker writes a process's pieces together (``BatchWriteItem``), granted only in ``OUT#``
    partitions, so it can still neither put nor delete a job's items."""
    return {"pk": output_log_partition(job_id), "sk": f"{attempt:03d}#{seq:06d}"}


def output_log_partition(job_id: str) -> str:
    return f"OUT#{job_id}"


def delivery_key(job_id: str, webhook_id: str, attempt: int) -> Key:
    return {"pk": f"JOB#{job_id}", "sk": f"{delivery_prefix(webhook_id)}{attempt:04d}"}


def delivery_prefix(webhook_id: str | None = None) -> str:
    """The sort-key prefix of a job's delivery attempts (of one event when ``webhook_id`` is given)."""
    return f"DELIVERY#{webhook_id}#" if webhook_id else "DELIVERY#"


def request_key(name: str) -> Key:
    """The ids of what one keyed request made (``RequestKey.name``)."""
    return {"pk": f"REQUEST#{name}", "sk": "IDS"}


def tenant_key(tenant: str) -> Key:
    return {"pk": tenant_partition(tenant), "sk": "TENANT"}


TENANTS_PARTITION = "TENANTS"  # every tenant's item in gsi1, by name: the admin API lists them


def limits_key(tenant: str) -> Key:
    return {"pk": tenant_partition(tenant), "sk": "LIMITS"}


def slots_key(tenant: str) -> Key:
    return {"pk": tenant_partition(tenant), "sk": "SLOTS"}


def waiting_key(tenant: str, job_id: str, priority: str = "normal") -> Key:
    """A job parked until its tenant has a free concurrency slot. Job ids are ``job_<ULID>``: the sort key orders a
    tenant's waiting jobs by submission, so the oldest is the first of its partition's ``WAIT#`` range. A job of
    another priority lane than normal has its lane before its id: ``WAIT#high#<id>`` sorts before every
    ``WAIT#job_...`` and ``WAIT#low#<id>`` after, so the range reads high jobs first, then normal (whose key is as it
    was before lanes), then low, each lane oldest first."""
    lane = "" if priority == "normal" else f"{priority}#"
    return {"pk": tenant_partition(tenant), "sk": f"{WAITING_PREFIX}{lane}{job_id}"}


def parse_waiting(sk: str) -> tuple[str, str]:
    """A wait item's sort key -> (job id, priority): ``waiting_key``'s inverse."""
    lane, _, job_id = sk.removeprefix(WAITING_PREFIX).rpartition("#")
    return job_id, lane or "normal"


WAITING_PREFIX = "WAIT#"


def tenant_partition(tenant: str) -> str:
    """The tenant item's partition, which is also its jobs' partition of the tenant index."""
    return f"TENANT#{tenant}"


PROMPT_PREFIX = "PROMPT#"
COLLECTION_PREFIX = "COLLECTION#"


def collection_key(tenant: str, collection_id: str) -> Key:
    return {"pk": tenant_partition(tenant), "sk": f"{COLLECTION_PREFIX}{collection_id}"}


def document_prefix(collection_id: str) -> str:
    return f"DOC#{collection_id}#"


def document_key(tenant: str, collection_id: str, document_id: str) -> Key:
    return {"pk": tenant_partition(tenant), "sk": f"{document_prefix(collection_id)}{document_id}"}


def query_log_prefix(collection_id: str) -> str:
    return f"QUERY#{collection_id}#"


def query_log_key(tenant: str, collection_id: str, query_id: str) -> Key:
    return {"pk": tenant_partition(tenant), "sk": f"{query_log_prefix(collection_id)}{query_id}"}


def prompt_key(tenant: str, prompt_id: str) -> Key:
    return {"pk": tenant_partition(tenant), "sk": f"{PROMPT_PREFIX}{prompt_id}"}


def prompt_versions_prefix(prompt_id: str) -> str:
    return f"PROMPTVER#{prompt_id}#"


def prompt_version_key(tenant: str, prompt_id: str, version: int) -> Key:
    return {"pk": tenant_partition(tenant), "sk": f"{prompt_versions_prefix(prompt_id)}{version:06d}"}


def secret_key(tenant: str, ulid: str) -> Key:
    return {"pk": tenant_partition(tenant), "sk": f"{SECRET_PREFIX}{ulid}"}


SECRET_PREFIX = "WHSEC#"


def webhook_endpoints_key(tenant: str) -> Key:
    """The one item of a tenant's webhook endpoints: read with one GetItem (the worker may not Query)."""
    return {"pk": tenant_partition(tenant), "sk": "WEBHOOK_ENDPOINTS"}


def api_key_key(key_hash: str) -> Key:
    return {"pk": f"KEY#{key_hash}", "sk": "KEY"}


def api_key_id_key(key_id: str) -> Key:
    return {"pk": f"APIKEY#{key_id}", "sk": "APIKEY"}


def api_keys_partition(tenant: str) -> str:
    """A tenant's keys in gsi1, by id."""
    return f"APIKEYS#{tenant}"


AUDIT_PARTITION = "AUDIT"  # admin actions are rare: one partition, read newest first by primary key


def audit_key(ulid: str) -> Key:
    return {"pk": AUDIT_PARTITION, "sk": ulid}


def schedule_key(schedule_id: str) -> Key:
    return {"pk": f"SCHEDULE#{schedule_id}", "sk": "SCHEDULE"}


def schedules_partition(tenant: str) -> str:
    return f"SCHEDULES#{tenant}"


def schedule_jobs_partition(tenant: str, schedule_id: str) -> str:
    return f"TENANT#{tenant}#SCHEDULE#{schedule_id}"


def batch_jobs_partition(tenant: str, batch_id: str) -> str:
    """A batch's jobs in gsi2 (a job is made by a schedule or a batch, never both: the index is shared)."""
    return f"TENANT#{tenant}#BATCH#{batch_id}"


def batch_result_key(ended_at: int, job_id: str) -> str:
    """An ended batch job's gsi2 sort key: after every unended job of its batch (whose sort key is its id), in the
    order they ended; its batch's results are read in that order (batches.py)."""
    return f"{BATCH_RESULTS}{ended_at:010d}#{job_id}"


def batch_key(batch_id: str) -> Key:
    """A batch's own item (not in the tenant's partition: its counters are written at every job's end)."""
    return {"pk": f"BATCH#{batch_id}", "sk": "BATCH"}


def batches_partition(tenant: str) -> str:
    """A tenant's batches in gsi1, newest first."""
    return f"BATCHES#{tenant}"


def sweep_partition(shard: int) -> str:
    return f"SWEEP#{shard}"


def sweep_keys(job_id: str, due: int) -> dict[str, str]:
    """The sweep index's keys of a job the sweeper must look at from ``due`` (unix seconds) on."""
    return {"gsi3pk": sweep_partition(zlib.crc32(job_id.encode()) % SWEEP_SHARDS), "gsi3sk": f"{due:010d}#{job_id}"}


# --- items --------------------------------------------------------------------------------------------------------

def to_attributes(value: BaseModel | Mapping[str, Any]) -> dict[str, Any]:
    """A model (or plain mapping) as DynamoDB attributes: floats become Decimals; a model's None fields are left out."""
    text = value.model_dump_json(exclude_none=True) if isinstance(value, BaseModel) else json.dumps(value)
    data: dict[str, Any] = json.loads(text, parse_float=Decimal)
    return data


def from_low_level(item: object) -> dict[str, Any] | None:
    """An item in DynamoDB's wire format (as a failed condition returns it) as the resource API's plain values."""
    from boto3.dynamodb.types import TypeDeserializer

    if not item or not isinstance(item, Mapping):
        return None
    deserializer = TypeDeserializer()
    return {name: deserializer.deserialize(value) for name, value in item.items()}


def is_condition_failure(exc: ClientError) -> bool:
    return exc.response["Error"]["Code"] == "ConditionalCheckFailedException"


def conditional(write: Callable[..., Any], **request: Any) -> dict[str, Any] | None:
    """Make a conditional write: its answer, or None when its condition does not hold (other errors are raised)."""
    try:
        return dict(write(**request))
    except ClientError as exc:
        if is_condition_failure(exc):
            return None
        raise


def update_request(*, set: Mapping[str, Any] | None = None, add: Mapping[str, Any] | None = None,
                   remove: Iterable[str] = (), condition: str | None = None,
                   values: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The arguments of an ``update_item`` that sets, adds and removes attributes by name.

    Every attribute is referred to as ``#name`` (so reserved words such as ``status`` need no care), the values
    of ``set``/``add`` as ``:set_name``/``:add_name``; ``condition`` writes ``#name`` and its own ``values``.

    Examples
    --------
    >>> update_request(set={"status": "queued"}, remove=["lease_until"], condition="#attempt = :a", values={":a": 1})
    ... # doctest: +NORMALIZE_WHITESPACE
    {'UpdateExpression': 'SET #status = :set_status REMOVE #lease_until',
     'ExpressionAttributeNames': {'#status': 'status', '#lease_until': 'lease_until', '#attempt': 'attempt'},
     'ExpressionAttributeValues': {':set_status': 'queued', ':a': 1}, 'ConditionExpression': '#attempt = :a'}
    """
    clauses: list[str] = []
    request_values: dict[str, Any] = {}
    for verb, fields, separator in (("SET", set, " = "), ("ADD", add, " ")):
        if fields:
            clauses.append(f"{verb} " + ", ".join(f"#{name}{separator}:{verb.lower()}_{name}" for name in fields))
            request_values |= {f":{verb.lower()}_{name}": _attribute(value) for name, value in fields.items()}
    if removed := list(remove):
        clauses.append("REMOVE " + ", ".join(f"#{name}" for name in removed))
    expression = " ".join(clauses)
    names = dict.fromkeys(re.findall(r"#(\w+)", f"{expression} {condition or ''}"))
    request: dict[str, Any] = {"UpdateExpression": expression,
                               "ExpressionAttributeNames": {f"#{name}": name for name in names}}
    request_values |= dict(values or {})
    if request_values:
        request["ExpressionAttributeValues"] = request_values
    if condition:
        request["ConditionExpression"] = condition
    return request


def add_counters(total: dict[str, Any], add: Mapping[str, Any]) -> None:
    """Sum ``add``'s counters into ``total``: several changes to counters, made by one ``ADD``."""
    for name, value in add.items():
        total[name] = total.get(name, 0) + value


def _attribute(value: Any) -> Any:
    if isinstance(value, BaseModel):
        return to_attributes(value)
    return Decimal(str(value)) if isinstance(value, float) else value


# --- pages --------------------------------------------------------------------------------------------------------

# A list request's read budget, whatever the data: a filter is evaluated on at most LIST_READ_ENTRIES entries, in
# at most LIST_QUERIES Query calls (each reads at most 1 MB). A page cut short by the budget still has a cursor.
# A filtered list's first call evaluates max(limit, LIST_FIRST_READ) entries, each next one LIST_READ_GROWTH times
# more: a common status fills its page in one call, a rare one spends the budget in two (100, 400). A slim index's
# entries (INDEX_PROJECTIONS) are small: there a filter it evaluates itself reads the whole budget in the first call.
LIST_READ_ENTRIES = 500
LIST_QUERIES = 8
LIST_FIRST_READ = 100
LIST_READ_GROWTH = 4


@dataclass(frozen=True)
class Page[T]:
    """One page of a list and the cursor of the next page (None on the last one).

    A filtered page may be short, even empty, while ``next_cursor`` is not None: the read budget ran out first.
    """

    items: list[T]
    next_cursor: str | None


def encode_cursor(key: Mapping[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(dict(key)).encode()).decode()


# The attributes an index holds beside the keys, where it does not hold every one (template.yaml's projections), and
# the attributes its keys are (its name's, unless said here).
INDEX_PROJECTIONS = {"gsi1lite": frozenset({"status", "model", "created_at"}), SWEEP_INDEX: frozenset[str]()}
_INDEX_KEYS = {"gsi1lite": "gsi1"}


def _key_names(index: str | None) -> tuple[str, ...]:
    if index is None:
        return "pk", "sk"
    prefix = _INDEX_KEYS.get(index, index)
    return "pk", "sk", f"{prefix}pk", f"{prefix}sk"


def decode_cursor(cursor: str, *, index: str | None, partition: str, sort_prefix: str = "",
                  sort_range: tuple[str, str] | None = None) -> dict[str, Any]:
    """The start key a cursor holds, checked to belong to the index (None: the table) and partition being read."""
    invalid = InvalidRequest("cursor is not valid", code="invalid_cursor")
    try:
        key = json.loads(base64.urlsafe_b64decode(cursor.encode()))
    except (ValueError, RecursionError):  # binascii.Error and UnicodeDecodeError are ValueErrors
        raise invalid from None
    names = _key_names(index)
    # Beyond being ours, what DynamoDB would refuse with an error of its own: a flat object of short text.
    if not isinstance(key, dict) or set(key) != set(names) or key[names[-2]] != partition or not all(
            isinstance(v, str) and v.isprintable() and 0 < len(v.encode()) <= 1024 for v in key.values()) \
            or not key[names[-1]].startswith(sort_prefix) \
            or (sort_range is not None and not sort_range[0] <= key[names[-1]] <= sort_range[1]):
        raise invalid
    return key


def projection(fields: Iterable[str]) -> dict[str, Any]:
    """A read's projection of ``fields``; a dotted one (``request.priority``) is a path into a map."""
    fields = list(fields)
    return {"ProjectionExpression": ", ".join(".".join(f"#{part}" for part in f.split(".")) for f in fields),
            "ExpressionAttributeNames": {f"#{part}": part for f in fields for part in f.split(".")}}


def get_items(table: Any, keys: list[dict[str, Any]], *, names: tuple[str, ...] = ("pk", "sk"),
              fields: Iterable[str] = (), consistent: bool = False) -> list[dict[str, Any]]:
    """The table's items of ``keys`` (BatchGetItem, 100 keys a call), in the keys' order, only ``fields`` of them
    if any are named (with the keys ``names``); a key without an item is left out."""
    keys = [{name: key[name] for name in names} for key in keys]
    projected = projection(dict.fromkeys([*names, *fields])) if fields else {}
    found: dict[tuple[Any, ...], dict[str, Any]] = {}
    for first in range(0, len(keys), 100):
        request: dict[str, Any] = {table.name: {"Keys": keys[first:first + 100], "ConsistentRead": consistent,
                                                **projected}}
        while request:
            answer = table.meta.client.batch_get_item(RequestItems=request)
            for item in answer["Responses"].get(table.name, []):
                found[tuple(item[name] for name in names)] = item
            request = answer.get("UnprocessedKeys") or {}
    return [item for key in keys if (item := found.get(tuple(key.values()))) is not None]


def filter_fields(condition: Any) -> set[str]:
    """The attributes (paths) a filter made with ``boto3.dynamodb.conditions.Attr`` reads."""
    from boto3.dynamodb.conditions import AttributeBase, ConditionBase

    fields: set[str] = set()
    for value in condition.get_expression()["values"]:
        if isinstance(value, ConditionBase):
            fields |= filter_fields(value)
        elif isinstance(value, AttributeBase):
            fields.add(value.name)
    return fields


def matches(condition: Any, item: Mapping[str, Any]) -> bool:
    """Whether ``item`` passes a filter made with ``boto3.dynamodb.conditions.Attr`` (the comparisons, ``is_in``,
    ``exists``, ``not_exists``, ``begins_with``, and, or, not), as DynamoDB would evaluate it: for a page of an index
    that does not hold what the filter reads, whose entries' items are read from the table."""
    operator, values = condition.expression_operator, condition.get_expression()["values"]
    if operator in ("AND", "OR", "NOT"):
        results = (matches(value, item) for value in values)
        return all(results) if operator == "AND" else any(results) if operator == "OR" else not next(results)
    found: Any = item
    for part in values[0].name.split("."):
        found = found.get(part, _MISSING) if isinstance(found, Mapping) else _MISSING
    if operator == "attribute_exists":
        return found is not _MISSING
    if operator == "attribute_not_exists":
        return found is _MISSING
    if found is _MISSING:
        return False
    try:
        return bool(_COMPARISONS[operator](found, *values[1:]))
    except KeyError:
        raise NotImplementedError(f"a filter with {operator}") from None
    except TypeError:  # DynamoDB compares only values of one type: another type does not match
        return False


_MISSING = object()
_COMPARISONS: dict[str, Callable[..., bool]] = {
    "=": lambda a, b: a == b, "<>": lambda a, b: a != b, "<": lambda a, b: a < b, "<=": lambda a, b: a <= b,
    ">": lambda a, b: a > b, ">=": lambda a, b: a >= b, "BETWEEN": lambda a, low, high: low <= a <= high,
    "IN": lambda a, values: a in values,
    "begins_with": lambda a, b: isinstance(a, str) and a.startswith(b),
}


def query_index(table: Any, *, index: str | None, partition: str, limit: int, cursor: str | None,
                filter: Any = None, sort_prefix: str = "", sort_range: tuple[str, str] | None = None,
                newest_first: bool = True,
                consistent: bool = False) -> Page[dict[str, Any]]:
    """One page of a partition of an index (``index=None``: of the table, its sort keys under ``sort_prefix``, or
    from ``sort_range[0]`` to ``sort_range[1]``).

    Every page costs a bounded read: at most ``limit`` entries without a ``filter``; with one, at most
    LIST_READ_ENTRIES entries evaluated in at most LIST_QUERIES calls, so a page may come back short (or empty)
    with a cursor that resumes after the last entry evaluated. None as the cursor means the partition's end.
    """
    from boto3.dynamodb.conditions import Key as KeyCondition

    names = _key_names(index)
    condition: Any = KeyCondition(names[-2]).eq(partition)
    if sort_prefix:
        condition &= KeyCondition(names[-1]).begins_with(sort_prefix)
    elif sort_range is not None:
        condition &= KeyCondition(names[-1]).between(*sort_range)
    query: dict[str, Any] = {"KeyConditionExpression": condition, "ScanIndexForward": not newest_first}
    if index is not None:
        query["IndexName"] = index
    if consistent:
        query["ConsistentRead"] = True
    projected = INDEX_PROJECTIONS.get(index or "")  # None: the index holds every attribute
    # a filter on what the index does not hold is evaluated here, on those attributes of the entries' items
    read_filter = filter is not None and projected is not None and not filter_fields(filter) <= projected
    if filter is not None and not read_filter:
        query["FilterExpression"] = filter
    if cursor:
        query["ExclusiveStartKey"] = decode_cursor(cursor, index=index, partition=partition, sort_prefix=sort_prefix,
                                                sort_range=sort_range)
    items: list[dict[str, Any]] = []
    # a slim index filtering in itself reads its whole budget at once (500 small entries: about 7 RRU)
    slim = projected is not None and not read_filter
    evaluated, ask = 0, LIST_READ_ENTRIES if slim else max(limit, LIST_FIRST_READ)
    for _ in range(LIST_QUERIES):
        # DynamoDB's Limit counts entries evaluated, before the filter: it is what the budget is spent on.
        query["Limit"] = limit - len(items) if filter is None else min(ask, LIST_READ_ENTRIES - evaluated)
        answer = table.query(**query)
        evaluated += int(answer.get("ScannedCount", len(answer["Items"])))
        found = answer["Items"]
        if read_filter:  # what the filter reads of each entry's item (a few bytes), first
            found = [entry for entry in get_items(table, found, names=names[:2],
                                                  fields=[*names, *filter_fields(filter)]) if matches(filter, entry)]
        room = limit - len(items)
        # the items of a page of a projected index are read from the table; one gone meanwhile is not listed
        items += found[:room] if projected is None else get_items(table, found[:room], names=names[:2])
        start = answer.get("LastEvaluatedKey")
        if len(found) > room:  # more matches than the page holds: resume after the last one kept
            return Page(items, encode_cursor({name: found[room - 1][name] for name in names}))
        if not start or len(items) == limit or evaluated >= LIST_READ_ENTRIES:
            break
        query["ExclusiveStartKey"] = start
        ask *= LIST_READ_GROWTH
    return Page(items, encode_cursor(start) if start else None)
