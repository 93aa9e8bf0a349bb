"""A job as OpenAI's Responses API shows it: the Response object, and its event stream (``response.*``).

The events are derived from the job's neutral events (streams.py), in an order any reader derives the same way from
what is stored, so each gets the same ``sequence_number`` whether it is sent live or replayed: a client resumes
with ``starting_after=N`` and gets exactly what follows N.

- ``response.created`` (the job queued), then, when its first attempt starts, ``response.in_progress``,
  ``response.output_item.added`` and ``response.content_part.added``;
- one ``response.output_text.delta`` per chunk of the output log (an attempt after a failed one starts its text
  again: its deltas follow, and the final events carry the text that counts);
- at the end ``response.output_text.done``, ``response.content_part.done``, ``response.output_item.done`` (when an
  item was opened) and ``response.completed``, ``response.incomplete`` (stopped at ``max_output_tokens``),
  ``response.failed`` or ``response.cancelled`` (not one of OpenAI's stream events: its webhook's name), each with
  the whole Response.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from aijobs.models.jobs import Job, JobStatus, JsonSchemaResponseFormat
from aijobs.models.responses import response_id_of
from aijobs.streams import JobEvent

# How a job's status reads as a Response's.
_STATUS = {JobStatus.queued: "queued", JobStatus.in_progress: "in_progress", JobStatus.completed: "completed",
           JobStatus.failed: "failed", JobStatus.cancelled: "cancelled"}


def response_status(job: Job) -> str:
    if job.status is JobStatus.completed and job.finish_reason == "length":
        return "incomplete"
    return _STATUS[job.status]


def message_id(job: Job) -> str:
    return "msg_" + job.id.removeprefix("job_")


def _message(job: Job, text: str, status: str) -> dict[str, Any]:
    return {"type": "message", "id": message_id(job), "status": status, "role": "assistant",
            "content": [_text_part(text)]}


def _text_part(text: str) -> dict[str, Any]:
    return {"type": "output_text", "text": text, "annotations": [], "logprobs": []}


def _usage(job: Job) -> dict[str, Any] | None:
    if job.usage is None:
        return None
    return {"input_tokens": job.usage.input_tokens, "input_tokens_details": {"cached_tokens": 0},
            "output_tokens": job.usage.output_tokens, "output_tokens_details": {"reasoning_tokens": 0},
            "total_tokens": job.usage.total_tokens or job.usage.input_tokens + job.usage.output_tokens}


def _text_format(job: Job) -> dict[str, Any]:
    """The response's ``text.format``: its job's ``response_format`` as the Responses API spells it (flat)."""
    response_format = job.request.response_format
    if response_format is None:
        return {"type": "text"}
    if isinstance(response_format, JsonSchemaResponseFormat):
        return {"type": "json_schema", **response_format.json_schema.model_dump(exclude_none=True)}
    return {"type": "json_object"}


def to_response(job: Job, *, status: str | None = None, with_output: bool = True) -> dict[str, Any]:
    """The Response object of a job (``status`` overrides the job's: a stream's snapshots)."""
    status = status or response_status(job)
    item_status = {"completed": "completed", "incomplete": "incomplete"}.get(status, "in_progress")
    output = ([_message(job, job.output_text, item_status)]
              if with_output and job.output_text is not None else [])
    error = ({"code": job.error.code, "message": job.error.message}
             if status == "failed" and job.error is not None else None)
    request = job.request
    return {
        "id": response_id_of(job.id), "object": "response", "created_at": job.created_at, "status": status,
        "completed_at": job.completed_at if job.status.is_terminal else None,
        "model": job.provider_model or job.model, "output": output, "usage": _usage(job) if with_output else None,
        "error": error,
        "incomplete_details": {"reason": "max_output_tokens"} if status == "incomplete" else None,
        "instructions": request.instructions, "metadata": request.metadata, "background": job.background,
        "max_output_tokens": request.max_output_tokens, "temperature": request.temperature, "top_p": None,
        "parallel_tool_calls": True, "tool_choice": "auto", "tools": [], "text": {"format": _text_format(job)},
        "previous_response_id": None, "reasoning": None, "store": True, "truncation": "disabled",
        "prompt": ({"id": job.prompt_id, "version": str(job.prompt_version), "variables": None}
                   if job.prompt_id else None),
        "cost_usd": float(job.cost_usd) if job.cost_usd is not None else None,  # aijobs': what the call cost
    }


def input_items(job: Job) -> list[dict[str, Any]]:
    """``GET /v1/responses/{id}/input_items``: the messages the response was made from, as input items."""
    messages = job.request.input_messages
    return [{"type": "message", "id": f"msg_{job.id.removeprefix('job_')}_in{n}", "status": "completed",
             "role": m["role"], "content": [{"type": "input_text", "text": m["content"]}]}
            for n, m in enumerate(messages)]


class ResponseEvents:
    """One job's events as OpenAI's ``response.*`` events, numbered as they are made (see the module)."""

    def __init__(self, job: Job) -> None:
        self._job = job
        self._sequence = -1
        self._opened = False  # the output item and its content part were announced
        self._text: list[str] = []

    def _event(self, kind: str, **fields: Any) -> dict[str, Any]:
        self._sequence += 1
        return {"type": kind, "sequence_number": self._sequence, **fields}

    def _part(self) -> dict[str, Any]:
        return {"item_id": message_id(self._job), "output_index": 0, "content_index": 0}

    def translate(self, event: JobEvent) -> list[dict[str, Any]]:
        job = event.job or self._job
        if event.kind == "status" and event.status is JobStatus.queued:
            return [self._event("response.created", response=to_response(job, status="queued", with_output=False))]
        if event.kind == "status":
            return self._open(job) if not self._opened else []
        if event.kind == "delta":
            self._text.append(event.text)
            return [*self._open(job), self._event("response.output_text.delta", delta=event.text, logprobs=[],
                                                  **self._part())]
        return self._close(job)

    def _open(self, job: Job) -> list[dict[str, Any]]:
        if self._opened:
            return []
        self._opened = True
        return [self._event("response.in_progress", response=to_response(job, status="in_progress",
                                                                         with_output=False)),
                self._event("response.output_item.added", output_index=0, item=_message(job, "", "in_progress")
                            | {"content": []}),
                self._event("response.content_part.added", part=_text_part(""), **self._part())]

    def _close(self, job: Job) -> list[dict[str, Any]]:
        status = response_status(job)
        events = []
        if self._opened:
            text = job.output_text if job.output_text is not None else "".join(self._text)
            item_status = {"completed": "completed", "incomplete": "incomplete"}.get(status, "incomplete")
            events += [self._event("response.output_text.done", text=text, logprobs=[], **self._part()),
                       self._event("response.content_part.done", part=_text_part(text), **self._part()),
                       self._event("response.output_item.done", output_index=0,
                                   item=_message(job, text, item_status))]
        return [*events, self._event(f"response.{status}", response=to_response(job))]


async def response_events(events: AsyncIterator[JobEvent], job: Job, *,
                          starting_after: int = -1) -> AsyncIterator[dict[str, Any]]:
    """The job's ``response.*`` events with sequence numbers over ``starting_after``; ``events`` must be the job's
    events from its first (the numbering is derived from the whole sequence)."""
    translator = ResponseEvents(job)
    async for event in events:
        for translated in translator.translate(event):
            if translated["sequence_number"] > starting_after:
                yield translated
