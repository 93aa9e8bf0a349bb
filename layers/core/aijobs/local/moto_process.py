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
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterable

from aijobs.local.emulator import start_moto_server

READY_S = 60  # moto's import and first answer, on a busy machine


class MotoProcess:
    """``python -m aijobs.local.moto_process PORT``, as ``ThreadedMotoServer`` is used: its host and port, stop()."""

    def __init__(self) -> None:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self._port = int(s.getsockname()[1])
        self._process = subprocess.Popen([sys.executable, "-m", "aijobs.local.moto_process", str(self._port)],
                                         stdin=subprocess.PIPE)
        deadline = time.monotonic() + READY_S
        while not self._answers():
            if self._process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"moto's server did not start on port {self._port}")
            time.sleep(0.05)

    def _answers(self) -> bool:
        try:
            socket.create_connection(("127.0.0.1", self._port), timeout=1).close()
        except OSError:
            return False
        return True

    def get_host_and_port(self) -> tuple[str, int]:
        return "127.0.0.1", self._port

    def stop(self) -> None:
        if self._process.stdin:
            self._process.stdin.close()  # the server's signal to end
        try:
            self._process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()


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
    # Ctrl-C reaches the whole process group: the stack stops first, then closes stdin (its pollers may still ask).
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _remember_lookups()
    server = start_moto_server(port=int(sys.argv[1]))
    try:
        sys.stdin.read()  # until the stack closes it, or its process is gone
    finally:
        server.stop()


if __name__ == "__main__":
    main()
