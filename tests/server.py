"""A loopback HTTP(S) server for safepip's tests: a directory, plus hostile answers per path.

Usage::

    with LoopbackServer(tmp_path) as server:       # serves tmp_path on 127.0.0.1, a free port
        server.trickle("/slow.whl", b"abc", interval=1.0)
        server.redirect("/moved", "http://127.0.0.1:1/elsewhere")
        fetch(server.url + "simple/foo/")            # directories serve their index.html
        assert server.requests == ["/simple/foo/"]  # every request line's path, in order

Paths given to the hostile modes are matched against the request path without its query.
Everything else is served from ``directory`` like ``python -m http.server`` (404 when there is
none). Pass ``tls=(certfile, keyfile)`` for HTTPS.

On exit the server stops accepting, wakes every handler (hanging and trickling ones included) by
shutting their sockets down, joins all threads and closes the listening socket; a thread that
does not stop fails loudly. Nothing is logged to stderr.
"""

from __future__ import annotations

import contextlib
import functools
import gzip
import socket
import socketserver
import ssl
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from typing import Any
from urllib.parse import urlsplit

__all__ = ["LoopbackServer"]

_JOIN_TIMEOUT = 10.0


@dataclass(frozen=True)
class _Mode:
    """How to answer one path: a kind, and what that kind needs."""

    kind: str
    status: int = 200
    body: bytes = b""
    headers: tuple[tuple[str, str], ...] = ()
    interval: float = 1.0
    whole_response: bool = False
    length: int | None = None  # a Content-Length that lies; None: the body's true length


class _Server(ThreadingHTTPServer):
    """ThreadingHTTPServer that tracks its handler threads and open connections for shutdown."""

    daemon_threads = True

    def __init__(self, handler: Callable[..., Any], tls: ssl.SSLContext | None) -> None:
        super().__init__(("127.0.0.1", 0), handler)
        self.tls = tls
        self.stopping = threading.Event()
        self.lock = threading.Lock()
        self.modes: dict[str, _Mode] = {}
        self.log: list[str] = []
        self.headers_log: list[dict[str, str]] = []
        self.errors: list[str] = []
        self.threads: list[threading.Thread] = []
        self.connections: set[socket.socket] = set()

    def server_bind(self) -> None:
        # HTTPServer.server_bind calls getfqdn(), a reverse DNS lookup that can stall offline.
        socketserver.TCPServer.server_bind(self)
        self.server_name, self.server_port = "127.0.0.1", self.server_address[1]

    def process_request(self, request: Any, client_address: Any) -> None:
        thread = threading.Thread(
            target=self.process_request_thread, args=(request, client_address), daemon=True
        )
        with self.lock:
            self.threads = [t for t in self.threads if t.is_alive()]
            self.threads.append(thread)
            self.connections.add(request)
        thread.start()

    def finish_request(self, request: Any, client_address: Any) -> None:
        if self.tls is None:
            super().finish_request(request, client_address)
            return
        request.settimeout(_JOIN_TIMEOUT)
        try:
            tls_request = self.tls.wrap_socket(request, server_side=True)
        except OSError as exc:  # e.g. the client refused our certificate, as it should
            self._record(f"TLS handshake: {exc}")
            return
        with self.lock:
            self.connections.discard(request)
            self.connections.add(tls_request)
        try:
            super().finish_request(tls_request, client_address)
        finally:
            # wrap_socket detached ``request``: the TLS socket is the one to close.
            self.shutdown_request(tls_request)

    def shutdown_request(self, request: Any) -> None:
        with self.lock:
            self.connections.discard(request)
        super().shutdown_request(request)

    def handle_error(self, request: Any, client_address: Any) -> None:
        # The default prints a traceback to stderr; clients that hang up early are expected.
        self._record(repr(sys.exc_info()[1]))

    def _record(self, error: str) -> None:
        with self.lock:
            self.errors.append(error)

    def wake_all(self) -> None:
        """Unblock every handler: set the stop event and shut every open connection down."""
        self.stopping.set()
        with self.lock:
            connections = list(self.connections)
        for connection in connections:
            with contextlib.suppress(OSError, ValueError):
                connection.shutdown(socket.SHUT_RDWR)


class _Handler(SimpleHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.0"  # one request per connection: simple to reason about
    timeout = _JOIN_TIMEOUT  # a client that connects and sends nothing cannot pin a thread

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        with self.server.lock:
            self.server.log.append(self.path)
            self.server.headers_log.append({k.lower(): v for k, v in self.headers.items()})
            mode = self.server.modes.get(urlsplit(self.path).path)
        if mode is None:
            super().do_GET()
            return
        try:
            getattr(self, f"_answer_{mode.kind}")(mode)
        except (BrokenPipeError, ConnectionResetError, ConnectionAbortedError):
            pass  # the client gave up, as the code under test should
        except OSError:
            if not self.server.stopping.is_set():
                raise

    def do_HEAD(self) -> None:
        self.send_error(405)

    def _head(self, mode: _Mode, length: int | None) -> None:
        self.send_response(mode.status)
        for name, value in mode.headers:
            self.send_header(name, value)
        if length is not None:
            self.send_header("Content-Length", str(length))
        self.end_headers()

    def _answer_bytes(self, mode: _Mode) -> None:
        self._head(mode, len(mode.body))
        self.wfile.write(mode.body)

    def _answer_redirect(self, mode: _Mode) -> None:
        self._head(mode, 0)

    def _answer_hang(self, mode: _Mode) -> None:
        self.server.stopping.wait()

    def _answer_trickle(self, mode: _Mode) -> None:
        if mode.whole_response:
            # Even the status line arrives a byte at a time: tests the deadline on headers.
            head = (
                f"HTTP/1.0 200 OK\r\nContent-Length: {len(mode.body)}\r\n\r\n".encode() + mode.body
            )
            data = head
        else:
            self._head(mode, len(mode.body))
            self.wfile.flush()
            data = mode.body
        for i in range(len(data)):
            if self.server.stopping.wait(mode.interval):
                return
            self.wfile.write(data[i : i + 1])
            self.wfile.flush()

    def _answer_endless(self, mode: _Mode) -> None:
        self._head(mode, None)
        block = b"x" * 65536
        while not self.server.stopping.is_set():
            self.wfile.write(block)

    def _answer_oversized(self, mode: _Mode) -> None:
        self._head(mode, mode.length)
        self.wfile.write(mode.body)


class LoopbackServer:
    """A context manager serving ``directory`` on ``http://127.0.0.1:<free port>/`` in a thread.

    ``url`` is the root URL (ending in ``/``); ``requests`` the paths requested so far (a copy,
    taken under a lock). ``errors`` lists exceptions handlers hit (tests may assert it is empty).
    With ``tls=(certfile, keyfile)`` it serves HTTPS instead, and ``url`` starts with https://.
    """

    def __init__(self, directory: Path | None = None, *, tls: tuple[Path, Path] | None = None):
        self._directory = directory
        context = None
        if tls is not None:
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(str(tls[0]), str(tls[1]))
        if directory is None:
            handler: Callable[..., Any] = _NoFilesHandler
        else:
            handler = functools.partial(_Handler, directory=str(directory))
        self._server = _Server(handler, context)
        self.port: int = self._server.server_address[1]
        scheme = "https" if tls is not None else "http"
        self.url = f"{scheme}://127.0.0.1:{self.port}/"
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    # -- lifecycle ---------------------------------------------------------------------------

    def __enter__(self) -> LoopbackServer:
        self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        """Stop serving, wake and join every thread, close the socket. Idempotent."""
        server = self._server
        server.wake_all()
        if self._thread.is_alive():
            server.shutdown()
            self._thread.join(_JOIN_TIMEOUT)
        server.wake_all()  # connections accepted while shutting down
        with server.lock:
            threads = list(server.threads)
        for thread in threads:
            thread.join(_JOIN_TIMEOUT)
        server.server_close()
        alive = [t for t in [self._thread, *threads] if t.is_alive()]
        if alive:
            raise RuntimeError(f"LoopbackServer: {len(alive)} thread(s) did not stop")

    # -- what was asked --------------------------------------------------------------------------

    @property
    def requests(self) -> list[str]:
        """The request paths (with query) received so far, in order."""
        with self._server.lock:
            return list(self._server.log)

    @property
    def request_headers(self) -> list[dict[str, str]]:
        """The headers of each request (names lower-cased), in the order of ``requests``."""
        with self._server.lock:
            return [dict(h) for h in self._server.headers_log]

    @property
    def errors(self) -> list[str]:
        """Unexpected errors inside handlers, as reprs."""
        with self._server.lock:
            return list(self._server.errors)

    def url_for(self, path: str) -> str:
        """The absolute URL of ``path`` (with or without a leading slash) on this server."""
        return self.url + path.lstrip("/")

    # -- hostile modes, per path -----------------------------------------------------------------

    def _set(self, path: str, mode: _Mode) -> None:
        if not path.startswith("/"):
            raise ValueError(f"path must start with '/': {path!r}")
        with self._server.lock:
            self._server.modes[path] = mode

    def reset(self, path: str) -> None:
        """Serve ``path`` from the directory again."""
        with self._server.lock:
            self._server.modes.pop(path, None)

    def serve_bytes(
        self,
        path: str,
        body: bytes,
        *,
        content_type: str = "application/octet-stream",
        headers: tuple[tuple[str, str], ...] = (),
    ) -> None:
        """Answer ``path`` with status 200 and ``body`` (other bytes than the file on disk)."""
        headers = (("Content-Type", content_type), *headers)
        self._set(path, _Mode("bytes", body=body, headers=headers))

    def status(self, path: str, code: int, body: bytes = b"error\n") -> None:
        """Answer ``path`` with status ``code`` (404, 500, ...) and a small body."""
        self._set(path, _Mode("bytes", status=code, body=body))

    def redirect(self, path: str, location: str, *, code: int = 302) -> None:
        """Answer ``path`` with a redirect to ``location`` (absolute or relative)."""
        self._set(path, _Mode("redirect", status=code, headers=(("Location", location),)))

    def trickle(
        self, path: str, body: bytes, *, interval: float = 1.0, whole_response: bool = False
    ) -> None:
        """Send the headers (with the true Content-Length), then ``body`` one byte per
        ``interval`` seconds. With ``whole_response`` even the status line and headers trickle."""
        self._set(
            path, _Mode("trickle", body=body, interval=interval, whole_response=whole_response)
        )

    def hang(self, path: str) -> None:
        """Read the request, then never answer (until the server closes)."""
        self._set(path, _Mode("hang"))

    def endless(self, path: str) -> None:
        """Answer 200 with no Content-Length and a body that never ends."""
        self._set(path, _Mode("endless"))

    def oversized(self, path: str, length: int, body: bytes = b"x") -> None:
        """Announce ``Content-Length: length``, send only ``body`` and close."""
        self._set(path, _Mode("oversized", body=body, length=length))

    def gzip(self, path: str, data: bytes) -> None:
        """Answer with ``gzip(data)`` and ``Content-Encoding: gzip`` (a bomb, if data is large)."""
        self._set(
            path,
            _Mode("bytes", body=gzip.compress(data), headers=(("Content-Encoding", "gzip"),)),
        )

    def html_error(self, path: str) -> None:
        """Answer 200 with an HTML error page, as captive portals and broken CDNs do."""
        page = b"<!DOCTYPE html><html><body><h1>Service unavailable</h1></body></html>\n"
        self._set(path, _Mode("bytes", body=page, headers=(("Content-Type", "text/html"),)))


class _NoFilesHandler(_Handler):
    """The handler when there is no directory: only the configured paths exist."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, directory="/nonexistent-safepip-test-root", **kwargs)

    def send_head(self) -> None:
        self.send_error(404)
