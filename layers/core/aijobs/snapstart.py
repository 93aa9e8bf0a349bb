"""Lambda SnapStart (ApiFunction, WorkerFunction, WebhookFunction in template.yaml): what a function builds before
its snapshot is taken, and what every copy restored from that snapshot makes new.

Before the snapshot, ``warm`` loads what a first request would (route modules, the model client's package), and
every model imported by then is built (aijobs.models.common.Model defers that to first use), so no restored copy
pays for either. After a restore, nothing made before it that must differ between copies is kept: the
clients (the boto3 session and its clients, the model client's HTTP pool; no connection is open in the snapshot, as
nothing is called before it, but the copies must not share credentials resolved at snapshot time), and ``random``'s
state, which would make every copy draw the same retry jitter. ids (ULIDs, keys) come from ``os.urandom`` and
``secrets`` each time, which a restore does not repeat.

The hooks come from the Lambda runtime (``snapshot_restore_py``, python3.12 and later); elsewhere (tests, the local
stack) nothing is registered, and nothing is ever snapshotted.
"""

from __future__ import annotations

import random
from collections.abc import Callable


def register(warm: Callable[[], object]) -> bool:
    """Register ``warm`` to run before the snapshot and ``renew`` after each restore; False off Lambda's runtime."""
    try:
        from snapshot_restore_py import register_after_restore, register_before_snapshot
    except ImportError:
        return False
    register_before_snapshot(lambda: prepare(warm))
    register_after_restore(renew)
    return True


def prepare(warm: Callable[[], object]) -> None:
    """Before the snapshot: ``warm``, then every model it and the imports before it brought in, built."""
    from aijobs.models.common import build_models

    warm()
    build_models()


def renew() -> None:
    """What each restored copy makes its own: a fresh seed, and new clients (made again on first use)."""
    from aijobs import services

    random.seed()
    current = services.current_services()
    if current is not None:
        current.renew_clients()
