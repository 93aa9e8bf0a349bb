"""What lets a batch run stop and go on: the state file beside ``--out`` and the results already written."""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, TextIO

STATE_VERSION = 1


class ResumeError(Exception):
    """The state or results on disk do not fit this run."""


@dataclass
class ChunkRecord:
    """A submitted chunk: its key and, per job in order, ``[custom_id, job id or None, error or None]``."""

    key: str
    items: list[list[Any]]


@dataclass
class RunState:
    input_sha256: str
    chunk_size: int
    batch_id: str | None = None
    chunks: dict[str, ChunkRecord] = field(default_factory=dict)  # by label: the chunk's index, or retry-N
    retries: int = 0
    version: int = STATE_VERSION
    results_cursor: str | None = None  # where reading the batch's results goes on (GET /v1/batches/{id}/results)

    @staticmethod
    def path_for(out: Path) -> Path:
        return out.with_name(out.name + ".state")

    @classmethod
    def load(cls, path: Path, *, input_sha256: str, chunk_size: int) -> RunState:
        """The state of an earlier run of the same input, or a new one; another input's state is an error."""
        if not path.exists():
            return cls(input_sha256, chunk_size)
        try:
            raw = json.loads(path.read_text())
            state = cls(raw["input_sha256"], raw["chunk_size"], raw.get("batch_id"),
                        {label: ChunkRecord(**chunk) for label, chunk in raw["chunks"].items()}, raw["retries"],
                        raw["version"], raw.get("results_cursor"))
        except (ValueError, KeyError, TypeError) as exc:
            raise ResumeError(f"{path} cannot be read ({exc}); remove it to start again") from None
        if (state.input_sha256, state.chunk_size) != (input_sha256, chunk_size):
            raise ResumeError(f"{path} belongs to another input file or chunk size; "
                              "use another --out, or remove it and the results to start again")
        return state

    def save(self, path: Path) -> None:
        """Written whole to a temporary file, then renamed over the old one: a Ctrl-C never leaves half a state."""
        temporary = path.with_name(path.name + ".tmp")
        temporary.write_text(json.dumps(asdict(self)))
        os.replace(temporary, path)

    def record(self, label: str, key: str, items: list[list[Any]], batch_id: str | None) -> None:
        self.chunks[label] = ChunkRecord(key, items)
        self.retries += label.startswith("retry-")
        self.batch_id = self.batch_id or batch_id


def read_results(path: Path) -> dict[str, dict[str, Any]]:
    """The results already written, by custom_id. A last line cut short by a stop is removed from the file (its
    job is fetched again); a bad line before the last is an error, as the file is not ours then."""
    if not path.exists():
        return {}
    data = path.read_bytes()
    complete = data[:data.rfind(b"\n") + 1]
    if len(complete) < len(data):
        with path.open("r+b") as file:
            file.truncate(len(complete))
    results: dict[str, dict[str, Any]] = {}
    for number, line in enumerate(complete.decode().splitlines(), start=1):
        try:
            result = json.loads(line)
            results[result["custom_id"]] = result
        except (ValueError, KeyError, TypeError):
            raise ResumeError(f"{path} line {number} is not a result of this command; use another --out") from None
    return results


def write_result(sink: TextIO, result: dict[str, Any]) -> None:
    sink.write(json.dumps(result, separators=(",", ":")) + "\n")
    sink.flush()


def result_of(custom_id: str, job: dict[str, Any]) -> dict[str, Any]:
    """A result line from a finished job (or from a chunk item's error, with ``status: "rejected"``)."""
    return {"custom_id": custom_id, "id": job.get("id"), "status": job.get("status"), "output": job.get("output"),
            "usage": job.get("usage"), "cost_usd": job.get("cost_usd"), "error": job.get("error")}
