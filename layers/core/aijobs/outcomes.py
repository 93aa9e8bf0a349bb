"""What running a queued piece of work came to. Domain code returns these; only sqs_batch.py turns them into SQS."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Done:
    """Finished with, whatever the result: the message is deleted. A job parked by its tenant's concurrency limit
    is done with too: it waits in the table, not in the queue, and is sent again when it may start."""


@dataclass(frozen=True)
class RetryIn:
    """Not finished: the message comes back in ``seconds`` (0: at once)."""

    seconds: int


@dataclass(frozen=True)
class Poison:
    """Can never be processed: back at once, so SQS moves it to the dead-letter queue in seconds, not hours."""

    reason: str


Outcome = Done | RetryIn | Poison
DONE = Done()
