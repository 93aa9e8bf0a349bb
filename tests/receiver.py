"""A real webhook receiver on 127.0.0.1 for tests: scripted answers, every request recorded."""

from __future__ import annotations

import select
import socket
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes
    # The status the sender heard: None while the answer is being made, and for good if the sender had hung up
    # (timed out) by the time it was ready.
    answered: int | None = None
    at: float = field(default_factory=time.monotonic)  # when it arrived, to order it against other receivers
    settled: threading.Event = field(default_factory=threading.Event, repr=False, compare=False)


@dataclass
class Answer:
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    delay_s: float = 0.0
    endless_body: bool = False  # announce 1 GB, then drip it for up to 5 s or until the client hangs up


class Receiver:
    """Answers each POST with the next scripted ``Answer`` (then 200 for ever); ``.url`` is its base URL."""

    def __init__(self) -> None:
        self.received: list[Received] = []
        self.script: list[Answer] = []
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length") or 0))
                got = Received(self.path, {k.lower(): v for k, v in self.headers.items()}, body)
                with receiver._lock:
                    receiver.received.append(got)
                    answer = receiver.script.pop(0) if receiver.script else Answer()
                try:
                    self._answer(answer, got)
                finally:
                    got.settled.set()

            def _answer(self, answer: Answer, got: Received) -> None:
                time.sleep(answer.delay_s)
                if answer.delay_s and _hung_up(self.connection):
                    return
                got.answered = answer.status
                self.send_response(answer.status)
                for name, value in answer.headers.items():
                    self.send_header(name, value)
                self.send_header("content-length", str(10**9 if answer.endless_body else 2))
                self.end_headers()
                if not answer.endless_body:
                    self.wfile.write(b"ok")
                    return
                until = time.monotonic() + 5
                try:
                    while time.monotonic() < until:
                        self.wfile.write(b"x" * 16384)
                        self.wfile.flush()
                        time.sleep(0.05)
                except OSError:  # the client stopped reading
                    pass

            def log_message(self, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.port = int(self._server.server_address[1])
        self.url = f"http://127.0.0.1:{self.port}"
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.02},
                                        daemon=True)

    def settled(self, timeout_s: float = 5.0) -> list[Received]:
        """What was received, once every answer has been made (or found unheard); bounded by ``timeout_s``."""
        deadline = time.monotonic() + timeout_s
        with self._lock:
            received = list(self.received)
        for got in received:
            if not got.settled.wait(max(0.0, deadline - time.monotonic())):
                raise AssertionError(f"the receiver did not answer within {timeout_s} s")
        return received

    def answer(self, *answers: Answer) -> Receiver:
        with self._lock:
            self.script.extend(answers)
        return self

    def start(self) -> Receiver:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()


def _hung_up(connection: socket.socket) -> bool:
    """Whether the client closed its side (a sender that timed out): the socket reads as ended."""
    readable, _, _ = select.select([connection], [], [], 0)
    if not readable:
        return False
    try:
        return connection.recv(1, socket.MSG_PEEK) == b""
    except OSError:
        return True


class Tarpit:
    """A receiver that accepts connections and never answers; with ``trickle_s``, it answers one byte every
    ``trickle_s`` seconds, for ever (a status line, then a header that never ends). Counts the connections open at
    once (accepted, not yet closed by the sender): ``max_open`` is the most seen; ``opened_at`` and ``closed_at``
    (``time.monotonic()``) order them against what other receivers got."""

    def __init__(self, *, trickle_s: float | None = None) -> None:
        self.trickle_s = trickle_s
        self.accepted = 0
        self.closed = 0
        self.max_open = 0
        self.opened_at: list[float] = []
        self.closed_at: list[float] = []
        self._listener = socket.create_server(("127.0.0.1", 0), backlog=128)
        self._listener.setblocking(False)
        self.port = int(self._listener.getsockname()[1])
        self.url = f"http://127.0.0.1:{self.port}"
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    @property
    def open_now(self) -> int:
        with self._lock:
            return self.accepted - self.closed

    def start(self) -> Tarpit:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self._listener.close()

    def _run(self) -> None:
        sent: dict[socket.socket, int] = {}  # an open connection -> bytes trickled to it (-1: nothing asked yet)
        next_drip = time.monotonic()
        try:
            while not self._stop.is_set():
                readable, _, _ = select.select([self._listener, *sent], [], [], 0.01)
                self._read(sent, [r for r in readable if r is not self._listener])
                if self._listener in readable:
                    self._accept(sent)
                if self.trickle_s is not None and time.monotonic() >= next_drip:
                    next_drip = time.monotonic() + self.trickle_s
                    self._drip(sent)
        finally:
            for conn in sent:
                conn.close()

    def _read(self, sent: dict[socket.socket, int], readable: list[socket.socket]) -> None:
        """Take in what the senders sent; count the connections they closed."""
        for conn in readable:
            try:
                data = conn.recv(65536)
            except BlockingIOError:
                continue
            except OSError:
                data = b""
            if data:
                sent[conn] = max(sent[conn], 0)
                continue
            del sent[conn]
            conn.close()
            with self._lock:
                self.closed += 1
                self.closed_at.append(time.monotonic())

    def _accept(self, sent: dict[socket.socket, int]) -> None:
        while True:
            try:
                conn, _ = self._listener.accept()
            except BlockingIOError:
                return
            # A sender closes one connection before it opens the next, so that close has reached its socket here:
            # count it first, or one sender's two connections would be counted as open at once.
            if sent:
                self._read(sent, select.select(list(sent), [], [], 0)[0])
            conn.setblocking(False)
            sent[conn] = -1
            with self._lock:
                self.accepted += 1
                self.opened_at.append(time.monotonic())
                self.max_open = max(self.max_open, self.accepted - self.closed)

    def _drip(self, sent: dict[socket.socket, int]) -> None:
        answer = b"HTTP/1.1 200 OK\r\nx-slow: "  # then "a" for ever: the header never ends
        for conn, n in sent.items():
            if n < 0:
                continue
            try:
                conn.send(answer[n:n + 1] or b"a")
            except OSError:
                continue
            sent[conn] = n + 1
