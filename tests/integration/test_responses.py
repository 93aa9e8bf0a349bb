"""/v1/responses driven by the official ``openai`` SDK (sync and async clients) against the API on 127.0.0.1: the
SDK is the client, unpatched; the jobs run on the in-process worker and the fake model."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import openai
import pytest

from aijobs.local.server_process import UvicornThread
from aijobs.models.tenants import TenantLimits
from aijobs.services import Services
from tests.helpers import eventually
from tests.integration.conftest import KEY_A, KEY_B, TENANT_A, run_worker


@pytest.fixture
def client(server: UvicornThread) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=f"{server.url}/v1", api_key=KEY_A, max_retries=0, timeout=30) as sdk:
        yield sdk


@contextmanager
def worker_running(services: Services, handler: Any) -> Iterator[None]:
    """The worker polls the jobs queue in a thread (as the event source mapping would) until the block ends."""
    stop = threading.Event()

    def poll() -> None:
        while not stop.is_set():
            if not run_worker(services, handler)["received"]:
                stop.wait(0.05)

    thread = threading.Thread(target=poll, daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(timeout=30)


def test_background_create_then_poll_and_output_text(client: openai.OpenAI, services: Services,
                                                     worker_handler: Any) -> None:
    created = client.responses.create(model="fake-model", input="Hello there", background=True,
                                      metadata={"order": "42"})

    assert created.id.startswith("resp_") and created.status == "queued" and created.background is True
    run_worker(services, worker_handler)
    done = client.responses.retrieve(created.id)
    assert done.status == "completed" and done.output_text == "Echo: Hello there"
    assert done.usage is not None and done.usage.output_tokens > 0 and done.model == "fake-model"
    assert done.metadata == {"order": "42"}
    # the same record as a job
    job = services.store.get_job("job_" + created.id.removeprefix("resp_"))
    assert job is not None and job.surface == "responses" and job.output_text == done.output_text


def test_a_message_list_with_input_text_parts_and_instructions(client: openai.OpenAI, services: Services,
                                                                worker_handler: Any) -> None:
    with worker_running(services, worker_handler):
        done = client.responses.create(model="fake-model", instructions="Be brief.", input=[
            {"role": "user", "content": [{"type": "input_text", "text": "one "}, {"type": "input_text",
                                                                                  "text": "two"}]}])

    assert done.status == "completed" and done.output_text == "Echo: one two"
    items = client.responses.input_items.list(done.id)
    assert [item.content[0].text for item in items.data] == ["one two"]  # type: ignore[union-attr]


def test_a_response_waited_for_answers_completed_with_its_cost(server: UvicornThread, services: Services,
                                                               worker_handler: Any) -> None:
    with worker_running(services, worker_handler), openai.OpenAI(base_url=f"{server.url}/v1", api_key=KEY_A,
                                                                 max_retries=0) as sdk:
        raw = sdk.responses.with_raw_response.create(model="fake-model", input="wait for me")

    done = raw.parse()
    assert done.status == "completed" and done.output_text == "Echo: wait for me" and done.background is False
    assert float(raw.headers["x-aijobs-cost-usd"]) > 0 and raw.headers["x-request-id"]


def test_past_the_wait_the_client_is_told_to_use_background_mode_and_is_not_retried(
        server: UvicornThread, services: Services, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(services.settings, "sync_wait_s", 1)
    calls = 0

    def count(request: httpx.Request) -> None:
        nonlocal calls
        calls += 1

    with openai.OpenAI(base_url=f"{server.url}/v1", api_key=KEY_A, max_retries=2,
                       http_client=httpx.Client(event_hooks={"request": [count]})) as sdk, \
            pytest.raises(openai.InternalServerError) as raised:
        sdk.responses.create(model="fake-model", input="nobody runs me")  # no worker: it stays queued

    assert raised.value.status_code == 504 and raised.value.response.headers["x-should-retry"] == "false"
    assert calls == 1  # one model run asked for, not three
    assert "background: true" in raised.value.message and raised.value.code == "response_timeout"


def test_a_run_stopped_at_max_output_tokens_is_incomplete(client: openai.OpenAI, services: Services,
                                                         worker_handler: Any) -> None:
    created = client.responses.create(model="fake-model", input="one two three four five six seven",
                                      max_output_tokens=3, background=True)
    run_worker(services, worker_handler)

    done = client.responses.retrieve(created.id)

    assert done.status == "incomplete" and done.incomplete_details is not None
    assert done.incomplete_details.reason == "max_output_tokens"
    job = services.store.get_job("job_" + created.id.removeprefix("resp_"))
    assert job is not None and (job.status.value, job.finish_reason) == ("completed", "length")


def test_create_with_stream_true_yields_openais_events_in_order(client: openai.OpenAI, services: Services,
                                                                  worker_handler: Any) -> None:
    with worker_running(services, worker_handler):
        events = list(client.responses.create(model="fake-model", input="stream [[tokens=5]] [[token_ms=50]]",
                                              stream=True))

    types = [event.type for event in events]
    assert types[:4] == ["response.created", "response.in_progress", "response.output_item.added",
                         "response.content_part.added"]
    assert types[-4:] == ["response.output_text.done", "response.content_part.done", "response.output_item.done",
                          "response.completed"]
    assert [event.sequence_number for event in events] == list(range(len(events)))
    deltas = "".join(e.delta for e in events if e.type == "response.output_text.delta")  # type: ignore[union-attr]
    assert deltas == events[-1].response.output_text  # type: ignore[union-attr]


def test_the_stream_helper_and_a_resume_with_starting_after(client: openai.OpenAI, services: Services,
                                                            worker_handler: Any) -> None:
    created = client.responses.create(model="fake-model", input="resume [[tokens=6]] [[token_ms=30]]",
                                      background=True)
    run_worker(services, worker_handler)

    with client.responses.stream(response_id=created.id) as stream:  # the helper: replays from the start
        whole = list(stream)
        final = stream.get_final_response()
    assert final.output_text == client.responses.retrieve(created.id).output_text
    resumed = list(client.responses.retrieve(created.id, stream=True, starting_after=3))  # as the Ruby SDK asks
    assert [e.sequence_number for e in resumed] == [e.sequence_number for e in whole[4:]]
    with client.responses.stream(response_id=created.id, starting_after=3) as stream:  # filtered by the helper
        assert [e.sequence_number for e in stream] == [e.sequence_number for e in whole[4:]]


def test_cancel_a_background_response_and_again(client: openai.OpenAI, services: Services) -> None:
    created = client.responses.create(model="fake-model", input="cancel me", background=True)

    cancelled = client.responses.cancel(created.id)
    again = client.responses.cancel(created.id)

    assert cancelled.status == again.status == "cancelled"


def test_a_response_made_without_background_cannot_be_cancelled(client: openai.OpenAI, services: Services) -> None:
    job = services.jobs.submit_job(tenant=TENANT_A, request=_request("not background"), surface="responses",
                                   background=False)

    with pytest.raises(openai.BadRequestError) as raised:
        client.responses.cancel("resp_" + job.id.removeprefix("job_"))

    assert raised.value.code == "not_background"


def _request(text: str) -> Any:
    from aijobs.models.jobs import JobRequest

    return JobRequest(input=text)


def test_an_unknown_field_is_a_400_naming_it(client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as raised:
        client.responses.create(model="fake-model", input="hi", background=True, tools=[])

    body = raised.value.body
    assert isinstance(body, dict) and body["type"] == "invalid_request_error" and body["param"] == "tools"
    assert "tools" in raised.value.message


def test_every_validation_error_is_a_400_in_openais_shape(client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as raised:
        client.responses.create(model="fake-model", input="hi", background=True, temperature=7)

    assert raised.value.status_code == 400 and isinstance(raised.value.body, dict)
    assert raised.value.body["param"] == "temperature" and raised.value.body["code"] == "invalid_fields"
    assert raised.value.request_id


def test_the_sdks_typed_errors(server: UvicornThread, client: openai.OpenAI, services: Services) -> None:
    with openai.OpenAI(base_url=f"{server.url}/v1", api_key="aj_wrong", max_retries=0) as stranger, \
            pytest.raises(openai.AuthenticationError):
        stranger.responses.retrieve("resp_01J0000000000000000000000A")
    with pytest.raises(openai.NotFoundError):
        client.responses.retrieve("resp_01J0000000000000000000000A")
    services.tenants.set_limits(TENANT_A, TenantLimits(requests_per_minute=1))
    with pytest.raises(openai.RateLimitError) as limited:
        for _ in range(3):
            client.responses.retrieve("resp_01J0000000000000000000000A")
    assert int(limited.value.response.headers["retry-after"]) >= 1


def test_another_tenants_response_is_not_found(server: UvicornThread, client: openai.OpenAI) -> None:
    created = client.responses.create(model="fake-model", input="mine", background=True)

    with openai.OpenAI(base_url=f"{server.url}/v1", api_key=KEY_B, max_retries=0) as other, \
            pytest.raises(openai.NotFoundError):
        other.responses.retrieve(created.id)


def test_the_async_client_creates_streams_and_retrieves(server: UvicornThread, services: Services,
                                                        worker_handler: Any) -> None:
    async def scenario() -> tuple[list[str], str]:
        async with openai.AsyncOpenAI(base_url=f"{server.url}/v1", api_key=KEY_A, max_retries=0) as sdk:
            stream = await sdk.responses.create(model="fake-model", input="async [[tokens=3]]", stream=True)
            types = [event.type async for event in stream]
            created = await sdk.responses.create(model="fake-model", input="later", background=True)
            done = await _eventually_done(sdk, created.id)
            return types, done

    async def _eventually_done(sdk: openai.AsyncOpenAI, response_id: str) -> str:
        for _ in range(200):
            response = await sdk.responses.retrieve(response_id)
            if response.status == "completed":
                return response.output_text
            await asyncio.sleep(0.05)
        raise AssertionError("not completed")

    with worker_running(services, worker_handler):
        types, text = asyncio.run(scenario())

    assert types[0] == "response.created" and types[-1] == "response.completed"
    assert text == "Echo: later"


def test_a_non_background_stream_whose_client_leaves_is_cancelled(client: openai.OpenAI, services: Services,
                                                                   worker_handler: Any) -> None:
    with worker_running(services, worker_handler):
        stream = client.responses.create(model="fake-model", input="long [[tokens=200]] [[token_ms=50]]",
                                         stream=True)
        events = iter(stream)
        created = next(events)
        assert created.type == "response.created"
        next(e for e in events if e.type == "response.output_text.delta")  # it runs
        stream.close()
        job_id = "job_" + created.response.id.removeprefix("resp_")  # type: ignore[union-attr]

        job = eventually(lambda: (j := services.store.get_job(job_id)) and j.status.is_terminal and j, timeout_s=15)

    assert job.status.value == "cancelled"


def test_deleting_a_response_deletes_its_input_and_output_everywhere(client: openai.OpenAI, services: Services,
                                                                     worker_handler: Any) -> None:
    created = client.responses.create(model="fake-model", input="private words", background=True)
    run_worker(services, worker_handler)
    job_id = "job_" + created.id.removeprefix("resp_")

    client.responses.delete(created.id)

    with pytest.raises(openai.NotFoundError):
        client.responses.retrieve(created.id)
    job = services.store.get_job(job_id)
    assert job is not None and job.content_deleted_at is not None and job.output_text is None
    assert job.request.input == "" and job.usage is not None and job.cost_usd  # what it used and cost stays
    assert "private words" not in str(services.table.scan()["Items"])
    with pytest.raises(openai.NotFoundError):
        client.responses.delete(created.id)


def test_a_job_waited_for_on_v1_jobs_carries_its_cost_too(server: UvicornThread, services: Services,
                                                           worker_handler: Any) -> None:
    with worker_running(services, worker_handler), httpx.Client(
            base_url=server.url, headers={"Authorization": f"Bearer {KEY_A}"}, timeout=30) as api:
        answer = api.post("/v1/jobs", json={"input": "wait"}, headers={"Prefer": "wait=10"})

    assert answer.status_code == 200
    assert float(answer.headers["x-aijobs-cost-usd"]) == answer.json()["cost_usd"] > 0


def test_a_response_from_a_registry_prompt_by_version_or_label(client: openai.OpenAI, server: UvicornThread,
                                                               services: Services, worker_handler: Any) -> None:
    with httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {KEY_A}"}) as api:
        prompt = api.post("/v1/prompts", json={"name": "greet", "template": [
            {"role": "user", "content": "Hello {{name}}"}], "labels": ["production"]}).json()
        api.post(f"/v1/prompts/{prompt['id']}/versions", json={"template": [
            {"role": "user", "content": "Hi {{name}}"}]})

    with worker_running(services, worker_handler):
        by_label = client.responses.create(model="fake-model", prompt={"id": prompt["id"], "variables": {
            "name": "Ann"}})
        by_version = client.responses.create(model="fake-model", prompt={"id": prompt["id"], "version": "2",
                                                                         "variables": {"name": "Bo"}})

    assert by_label.output_text == "Echo: Hello Ann" and by_label.prompt.version == "1"  # type: ignore[union-attr]
    assert by_version.output_text == "Echo: Hi Bo" and by_version.prompt.version == "2"  # type: ignore[union-attr]
    with pytest.raises(openai.BadRequestError) as raised:
        client.responses.create(model="fake-model", prompt={"id": prompt["id"], "variables": {}}, background=True)
    assert "name" in raised.value.message


def test_responses_parse_gets_a_typed_object_from_a_json_schema_job(client: openai.OpenAI, services: Services,
                                                                    worker_handler: Any) -> None:
    from pydantic import BaseModel

    class Film(BaseModel):
        title: str
        year: int

    with worker_running(services, worker_handler):
        parsed = client.responses.parse(model="fake-model", input="a film", text_format=Film)
    assert parsed.status == "completed" and isinstance(parsed.output_parsed, Film)
    assert parsed.text is not None and parsed.text.format.type == "json_schema"
    job = services.store.get_job("job_" + parsed.id.removeprefix("resp_"))
    assert job is not None and job.request.response_format is not None  # the worker checked it against the schema
    assert job.to_public().output.parsed == parsed.output_parsed.model_dump()  # type: ignore[union-attr]


def test_a_text_format_with_a_schema_that_is_not_one_is_a_400_naming_it(client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as raised:
        client.responses.create(model="fake-model", input="x", text={"format": {
            "type": "json_schema", "name": "bad", "schema": {"type": "no-such-type"}}})
    assert "schema" in str(raised.value.body) and raised.value.status_code == 400


def test_the_sdks_embeddings_create_runs_an_embedding_job(client: openai.OpenAI, services: Services,
                                                         worker_handler: Any) -> None:
    from aijobs.local import fake_kinds

    with worker_running(services, worker_handler):
        # the SDK asks for base64 (float32) by default and decodes it
        made = client.embeddings.create(model="text-embedding-3-small", input=["alpha", "beta"], dimensions=32)
        floats = client.embeddings.create(model="text-embedding-3-small", input="gamma", encoding_format="float")
    assert [item.index for item in made.data] == [0, 1] and len(made.data[1].embedding) == 32
    assert made.data[1].embedding == pytest.approx(fake_kinds.embedding("beta", 32), abs=1e-6)
    assert made.usage.prompt_tokens == 2 and made.model
    assert floats.data[0].embedding == fake_kinds.embedding("gamma")  # as the model made them, to the digit
    jobs = services.jobs.list_jobs(tenant=TENANT_A, status=None, limit=10, cursor=None, schedule_id=None).items
    assert {job.request.kind for job in jobs} == {"embedding"} and all(job.cost_usd for job in jobs)


def test_embeddings_that_fail_or_would_not_fit_one_answer_are_openai_errors(
        client: openai.OpenAI, services: Services, worker_handler: Any) -> None:
    with worker_running(services, worker_handler), pytest.raises(openai.APIStatusError) as failed:
        client.embeddings.create(model="text-embedding-3-small", input=["[[fail=400]] x"])
    assert failed.value.status_code == 502 and failed.value.code == "http_400"
    with pytest.raises(openai.BadRequestError) as too_large:
        client.embeddings.create(model="m", input=["x"] * 2000, encoding_format="float")
    assert too_large.value.code == "answer_too_large" and "POST /v1/jobs" in too_large.value.message
    with pytest.raises(openai.BadRequestError) as tokens:
        client.embeddings.create(model="m", input=[[1, 2, 3]])  # token arrays are not taken: a 400, not ignored
    assert tokens.value.status_code == 400
