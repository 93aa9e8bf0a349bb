"""A local server in a process of its own (``make run``'s moto and fake model): it has its own GIL, so its work
does not wait on the stack's threads, nor theirs on it. It is ``python -m MODULE PORT`` and ends when the stack
stops it or when the stack's process is gone (its stdin closes)."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

READY_S = 60  # the server's imports and first answer, on a busy machine


class ServerProcess:
    """``python -m MODULE PORT``, a server in a process of its own, as ``ThreadedMotoServer`` is used: its host and
    port (``port``, else a free one), its URL, stop(). The module serves until its stdin closes."""

    def __init__(self, module: str, port: int | None = None, *, wait: bool = True) -> None:
        """``wait``: until it answers (else ``wait_ready()`` does, while the caller gets on with its own start)."""
        if port is None:
            with socket.socket() as s:
                s.bind(("127.0.0.1", 0))
                port = int(s.getsockname()[1])
        self._module, self._port = module, port
        self.url = f"http://127.0.0.1:{port}"
        self._process = subprocess.Popen([sys.executable, "-m", module, str(port)], stdin=subprocess.PIPE)
        if wait:
            self.wait_ready()

    def wait_ready(self) -> None:
        deadline = time.monotonic() + READY_S
        while not self._answers():
            if self._process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"{self._module} did not start on port {self._port}")
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


def serve_until_stdin_closes(start: Callable[[], Callable[[], object]]) -> None:
    """A server process's life: ``start()`` starts the server and answers how to stop it, which is called once stdin
    closes. Ctrl-C reaches the whole process group, so it is ignored here: the stack stops first, then closes stdin
    (its pollers may still ask)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    stop = start()
    try:
        sys.stdin.read()  # until the stack closes it, or its process is gone
    finally:
        stop()


class UvicornThread:
    """A uvicorn server in a thread, stoppable."""

    def __init__(self, app: Any, port: int) -> None:
        import uvicorn

        self.url = f"http://127.0.0.1:{port}"
        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning",
                                                    lifespan="off"))
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def start(self) -> None:
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started and time.monotonic() < deadline:
            time.sleep(0.02)

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=5)
