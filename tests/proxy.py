"""A real HTTP CONNECT proxy on 127.0.0.1 for safepip's tests: it records each tunnel asked for.

Usage::

    with ConnectProxy(hosts={"safepip.test": "127.0.0.1"}) as proxy:
        fetch_bytes("https://safepip.test:<port>/x", proxies=Proxies(https=proxy.url), ...)
        assert proxy.targets == ["safepip.test:<port>"]

The proxy resolves target names only through ``hosts`` (an IP literal is used as is), so a test
proves that the client let the proxy resolve the name: no resolver knows ``safepip.test``.
It only relays bytes; TLS runs end to end between the client and the server. ``refuse=403``
makes it answer every CONNECT with that status instead. On exit it stops accepting, shuts every
tunnel down, joins its threads and closes its sockets; a thread that does not stop fails loudly.
"""

from __future__ import annotations

import contextlib
import ipaddress
import select
import socket
import threading
from collections.abc import Mapping
from types import TracebackType

__all__ = ["ConnectProxy"]

_JOIN_TIMEOUT = 10.0
_POLL = 0.05


class ConnectProxy:
    """A threaded CONNECT proxy on ``http://127.0.0.1:<free port>`` (``url``)."""

    def __init__(self, *, hosts: Mapping[str, str] | None = None, refuse: int | None = None):
        self._hosts = dict(hosts or {})
        self._refuse = refuse
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.settimeout(_POLL)
        self.port: int = self._listener.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._targets: list[str] = []
        self._headers: list[dict[str, str]] = []
        self._sockets: set[socket.socket] = set()
        self._threads: list[threading.Thread] = []
        self._acceptor = threading.Thread(target=self._accept, daemon=True)

    # -- lifecycle ---------------------------------------------------------------------------

    def __enter__(self) -> ConnectProxy:
        self._acceptor.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        """Stop accepting, end every tunnel, join every thread, close every socket."""
        self._stop.set()
        if self._acceptor.is_alive():
            self._acceptor.join(_JOIN_TIMEOUT)
        with self._lock:
            threads = list(self._threads)
            sockets = list(self._sockets)
        for sock in sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
        for thread in threads:
            thread.join(_JOIN_TIMEOUT)
        self._listener.close()
        alive = [t for t in [self._acceptor, *threads] if t.is_alive()]
        if alive:
            raise RuntimeError(f"ConnectProxy: {len(alive)} thread(s) did not stop")

    # -- what was asked ----------------------------------------------------------------------

    @property
    def targets(self) -> list[str]:
        """The ``host:port`` of each CONNECT received, in order."""
        with self._lock:
            return list(self._targets)

    @property
    def headers(self) -> list[dict[str, str]]:
        """The headers of each CONNECT (names lower-cased), in the order of ``targets``."""
        with self._lock:
            return [dict(h) for h in self._headers]

    # -- the proxy -----------------------------------------------------------------------------

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                client, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            thread = threading.Thread(target=self._serve, args=(client,), daemon=True)
            with self._lock:
                self._sockets.add(client)
                self._threads.append(thread)
            thread.start()

    def _serve(self, client: socket.socket) -> None:
        upstream: socket.socket | None = None
        try:
            head = self._read_head(client)
            if head is None:
                return
            request, *lines = head.decode("latin-1").split("\r\n")
            method, target, _ = [*request.split(" ", 2), "", ""][:3]
            headers = {}
            for line in lines:
                name, _, value = line.partition(":")
                headers[name.strip().lower()] = value.strip()
            with self._lock:
                self._targets.append(target)
                self._headers.append(headers)
            if method != "CONNECT":
                client.sendall(b"HTTP/1.1 405 Method Not Allowed\r\nContent-Length: 0\r\n\r\n")
                return
            if self._refuse is not None:
                client.sendall(f"HTTP/1.1 {self._refuse} Refused\r\n\r\n".encode())
                return
            upstream = self._connect(target)
            if upstream is None:
                client.sendall(b"HTTP/1.1 502 Bad Gateway\r\n\r\n")
                return
            client.sendall(b"HTTP/1.1 200 Connection established\r\n\r\n")
            self._relay(client, upstream)
        except OSError:
            pass  # the client or the server hung up: the tunnel ends
        finally:
            for sock in (client, upstream):
                if sock is not None:
                    with self._lock:
                        self._sockets.discard(sock)
                    sock.close()

    def _read_head(self, client: socket.socket) -> bytes | None:
        client.settimeout(_JOIN_TIMEOUT)
        head = b""
        while b"\r\n\r\n" not in head:
            data = client.recv(4096)
            if not data or len(head) > 65536 or self._stop.is_set():
                return None
            head += data
        return head.split(b"\r\n\r\n", 1)[0]

    def _connect(self, target: str) -> socket.socket | None:
        host, _, port = target.rpartition(":")
        host = host.strip("[]")
        address = self._hosts.get(host, host)
        try:
            ipaddress.ip_address(address)
        except ValueError:
            return None  # only names the test mapped: never the machine's resolver
        try:
            upstream = socket.create_connection((address, int(port)), timeout=_JOIN_TIMEOUT)
        except (OSError, ValueError):
            return None
        with self._lock:
            self._sockets.add(upstream)
        return upstream

    def _relay(self, client: socket.socket, upstream: socket.socket) -> None:
        client.settimeout(None)
        upstream.settimeout(None)
        pair = {client: upstream, upstream: client}
        while not self._stop.is_set():
            readable, _, _ = select.select(list(pair), [], [], _POLL)
            for sock in readable:
                data = sock.recv(65536)
                if not data:
                    return
                pair[sock].sendall(data)
