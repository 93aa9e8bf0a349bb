"""What running a queued piece of work came to. Domain code returns these; only sqs_batch.py turns them into SQS."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Done:
    """Finished with, whatever the result: the message is deleted."""


@dataclass(frozen=True)
class RetryIn:
    """Not finished: the message comes back in ``seconds`` (0: at once)."""

    seconds: int


@dataclass(frozen=True)
class SendAgainIn:
    """Not started, through no fault of its own (its tenant runs as many jobs as it may): the message is sent again,
    delayed ``seconds`` (SQS allows at most 900), and the received one deleted. Waiting thus never counts as a
    receive toward the dead-letter queue, as a visibility change would."""

    seconds: int


@dataclass(frozen=True)
class Poison:
    """Can never be processed: back at once, so SQS moves it to the dead-letter queue in seconds, not hours."""

    reason: str


Outcome = Done | RetryIn | SendAgainIn | Poison
DONE = Done()
