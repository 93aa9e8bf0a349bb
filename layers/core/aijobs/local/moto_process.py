"""moto's server in a process of its own, for ``make run``.

The local stack runs the API, the worker's batches, the pollers and the fake model as threads of one process, and
so under one GIL. moto served in that process too used about 60% of it: with 100 streams and 100 running jobs the
process spent a whole core, each DynamoDB request waited about 0.6 s in line, and a running job's flushes (so its
streams' deltas) came seconds apart. In a process of its own, moto has a core to itself and the stack has the
rest of its own. The server is the one ``start_moto_server`` makes (atomic DynamoDB, QueryVectors), on a port
chosen here; it ends when the stack stops it or when the stack's process is gone (its stdin closes).

moto also looks up, at every request, what never changes while it runs: the list of its service packages (a
directory listing and a stat of each of ~200 entries, under the dispatcher's lock) and the action methods of the
handler's class (``inspect.getmembers``). ``_remember_lookups`` keeps both from the first time: about a tenth of
the server's time a request.
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Iterable

from aijobs.local.emulator import start_moto_server
from aijobs.local.server_process import ServerProcess, serve_until_stdin_closes


def start_moto_process() -> ServerProcess:
    """This module's moto server in a process of its own."""
    return ServerProcess("aijobs.local.moto_process")


def _remember_lookups() -> None:
    """moto's lookups of what does not change while it runs, made once (this process's own moto only)."""
    import moto.backends
    import moto.core.responses

    modules = tuple(moto.backends.list_of_moto_modules())

    def list_of_moto_modules() -> Iterable[str]:
        return modules

    setattr(moto.backends, "list_of_moto_modules", list_of_moto_modules)  # noqa: B010  (mypy refuses it otherwise)
    method_names = getattr(moto.core.responses, "method_names_from_class")  # noqa: B009  (not re-exported)
    setattr(moto.core.responses, "method_names_from_class", functools.cache(method_names))  # noqa: B010


def main() -> None:
    _remember_lookups()
    serve_until_stdin_closes(lambda: start_moto_server(port=int(sys.argv[1])).stop)


if __name__ == "__main__":
    main()
