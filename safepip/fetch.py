"""Bytes from ``https://``, ``file://``, a plain path, or ``http://`` on loopback: with caps.

This is the only module of safepip that opens a network connection. Every call has a size cap
(``max_bytes``) and a *total* deadline (``timeout``, in seconds, for the whole call: redirects,
connecting, the TLS handshake, headers and body together), so a hostile or broken server can
neither fill memory or disk nor hold a run hostage by trickling bytes (THREATS.md class E).

Rules kept for every URL, including redirect targets and links on index pages:

- ``https://`` to any host, always with certificate and host name verification (the system store,
  or ``cafile``); never a fallback to an unverified or plain connection.
- ``http://`` only to a loopback host (``127.0.0.0/8``, ``::1``, ``localhost``), checked before
  connecting; meant for tests and local mirrors.
- ``file://`` URLs and plain paths: regular files only.
- Any other scheme, and URLs with credentials in them, are refused.
- Redirects: at most 5, same scheme and same host and port only.
- Only status 200 is success; ``Content-Encoding`` other than identity is refused (a gzip bomb is
  never inflated: we send no ``Accept-Encoding``).

Every failure raises :class:`~safepip.errors.FetchError` with a one-line message that names the
URL or path; low-level exceptions are chained with ``from`` for ``-v``.

Known limit: resolving a host name (``getaddrinfo``) is not interruptible from Python, so a hung
DNS resolver is bounded by the system resolver's own timeout rather than by ``timeout``. Proxies
(``HTTPS_PROXY``) are not supported.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import ipaddress
import os
import select
import socket
import stat
import time
from collections.abc import Callable, Generator
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import SplitResult, urljoin, urlsplit

from safepip import __version__
from safepip.errors import FetchError, NotFoundError
from safepip.files import require_regular

# http.client (with the ssl and email packages it imports) and urllib.request cost ~9 ms at
# start-up that reading a local list (`safepip check` in a pre-commit hook) never needs: they
# are imported in the functions that use them.
if TYPE_CHECKING:
    import http.client
    import ssl

    from _typeshed import WriteableBuffer

__all__ = ["download", "fetch_bytes", "is_allowed_source", "join_url"]

CHUNK_SIZE = 64 * 1024
MAX_REDIRECTS = 5
USER_AGENT = f"safepip/{__version__}"

_Chunks = Generator[bytes, None, None]

_REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
_DEFAULT_PORTS = {"http": 80, "https": 443}

_HINT_TLS = (
    "check the system clock and the `cert` setting (CA bundle); "
    "safepip never falls back to an unverified connection"
)
_HINT_REDIRECT = "configure the final URL directly; safepip follows redirects only on one host"
_HINT_SOURCE = "use an https:// URL, a file:// URL or a path (http:// only on 127.0.0.1 or ::1)"
_HINT_SIZE = "raise `max-list-bytes` only if the file is really that large"


# --- the rules (pure) -------------------------------------------------------------------------


def _scheme(source: str) -> str:
    """The lower-case URL scheme of ``source``, or ``""`` for a plain path."""
    scheme = urlsplit(source).scheme
    # A one-letter "scheme" is a Windows drive letter (C:\...); on POSIX "c:x" is a file name.
    return "" if len(scheme) == 1 else scheme


def _is_loopback_host(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def is_allowed_source(source: str) -> bool:
    """Whether ``source`` is a URL or path safepip may fetch from. Pure: no I/O, never raises.

    Allowed: ``https://`` with a host, ``file://`` (no host, or ``localhost``), a plain path, and
    ``http://`` whose host is loopback. Refused: other schemes (``ftp:``, ``data:``, …), URLs with
    ``user:password@`` (they would leak into messages and logs), and malformed ports.
    """
    if not source or any(ord(c) < 0x20 or c == "\x7f" for c in source):
        return False
    scheme = _scheme(source)
    if scheme == "":
        return True
    try:
        parts = urlsplit(source)
        parts.port  # noqa: B018 -- raises ValueError on a malformed port
    except ValueError:
        return False
    host = parts.hostname or ""
    host_ok = {
        "file": host in ("", "localhost"),
        "https": host != "",
        "http": _is_loopback_host(host),
    }
    no_credentials = parts.username is None and parts.password is None
    return host_ok.get(scheme, False) and no_credentials


def join_url(base: str, ref: str) -> str:
    """Resolve link ``ref`` found on the page at ``base``, keeping the fetch rules.

    A plain-path ``base`` is turned into a ``file://`` URL first, so the result is always a URL.
    The fragment of ``ref`` (``#sha256=…``) is kept for the caller; fetching ignores it.

    Raises :class:`FetchError` when the result is not an allowed source, or when a page fetched
    over the network links to a weaker place: ``https://`` may only link to ``https://``, and no
    network page may link to ``file://``.
    """
    base_scheme = _scheme(base)
    if base_scheme == "":
        uri = Path(base).absolute().as_uri()
        base_url = uri + "/" if base.endswith(("/", os.sep)) and not uri.endswith("/") else uri
        base_scheme = "file"
    else:
        base_url = base
    joined = urljoin(base_url, ref)
    if not is_allowed_source(joined) or _scheme(joined) == "":
        raise FetchError(
            _one_line(f"link {ref!r} on {base}: not an allowed source ({joined})"),
            hint=_HINT_SOURCE,
        )
    scheme = _scheme(joined)
    if (base_scheme == "https" and scheme != "https") or (
        base_scheme != "file" and scheme == "file"
    ):
        raise FetchError(
            _one_line(
                f"link {ref!r} on {base}: refusing {base_scheme}:// -> {scheme}:// ({joined})"
            ),
            hint=_HINT_SOURCE,
        )
    return joined


def _one_line(message: str) -> str:
    """``message`` with control characters escaped, so a hostile header cannot forge lines."""
    return "".join(c if 0x20 <= ord(c) != 0x7F else repr(c)[1:-1] for c in message)


def _origin(parts: SplitResult) -> tuple[str, str, int]:
    return parts.scheme, (parts.hostname or "").lower(), parts.port or _DEFAULT_PORTS[parts.scheme]


# --- public entry points ----------------------------------------------------------------------


def fetch_bytes(
    source: str,
    *,
    base_dir: Path | None = None,
    max_bytes: int,
    timeout: float,
    cafile: str | None = None,
) -> bytes:
    """Return the bytes at ``source`` (URL or path; a relative path is taken from ``base_dir``).

    At most ``max_bytes`` are accepted and the whole call takes at most ``timeout`` seconds.
    Raises :class:`FetchError` for a refused source, status other than 200, a refused redirect,
    content encoding, size or deadline, and for any network, TLS or file error;
    :class:`~safepip.errors.ConfigError` when ``cafile`` cannot be opened or is not a regular file.
    """
    with contextlib.closing(
        _chunks(source, base_dir=base_dir, max_bytes=max_bytes, timeout=timeout, cafile=cafile)
    ) as chunks:
        return b"".join(chunks)


def download(
    url: str,
    dest: Path,
    *,
    max_bytes: int,
    timeout: float,
    cafile: str | None = None,
    on_progress: Callable[[int], None] | None = None,
) -> str:
    """Stream ``url`` into the new file ``dest`` and return the sha256 hex of what was written.

    ``dest`` is created exclusively with mode 0600 (an existing file or symlink is refused and left
    alone). Memory stays bounded (64 KiB chunks). ``on_progress`` receives the size of each chunk
    written (an increment, as rich's ``Progress.advance`` expects). ``url`` follows the rules of
    :func:`fetch_bytes` (a relative path is taken from the current directory).

    Raises :class:`FetchError` for every fetch failure and when ``dest`` cannot be created or
    written; on any failure (``on_progress``'s own exceptions and ``KeyboardInterrupt`` included)
    ``dest`` is removed before the exception propagates.
    """
    if not is_allowed_source(url):  # before touching the file system
        raise FetchError(_one_line(f"{url}: not an allowed source"), hint=_HINT_SOURCE)
    # O_EXCL: never follow a symlink planted at dest, never reuse a file someone else made.
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
    try:
        fd = os.open(dest, flags, 0o600)
    except FileExistsError as exc:
        raise FetchError(f"{dest}: already exists; refusing to overwrite it") from exc
    except OSError as exc:
        raise FetchError(_one_line(f"{dest}: cannot create: {exc.strerror or exc}")) from exc
    digest = hashlib.sha256()
    try:
        with (
            os.fdopen(fd, "wb") as out,
            contextlib.closing(
                _chunks(url, base_dir=None, max_bytes=max_bytes, timeout=timeout, cafile=cafile)
            ) as chunks,
        ):
            for chunk in chunks:
                digest.update(chunk)
                try:
                    out.write(chunk)
                except OSError as exc:
                    raise FetchError(
                        _one_line(f"{dest}: cannot write: {exc.strerror or exc}")
                    ) from exc
                if on_progress is not None:
                    on_progress(len(chunk))
    except BaseException:
        # Half a wheel must never be mistaken for a whole one by a later step.
        with contextlib.suppress(OSError):
            dest.unlink()
        raise
    return digest.hexdigest()


# --- dispatch ---------------------------------------------------------------------------------


def _chunks(
    source: str, *, base_dir: Path | None, max_bytes: int, timeout: float, cafile: str | None
) -> _Chunks:
    """Yield the content of ``source`` in chunks of at most 64 KiB, enforcing every rule."""
    if not is_allowed_source(source):
        raise FetchError(_one_line(f"{source}: not an allowed source"), hint=_HINT_SOURCE)
    deadline = time.monotonic() + timeout
    scheme = _scheme(source)
    if scheme in ("", "file"):
        if scheme == "file":
            from urllib.request import url2pathname  # noqa: PLC0415  (lazy: see the imports)

            path = Path(url2pathname(urlsplit(source).path))
        else:
            path = Path(source)
        if base_dir is not None and not path.is_absolute():
            path = base_dir / path
        return _file_chunks(path, max_bytes=max_bytes, deadline=deadline, timeout=timeout)
    return _http_chunks(
        source, max_bytes=max_bytes, deadline=deadline, timeout=timeout, cafile=cafile
    )


def _file_chunks(path: Path, *, max_bytes: int, deadline: float, timeout: float) -> _Chunks:
    # O_NONBLOCK: opening a FIFO for reading would otherwise wait forever for a writer.
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0)
    try:
        fd = os.open(path, flags)
    except FileNotFoundError as exc:
        raise NotFoundError(_one_line(f"{path}: cannot open: {exc.strerror or exc}")) from exc
    except OSError as exc:
        raise FetchError(_one_line(f"{path}: cannot open: {exc.strerror or exc}")) from exc
    with os.fdopen(fd, "rb", buffering=0) as file:
        try:
            info = os.fstat(fd)
            if not stat.S_ISREG(info.st_mode):
                # A device (/dev/zero), FIFO or directory has no honest size to cap.
                raise FetchError(f"{path}: not a regular file")
            if info.st_size > max_bytes:
                raise FetchError(
                    f"{path}: {info.st_size} bytes, more than the cap of {max_bytes}",
                    hint=_HINT_SIZE,
                )
            total = 0
            while True:
                # The file may grow after fstat: read at most max_bytes + 1 in all.
                chunk = file.read(min(CHUNK_SIZE, max_bytes + 1 - total))
                if not chunk:
                    return
                total += len(chunk)
                if total > max_bytes:
                    raise FetchError(
                        f"{path}: grew beyond the cap of {max_bytes} bytes while being read"
                    )
                if time.monotonic() > deadline:
                    raise FetchError(f"{path}: not read within the {timeout:g} s deadline")
                yield chunk
        except OSError as exc:
            raise FetchError(_one_line(f"{path}: cannot read: {exc.strerror or exc}")) from exc


# --- HTTP with a total deadline ---------------------------------------------------------------


class _DeadlineExceeded(TimeoutError):
    """The total deadline passed; raised from deep inside http.client, caught in _http_chunks."""


def _remaining(deadline: float) -> float:
    left = deadline - time.monotonic()
    if left <= 0:
        raise _DeadlineExceeded
    return left


class _DeadlineReader(io.RawIOBase):
    """A raw reader over a socket that re-arms the socket timeout to the time left before each
    read and checks the deadline after it: per-read timeouts alone let a server that trickles one
    byte a second hold a call forever, in the headers as well as in the body."""

    def __init__(self, sock: socket.socket, deadline: float) -> None:
        super().__init__()
        self._sock = sock
        self._raw = sock.makefile("rb", buffering=0)
        self._deadline = deadline

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: WriteableBuffer) -> int:
        self._sock.settimeout(_remaining(self._deadline))
        count = self._raw.readinto(buffer)
        _remaining(self._deadline)
        return count or 0

    def close(self) -> None:
        self._raw.close()
        super().close()


class _DeadlineSocket:
    """What http.client needs of a socket (sendall, makefile, close), under one deadline."""

    def __init__(self, sock: socket.socket, deadline: float) -> None:
        self._sock = sock
        self._deadline = deadline

    def sendall(self, data: bytes) -> None:
        # Since Python 3.5 the timeout bounds the whole sendall, not each send.
        self._sock.settimeout(_remaining(self._deadline))
        self._sock.sendall(data)

    def makefile(self, mode: str = "rb", *args: object, **kwargs: object) -> io.BufferedReader:
        return io.BufferedReader(_DeadlineReader(self._sock, self._deadline), CHUNK_SIZE)

    def close(self) -> None:
        # Like socket.close: the descriptor stays open while a makefile() reader still uses it.
        self._sock.close()


def _connection(
    host: str, port: int, *, deadline: float, tls: ssl.SSLContext | None
) -> http.client.HTTPConnection:
    """One HTTP(S) connection whose connect, handshake, request and response share a deadline."""
    import http.client  # noqa: PLC0415  (lazy, see the imports: so the subclass is made here)

    class _Connection(http.client.HTTPConnection):
        def connect(self) -> None:
            sock = _connect_tcp(self.host, self.port, deadline, loopback_only=tls is None)
            try:
                if tls is not None:
                    sock = tls.wrap_socket(
                        sock, server_hostname=self.host, do_handshake_on_connect=False
                    )
                    _handshake(sock, deadline)
            except BaseException:
                sock.close()
                raise
            self.sock = _DeadlineSocket(sock, deadline)

    connection = _Connection(host, port)
    connection.default_port = 443 if tls is not None else 80  # for the Host header
    return connection


def _connect_tcp(host: str, port: int, deadline: float, *, loopback_only: bool) -> socket.socket:
    """Connect to the first address of ``host`` that answers, each try bounded by the deadline."""
    addresses = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    if loopback_only:
        # "localhost" could be mapped elsewhere in /etc/hosts: plain HTTP stays on this machine.
        addresses = [a for a in addresses if ipaddress.ip_address(a[4][0]).is_loopback]
        if not addresses:
            raise OSError(f"{host} does not resolve to a loopback address")
    error: OSError = OSError(f"no address for {host}")
    for family, kind, proto, _, address in addresses:
        sock = socket.socket(family, kind, proto)
        try:
            sock.settimeout(_remaining(deadline))
            sock.connect(address)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except _DeadlineExceeded:
            sock.close()
            raise
        except OSError as exc:
            sock.close()
            error = exc
            continue
        return sock
    raise error


def _handshake(sock: ssl.SSLSocket, deadline: float) -> None:
    """The TLS handshake, non-blocking, so a peer that trickles it cannot outlast the deadline."""
    import ssl  # noqa: PLC0415  (lazy: see the imports)

    sock.setblocking(False)
    while True:
        try:
            sock.do_handshake()
            break
        except ssl.SSLWantReadError:
            select.select([sock], [], [], _remaining(deadline))
        except ssl.SSLWantWriteError:
            select.select([], [sock], [], _remaining(deadline))
        _remaining(deadline)
    sock.setblocking(True)


def _tls_context(cafile: str | None) -> ssl.SSLContext:
    import ssl  # noqa: PLC0415  (lazy: see the imports)

    if cafile is not None:
        # OpenSSL (and the pip we run) open the bundle by name, blocking: a FIFO would hang.
        require_regular(Path(cafile), what="CA bundle (cert)")
    try:
        # Verification stays on (CERT_REQUIRED, check_hostname) and TLS 1.2 is the minimum.
        return ssl.create_default_context(cafile=cafile)
    except (OSError, ssl.SSLError) as exc:
        raise FetchError(
            _one_line(f"{cafile}: cannot load the CA bundle: {exc}"),
            hint="point `cert` at a readable PEM file of CA certificates",
        ) from exc


def _http_chunks(
    url: str, *, max_bytes: int, deadline: float, timeout: float, cafile: str | None
) -> _Chunks:
    import http.client  # noqa: PLC0415  (lazy: see the imports)
    import ssl  # noqa: PLC0415

    current = url
    parts = urlsplit(current)
    tls = _tls_context(cafile) if parts.scheme == "https" else None
    redirects = 0
    while True:
        connection = _connection(
            parts.hostname or "",
            parts.port or _DEFAULT_PORTS[parts.scheme],
            deadline=deadline,
            tls=tls,
        )
        try:
            try:
                # The response owns the socket once the server says it will close: close both.
                with contextlib.closing(_request(connection, parts)) as response:
                    if response.status in _REDIRECT_STATUSES:
                        target = _redirect_target(current, response, redirects)
                        redirects += 1
                        current, parts = target, urlsplit(target)
                        continue
                    _check_response(current, response, max_bytes)
                    yield from _body(current, response, max_bytes)
                    return
            except _DeadlineExceeded as exc:
                raise FetchError(
                    f"{current}: no complete answer within the {timeout:g} s deadline"
                ) from exc
            except ssl.SSLCertVerificationError as exc:
                raise FetchError(
                    _one_line(f"{current}: TLS certificate not trusted: {exc.verify_message}"),
                    hint=_HINT_TLS,
                ) from exc
            except ssl.SSLError as exc:
                raise FetchError(_one_line(f"{current}: TLS error: {exc}"), hint=_HINT_TLS) from exc
            except socket.gaierror as exc:
                raise FetchError(
                    _one_line(f"{current}: cannot resolve {parts.hostname}: {exc.strerror}")
                ) from exc
            except TimeoutError as exc:
                raise FetchError(
                    f"{current}: no complete answer within the {timeout:g} s deadline"
                ) from exc
            except ConnectionRefusedError as exc:
                raise FetchError(f"{current}: connection refused") from exc
            except http.client.HTTPException as exc:
                raise FetchError(
                    _one_line(f"{current}: bad HTTP response: {type(exc).__name__} {exc}")
                ) from exc
            except OSError as exc:
                raise FetchError(_one_line(f"{current}: {exc.strerror or exc}")) from exc
        finally:
            connection.close()


def _request(
    connection: http.client.HTTPConnection, parts: SplitResult
) -> http.client.HTTPResponse:
    target = parts.path or "/"
    if parts.query:
        target += "?" + parts.query
    # skip_accept_encoding: we never ask for compressed bodies (see the gzip-bomb rule).
    connection.putrequest("GET", target, skip_accept_encoding=True)
    connection.putheader("User-Agent", USER_AGENT)
    connection.putheader("Accept", "*/*")
    connection.putheader("Connection", "close")
    connection.endheaders()
    return connection.getresponse()


def _redirect_target(current: str, response: http.client.HTTPResponse, redirects: int) -> str:
    location = response.getheader("Location")
    if not location:
        raise FetchError(f"{current}: redirect (HTTP {response.status}) without a Location")
    target = urljoin(current, location.strip())
    if redirects >= MAX_REDIRECTS:
        raise FetchError(
            _one_line(f"{current}: more than {MAX_REDIRECTS} redirects (next: {target})"),
            hint=_HINT_REDIRECT,
        )
    here = urlsplit(current)
    there = urlsplit(target)
    try:
        same = _origin(there) == _origin(here) and is_allowed_source(target)
    except (KeyError, ValueError):  # another scheme (file:, ftp:) or a malformed port
        same = False
    if not same:
        raise FetchError(
            _one_line(f"{current}: refusing redirect to {target} (another scheme, host or port)"),
            hint=_HINT_REDIRECT,
        )
    return target


def _check_response(url: str, response: http.client.HTTPResponse, max_bytes: int) -> None:
    if response.status != 200:
        reason = _one_line(response.reason or "")
        # 404 and 410 say the server has no such file (a publisher's first list, for one).
        error = NotFoundError if response.status in (404, 410) else FetchError
        raise error(f"{url}: HTTP status {response.status} {reason}".rstrip())
    encoding = (response.getheader("Content-Encoding") or "identity").strip().lower()
    if encoding not in ("", "identity"):
        raise FetchError(
            _one_line(f"{url}: refusing Content-Encoding {encoding!r} (only identity is accepted)")
        )
    transfer = (response.getheader("Transfer-Encoding") or "identity").strip().lower()
    if transfer not in ("chunked", "identity"):
        raise FetchError(_one_line(f"{url}: refusing Transfer-Encoding {transfer!r}"))
    if response.length is not None and response.length > max_bytes:
        raise FetchError(
            f"{url}: Content-Length {response.length} is more than the cap of {max_bytes} bytes",
            hint=_HINT_SIZE,
        )


def _body(url: str, response: http.client.HTTPResponse, max_bytes: int) -> _Chunks:
    declared = response.length
    total = 0
    while True:
        chunk = response.read(min(CHUNK_SIZE, max_bytes + 1 - total))
        if not chunk:
            break
        total += len(chunk)
        if total > max_bytes:
            raise FetchError(f"{url}: more than the cap of {max_bytes} bytes", hint=_HINT_SIZE)
        yield chunk
    # http.client reports a connection closed early as a short read, not as an error.
    if declared is not None and total != declared:
        raise FetchError(f"{url}: truncated: {total} of {declared} bytes")
