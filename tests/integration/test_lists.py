"""Bounded reads: every list request costs a bounded number of DynamoDB reads, whatever the tenant's history.

A tenant with 10,000 jobs is written straight into the moto table once for the module (its batch writer), with
a few cancelled, failed and scheduled jobs among them at known places; another tenant has cancelled jobs of its
own. Every DynamoDB Query the API makes is counted with a botocore ``after-call`` hook, request by request.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from boto3.dynamodb.types import TypeSerializer
from botocore.config import Config

from aijobs.dynamo import LIST_QUERIES, LIST_READ_ENTRIES
from aijobs.ids import new_ulid
from aijobs.local.template import provision
from aijobs.models.jobs import Job, JobRequest, JobStatus
from aijobs.services import Services, set_services
from aijobs.store import job_item
from tests.helpers import MovableClock
from tests.integration.conftest import KEY_A, KEY_B, TENANT_A, TENANT_B, MotoWorld, api_client, make_settings

JOBS = 10_000
START_MS = 1_767_225_600_000  # 2026-01-01: one millisecond apart, so the ids sort as they are numbered
CANCELLED = (12, 1_234, 4_321, 4_322)  # none among the newest 5,000; two side by side
SCHEDULED = range(0, JOBS, 500)  # every 500th job came from one schedule; two of them failed
SCHEDULED_FAILED = (500, 9_500)
SCHEDULE_ID = "sch_lists"


@dataclass
class Reads:
    """DynamoDB Query calls and the index entries they evaluated, since the last ``clear``."""

    calls: int = 0
    evaluated: int = 0

    def count(self, parsed: dict[str, Any], **_: Any) -> None:
        self.calls += 1
        self.evaluated += int(parsed.get("ScannedCount", 0))
        if self.calls > LIST_QUERIES:  # fail the request at once rather than read a 10,000-job history
            raise AssertionError(f"a list request made more than {LIST_QUERIES} Query calls")

    def clear(self) -> None:
        self.calls = self.evaluated = 0


@dataclass
class History:
    services: Services
    reads: Reads
    ids: list[str]  # tenant A's jobs, oldest first
    other_ids: set[str]  # tenant B's


def _job(index: int, tenant: str, status: JobStatus, *, schedule_id: str | None = None) -> Job:
    created = START_MS + index
    return Job(id=f"job_{new_ulid(created)}", tenant=tenant, status=status, model="fake-model",
               request=JobRequest(input=f"job {index}"), created_at=created // 1000, schedule_id=schedule_id,
               completed_at=created // 1000 if status.is_terminal else None)


def _status(index: int) -> JobStatus:
    if index in CANCELLED:
        return JobStatus.cancelled
    return JobStatus.failed if index in SCHEDULED_FAILED else JobStatus.completed


def _store(session: Any, table: str, jobs: list[Job]) -> None:
    """BatchWriteItem, 25 at a time, from a client that skips botocore's parameter validation (twice as fast)."""
    client = session.client("dynamodb", config=Config(parameter_validation=False))
    serialize = TypeSerializer().serialize
    items = [{name: serialize(value) for name, value in job_item(job).items()} for job in jobs]
    for start in range(0, len(items), 25):
        requests = {table: [{"PutRequest": {"Item": item}} for item in items[start:start + 25]]}
        while requests:
            requests = client.batch_write_item(RequestItems=requests).get("UnprocessedItems")


@pytest.fixture(scope="module")
def history(moto_world: MotoWorld, fake_model: Any) -> Iterator[History]:
    """The history in a jobs table of its own (template.yaml's, under another name), so that no other test's reset
    has to delete it: it is dropped whole at the end."""
    session = moto_world.new_session()
    own = provision({"Resources": {"JobsTable": moto_world.template["Resources"]["JobsTable"]}}, session=session,
                    prefix="lists")
    settings = make_settings(moto_world.resources, fake_model.url).model_copy(
        update={"jobs_table": own.refs["JobsTable"]})
    svc = Services(settings=settings, session=session, clock=MovableClock())
    try:
        svc.tenants.add_api_key(TENANT_A, KEY_A)
        svc.tenants.add_api_key(TENANT_B, KEY_B)
        jobs = [_job(i, TENANT_A, _status(i), schedule_id=SCHEDULE_ID if i in SCHEDULED else None)
                for i in range(JOBS)]
        # Tenant B's cancelled jobs sit among tenant A's, by id: a read that crossed tenants would find them.
        others = [_job(i + 1, TENANT_B, JobStatus.cancelled) for i in range(0, JOBS, 1_000)]
        _store(session, own.refs["JobsTable"], jobs + others)
        reads = Reads()
        svc.dynamodb.meta.client.meta.events.register("after-call.dynamodb.Query", reads.count)
        yield History(services=svc, reads=reads, ids=[job.id for job in jobs], other_ids={j.id for j in others})
    finally:
        session.client("dynamodb").delete_table(TableName=own.refs["JobsTable"])


@pytest.fixture
def client(history: History) -> Iterator[Any]:
    set_services(history.services)
    try:
        with api_client() as api:
            api.get("/v1/jobs", params={"limit": 1})  # the API key's lookup, cached from here on
            yield api
    finally:
        set_services(None)


def _walk(api: Any, reads: Reads, **params: Any) -> list[list[str]]:
    """Every page of a list, following next_cursor until it is null; each request's reads are checked."""
    pages: list[list[str]] = []
    cursor = None
    while True:
        reads.clear()
        response = api.get("/v1/jobs", params={**params, **({"cursor": cursor} if cursor else {})})
        assert response.status_code == 200, response.text
        body = response.json()
        assert len(body["data"]) <= params["limit"]
        assert reads.calls <= LIST_QUERIES and reads.evaluated <= LIST_READ_ENTRIES
        pages.append([job["id"] for job in body["data"]])
        if (cursor := body["next_cursor"]) is None:
            return pages
        # A page that has not spent its budget is a full one: so few pages, with a few matches, read it all.
        assert len(pages) <= JOBS // LIST_READ_ENTRIES + 20, "the cursors never end"


def test_a_filter_that_matches_nothing_answers_at_once_with_an_empty_page_and_a_cursor(
        client: Any, history: History) -> None:
    history.reads.clear()
    response = client.get("/v1/jobs", params={"status": "in_progress", "limit": 1})

    assert response.status_code == 200
    assert response.json()["data"] == [] and response.json()["next_cursor"] is not None
    assert history.reads.calls <= LIST_QUERIES and history.reads.evaluated <= LIST_READ_ENTRIES < JOBS // 5


def test_following_the_cursors_of_a_filtered_list_finds_exactly_its_jobs_in_order(
        client: Any, history: History) -> None:
    pages = _walk(client, history.reads, status="cancelled", limit=1)

    found = [job_id for page in pages for job_id in page]
    assert found == [history.ids[i] for i in sorted(CANCELLED, reverse=True)]  # newest first, none twice or missed
    assert not history.other_ids & set(found)
    assert pages[0] == []  # the newest 5,000 jobs hold none: the first page is empty, and says to read on
    assert len(pages) >= JOBS // LIST_READ_ENTRIES  # every page read at most its budget


def test_a_schedules_filtered_jobs_and_an_unfiltered_page_read_a_bounded_amount(
        client: Any, history: History) -> None:
    scheduled_failed = [job_id for page in _walk(client, history.reads, status="failed", limit=1,
                                                 schedule_id=SCHEDULE_ID) for job_id in page]
    history.reads.clear()
    newest = client.get("/v1/jobs", params={"limit": 100}).json()

    assert scheduled_failed == [history.ids[i] for i in sorted(SCHEDULED_FAILED, reverse=True)]
    assert [job["id"] for job in newest["data"]] == history.ids[:-101:-1] and newest["next_cursor"]
    assert history.reads.calls == 1 and history.reads.evaluated == 100  # unfiltered: exactly the page


def test_another_tenants_filtered_list_holds_only_its_own_jobs(client: Any, history: History) -> None:
    with api_client(KEY_B) as other:
        other.get("/v1/jobs", params={"limit": 1})
        found = [job_id for page in _walk(other, history.reads, status="cancelled", limit=100) for job_id in page]

    assert set(found) == history.other_ids and len(found) == len(history.other_ids)


def test_a_time_range_is_read_as_a_range_of_ids_and_other_filters_narrow_it(client: Any, history: History) -> None:
    start = START_MS // 1000  # job i was made at START_MS + i milliseconds
    window = {"limit": 100, "created_from": start + 4, "created_before": start + 5}
    pages = _walk(client, history.reads, **window)
    assert [job_id for page in pages for job_id in page] == list(reversed(history.ids[4_000:5_000]))
    cancelled = _walk(client, history.reads, **window, status="cancelled", model="fake-model", kind="text")
    assert [job_id for page in cancelled for job_id in page] == [history.ids[4_322], history.ids[4_321]]
    assert not any(_walk(client, history.reads, **window, model="another-model", kind="text"))
    first_second = _walk(client, history.reads, limit=100, created_before=start + 1, schedule_id=SCHEDULE_ID)
    assert [job_id for page in first_second for job_id in page] == [history.ids[500], history.ids[0]]


@pytest.mark.parametrize("params", [{"created_from": 5, "created_before": 5}, {"created_from": -1},
                                    {"kind": "video"}, {"model": "has space"}])
def test_a_bad_filter_is_422(client: Any, params: dict[str, Any]) -> None:
    response = client.get("/v1/jobs", params=params)
    assert response.status_code == 422 and response.json()["error"]["type"] == "invalid_request", response.text
