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
- ``file://`` URLs and plain paths: regular files only; a folder stands for its
  ``index.html``, as a static web server answers (a ``file://`` index's project pages).
- Any other scheme, and URLs with credentials in them, are refused.
- Redirects: at most 5, same scheme and same host and port only.
- Only status 200 is success; ``Content-Encoding`` other than identity is refused (a gzip bomb is
  never inflated: we send no ``Accept-Encoding``).

Every failure raises :class:`~safepip.errors.FetchError` with a one-line message that names the
URL or path; low-level exceptions are chained with ``from`` for ``-v``.

Calls made from worker threads take a ``cancel`` event: every blocking step (connecting, the
TLS handshake, each read) waits at most :data:`CANCEL_SLICE` seconds at a time and then looks
at the event, so a Ctrl-C in the main thread stops every download within a fraction of a second.

``https://`` goes through the proxy :class:`Proxies` names (``https_proxy`` / ``no_proxy``, as
pip and curl read them): a ``CONNECT`` tunnel, with TLS verified end to end against ``cafile``
inside it; the proxy only carries bytes. Loopback hosts never go through a proxy (as Go's
net/http decides): plain ``http://`` is allowed only because it stays on this machine, and a
proxy's "127.0.0.1" is not ours.

Known limit: resolving a host name (``getaddrinfo``) is not interruptible from Python, so a hung
DNS resolver is bounded by the system resolver's own timeout rather than by ``timeout`` or
``cancel``. Behind a proxy the client resolves nothing: the proxy does.
"""

from __future__ import annotations

import base64
import contextlib
import errno
import hashlib
import io
import ipaddress
import os
import re
import select
import socket
import stat
import time
from collections.abc import Callable, Generator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Final, Protocol
from urllib.parse import SplitResult, unquote, urljoin, urlsplit

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

__all__ = [
    "Cancel",
    "Proxies",
    "Proxy",
    "download",
    "fetch_bytes",
    "free_and_reserve",
    "free_space_reserve",
    "is_allowed_source",
    "join_url",
]

CHUNK_SIZE = 64 * 1024
#: What one read of a response body asks for. Large, because each socket read must take the GIL
#: back: a wheel downloaded beside busy threads gets one read per GIL hand-over. With 64 KiB
#: reads a 17 MB wheel took ~195 ms on loopback among 8 workers (24 ms alone); now ~105 ms.
_BODY_CHUNK: Final = 1024 * 1024
MAX_REDIRECTS = 5
USER_AGENT = f"safepip/{__version__}"
#: The longest a blocking step waits before it looks at ``cancel`` (and the deadline) again.
CANCEL_SLICE: Final = 0.2
#: A proxy's answer to CONNECT larger than this is refused.
_MAX_PROXY_HEAD: Final = 64 * 1024


class Cancel(Protocol):
    """What ``cancel`` must offer: :class:`threading.Event` does."""

    def is_set(self) -> bool: ...


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
_HINT_PROXY = (
    "check https_proxy / HTTPS_PROXY and no_proxy; the proxy only carries bytes "
    "(the list is signed and TLS is verified end to end)"
)
_HINT_SPACE = (
    "free some space, or point TMPDIR at a larger file system; an index that answers a listed "
    "wheel with an endless body is stopped here too"
)


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
    try:
        joined = urljoin(base_url, ref)
    except ValueError as exc:  # "http://[oops/x": not a URL at all
        raise FetchError(
            _one_line(f"link {ref!r} on {base}: not a URL ({exc})"), hint=_HINT_SOURCE
        ) from exc
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


def free_and_reserve(info: os.statvfs_result, reserve: int | None) -> tuple[int, int]:
    """(free bytes, the bytes to keep free) of the file system ``info`` (``statvfs``) describes:
    ``reserve``, or :func:`free_space_reserve` of its size (pure)."""
    floor = reserve if reserve is not None else free_space_reserve(info.f_blocks * info.f_frsize)
    return info.f_bavail * info.f_frsize, floor


def free_space_reserve(filesystem_bytes: int) -> int:
    """The free space a download must leave on a file system of ``filesystem_bytes`` (pure).

    A tenth of the file system, at most 1 GiB: the list carries no sizes, so a hostile index can
    answer a small listed wheel with an endless body; the reserve keeps that from filling the
    staging file system (often a RAM-backed tmpfs) whatever the wheel sizes are.
    """
    return min(1 << 30, filesystem_bytes // 10)


# --- proxies (pure) -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Proxy:
    """One HTTP proxy to ``CONNECT`` through. ``url`` is for messages: it holds no credentials."""

    url: str
    host: str
    port: int
    source: str
    authorization: str | None = field(default=None, repr=False)


@dataclass(frozen=True)
class Proxies:
    """The proxy settings of the environment, as pip and curl read them.

    ``https`` is the value of ``https_proxy`` (else ``HTTPS_PROXY``; the lower-case form wins, as
    in curl), with ``https_source`` naming the variable; ``no_proxy`` the entries of
    ``no_proxy`` / ``NO_PROXY``. ``http_proxy`` is not read: it could never apply, since
    safepip's ``http://`` is loopback only and loopback is never proxied.
    """

    https: str | None = None
    https_source: str = "https_proxy"
    no_proxy: tuple[str, ...] = ()

    @classmethod
    def from_environ(cls, environ: Mapping[str, str]) -> Proxies:
        """Read ``https_proxy``, ``no_proxy`` and their upper-case forms; empty counts as unset.

        Never raises: a malformed proxy URL is reported when a fetch would use it.
        """
        https, source = None, "https_proxy"
        for name in ("https_proxy", "HTTPS_PROXY"):
            if environ.get(name, "").strip():
                https, source = environ[name].strip(), name
                break
        raw_no_proxy = environ.get("no_proxy", "").strip() or environ.get("NO_PROXY", "")
        entries = tuple(e.strip().lower() for e in raw_no_proxy.split(",") if e.strip())
        return cls(https=https, https_source=source, no_proxy=entries)

    def for_url(self, url: str) -> Proxy | None:
        """The proxy to reach ``url`` through, or ``None`` to connect directly.

        Raises:
            FetchError: the proxy setting that applies is not an ``http://host[:port]`` URL.
        """
        parts = urlsplit(url)
        host = (parts.hostname or "").lower()
        if parts.scheme != "https" or self.https is None or _is_loopback_host(host):
            return None
        if _bypassed(host, parts.port or 443, self.no_proxy):
            return None
        return _parse_proxy(self.https, self.https_source)


def _parse_proxy(raw: str, source: str) -> Proxy:
    """``http://[user:password@]host[:port]`` (scheme optional, port 80 by default, as pip)."""
    text = raw if "://" in raw else f"http://{raw}"
    problem = None
    try:
        parts = urlsplit(text)
        port = parts.port or 80
    except ValueError as exc:
        parts, port, problem = urlsplit("http://invalid"), 0, str(exc)
    if problem is None and parts.scheme.lower() != "http":
        problem = f"{parts.scheme}:// proxies are not supported (only http:// with CONNECT)"
    if problem is None and not parts.hostname:
        problem = "no host"
    if problem is not None or any(ord(c) < 0x21 for c in text):
        shown = _one_line(text.rsplit("@", 1)[-1])  # never echo credentials
        raise FetchError(
            f"{source}={shown}: not a usable proxy URL: {problem or 'a space or control code'}",
            hint="set it to http://host:port (the proxy tunnels https:// with CONNECT)",
        )
    host = parts.hostname or ""
    shown_host = f"[{host}]" if ":" in host else host
    authorization = None
    if parts.username is not None:
        pair = f"{unquote(parts.username)}:{unquote(parts.password or '')}"
        authorization = "Basic " + base64.b64encode(pair.encode()).decode("ascii")
    return Proxy(f"http://{shown_host}:{port}", host, port, source, authorization)


def _bypassed(host: str, port: int, no_proxy: tuple[str, ...]) -> bool:
    """Whether a ``no_proxy`` entry matches ``host``: ``*``, a domain and its subdomains
    (``example.com``, ``.example.com``, ``*.example.com``), an IP address or CIDR range, each
    optionally with ``:port``, as curl and requests read it."""
    address = _ip(host)
    for entry in no_proxy:
        if entry == "*":
            return True
        name, entry_port = _split_entry(entry)
        if entry_port is not None and entry_port != port:
            continue
        if address is not None and "/" in name:
            try:
                if address in ipaddress.ip_network(name, strict=False):
                    return True
            except ValueError:
                pass
            continue
        if address is not None:
            if _ip(name) == address:
                return True
            continue
        domain = name.removeprefix("*").lstrip(".").rstrip(".")
        if domain and (host.rstrip(".") == domain or host.rstrip(".").endswith("." + domain)):
            return True
    return False


def _split_entry(entry: str) -> tuple[str, int | None]:
    """A ``no_proxy`` entry as (host or range, port or None)."""
    if entry.startswith("["):
        inside, _, rest = entry[1:].partition("]")
        port = rest.removeprefix(":")
        return inside, int(port) if port.isdigit() else None
    if entry.count(":") == 1:
        name, port = entry.split(":")
        return name, int(port) if port.isdigit() else None
    return entry, None


def _ip(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(text.strip("[]"))
    except ValueError:
        return None


# --- public entry points ----------------------------------------------------------------------


def fetch_bytes(
    source: str,
    *,
    base_dir: Path | None = None,
    max_bytes: int,
    timeout: float,
    cafile: str | None = None,
    proxies: Proxies | None = None,
    cancel: Cancel | None = None,
) -> bytes:
    """Return the bytes at ``source`` (URL or path; a relative path is taken from ``base_dir``).

    At most ``max_bytes`` are accepted and the whole call takes at most ``timeout`` seconds.
    ``proxies`` says which proxy reaches an ``https://`` URL (default: none). When another thread
    sets ``cancel``, the call gives up within :data:`CANCEL_SLICE` seconds.

    Raises :class:`FetchError` for a refused source, status other than 200, a refused redirect,
    content encoding, size or deadline, a proxy that fails, a cancelled call, and for any network,
    TLS or file error; :class:`~safepip.errors.ConfigError` when ``cafile`` cannot be opened or is
    not a regular file.
    """
    answer = fetch_if_changed(
        source,
        validators=Validators(),
        base_dir=base_dir,
        max_bytes=max_bytes,
        timeout=timeout,
        cafile=cafile,
        proxies=proxies,
        cancel=cancel,
    )
    return answer.data or b""


#: The longest validator kept: real ETags are quoted hashes, Last-Modified an HTTP date.
MAX_VALIDATOR_CHARS: Final = 256
_VALIDATOR = re.compile(r"[\x21-\x7e][\x20-\x7e]*\Z")


@dataclass(frozen=True)
class Validators:
    """What an HTTP server said identifies the version of a file it served (RFC 9110 §8.8).

    Only well-formed values are kept (printable ASCII, at most :data:`MAX_VALIDATOR_CHARS`): they
    are sent back verbatim in ``If-None-Match`` / ``If-Modified-Since``, so a hostile server
    cannot smuggle a line break into a later request.
    """

    etag: str | None = None
    last_modified: str | None = None

    @classmethod
    def from_headers(
        cls, etag: str | None, last_modified: str | None, date: str | None = None
    ) -> Validators:
        """The validators of a response; a malformed header is dropped, never repaired.

        With ``date`` (the response's ``Date``, ``""`` when absent), none are kept when a
        ``Last-Modified`` is not at least a second before it (RFC 9110 §8.8.2.2): a file served
        in the second it was written may change again within that second and keep its
        ``Last-Modified``, and the ETags of nginx and other static servers are made of that time
        and the size, so a list replaced that quickly would be answered 304 for good. Without
        such proof, the next fetch is simply unconditional.
        """
        if date is not None and last_modified is not None and not _settled(last_modified, date):
            return cls()
        return cls(_validator(etag), _validator(last_modified))

    def present(self) -> bool:
        """True when there is anything to send."""
        return self.etag is not None or self.last_modified is not None


def _settled(last_modified: str, date: str) -> bool:
    """True when ``last_modified`` is an HTTP date at least one second before ``date``."""
    from email.utils import parsedate_to_datetime  # noqa: PLC0415  (lazy: see the imports)

    try:
        modified, served = parsedate_to_datetime(last_modified), parsedate_to_datetime(date)
        return (served - modified).total_seconds() >= 1
    except (TypeError, ValueError, IndexError):
        return False


def _validator(value: str | None) -> str | None:
    if value is None:
        return None
    value = value.strip()
    if len(value) > MAX_VALIDATOR_CHARS or not _VALIDATOR.match(value):
        return None
    return value


@dataclass
class _Exchange:
    """One conditional request: the validators sent, and what the server answered."""

    sent: Validators
    not_modified: bool = False
    received: Validators = field(default_factory=Validators)


@dataclass(frozen=True)
class Conditional:
    """The answer to :func:`fetch_if_changed`.

    ``data`` is ``None`` when the server said 304 Not Modified: the caller's stored copy is what
    the server serves, and must be verified exactly as fresh bytes would be. ``validators`` are
    the ones to store with the bytes (the ones sent, after a 304).
    """

    data: bytes | None
    validators: Validators


def fetch_if_changed(
    source: str,
    *,
    validators: Validators,
    base_dir: Path | None = None,
    max_bytes: int,
    timeout: float,
    cafile: str | None = None,
    proxies: Proxies | None = None,
    cancel: Cancel | None = None,
) -> Conditional:
    """:func:`fetch_bytes`, sending ``If-None-Match`` / ``If-Modified-Since`` from ``validators``.

    A 304 answer (only when something was sent) returns ``data=None``. A file or path is always
    read (``data`` never ``None``, no validators). Every rule and error of :func:`fetch_bytes`
    applies to a 200 answer; any other status is a :class:`FetchError` as there.
    """
    exchange = _Exchange(sent=validators)
    with contextlib.closing(
        _chunks(
            source,
            base_dir=base_dir,
            max_bytes=max_bytes,
            timeout=timeout,
            cafile=cafile,
            proxies=proxies,
            cancel=cancel,
            exchange=exchange,
        )
    ) as chunks:
        data = b"".join(chunks)
    if exchange.not_modified:
        return Conditional(None, validators)
    return Conditional(data, exchange.received)


def download(
    url: str,
    dest: Path,
    *,
    max_bytes: int,
    timeout: float,
    cafile: str | None = None,
    on_progress: Callable[[int], None] | None = None,
    proxies: Proxies | None = None,
    cancel: Cancel | None = None,
    min_free_bytes: int | None = None,
    copy: Callable[[bytes], None] | None = None,
    make_room: Callable[[], bool] | None = None,
) -> str:
    """Stream ``url`` into the new file ``dest`` and return the sha256 hex of what was written.

    ``dest`` is created exclusively with mode 0600 (an existing file or symlink is refused and left
    alone). Memory stays bounded (1 MiB chunks). ``on_progress`` receives the size of each chunk
    written (an increment, as rich's ``Progress.advance`` expects). ``url`` follows the rules of
    :func:`fetch_bytes` (a relative path is taken from the current directory), and so do
    ``proxies`` and ``cancel``. No chunk is written that would leave less than ``min_free_bytes``
    free on ``dest``'s file system (default: :func:`free_space_reserve` of its size); before it
    stops there, it calls ``make_room`` (which returns whether it freed anything) and looks
    again. ``copy`` receives every chunk written, the same objects that were hashed (a cache
    entry written on the way: :meth:`safepip.cache.WheelCache.entry`; ``make_room`` is then the
    cache's :meth:`~safepip.cache.WheelCache.make_room`).

    Raises :class:`FetchError` for every fetch failure, when ``dest`` cannot be created or
    written, and when the free space would fall below the reserve; on any failure
    (``on_progress``'s own exceptions and ``KeyboardInterrupt`` included) ``dest`` is removed
    before the exception propagates.
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
    written = 0
    try:
        with (
            os.fdopen(fd, "wb") as out,
            contextlib.closing(
                _chunks(
                    url,
                    base_dir=None,
                    max_bytes=max_bytes,
                    timeout=timeout,
                    cafile=cafile,
                    proxies=proxies,
                    cancel=cancel,
                )
            ) as chunks,
        ):
            for chunk in chunks:
                _check_free_space(
                    out.fileno(),
                    len(chunk),
                    reserve=min_free_bytes,
                    url=url,
                    dest=dest,
                    written=written,
                    make_room=make_room,
                )
                digest.update(chunk)
                try:
                    out.write(chunk)
                except OSError as exc:
                    raise FetchError(
                        _one_line(f"{dest}: cannot write: {exc.strerror or exc}")
                    ) from exc
                written += len(chunk)
                if copy is not None:
                    copy(chunk)
                if on_progress is not None:
                    on_progress(len(chunk))
    except BaseException:
        # Half a wheel must never be mistaken for a whole one by a later step.
        with contextlib.suppress(OSError):
            dest.unlink()
        raise
    return digest.hexdigest()


def _check_free_space(
    fd: int,
    size: int,
    *,
    reserve: int | None,
    url: str,
    dest: Path,
    written: int,
    make_room: Callable[[], bool] | None = None,
) -> None:
    """Refuse to write ``size`` more bytes when that would leave less than ``reserve`` free,
    unless ``make_room`` (a cache on the same file system giving its space back) frees enough."""
    if not hasattr(os, "fstatvfs"):  # pragma: no cover - Windows
        return
    try:
        free, floor = free_and_reserve(os.fstatvfs(fd), reserve)
        if free - size < floor and make_room is not None and make_room():
            free, floor = free_and_reserve(os.fstatvfs(fd), reserve)
    except OSError:  # a file system that cannot say: the write itself will fail when full
        return
    if free - size < floor:
        raise FetchError(
            _one_line(
                f"{url}: stopped after {_mib(written)}: the file system of {dest.parent} "
                f"would have less than {_mib(floor)} free ({_mib(free)} left)"
            ),
            hint=_HINT_SPACE,
        )


def _mib(size: int) -> str:
    return f"{size / (1 << 20):.0f} MiB" if size >= 1 << 20 else f"{size} bytes"


# --- dispatch ---------------------------------------------------------------------------------


class _Cancelled(Exception):
    """The caller's ``cancel`` event was set; raised from deep inside http.client."""


class _DeadlineExceeded(TimeoutError):
    """The total deadline passed; raised from deep inside http.client, caught in _http_chunks."""


def _remaining(deadline: float) -> float:
    left = deadline - time.monotonic()
    if left <= 0:
        raise _DeadlineExceeded
    return left


class _Clock:
    """The call's total deadline and the caller's cancel event, looked at by every blocking step.

    ``left()`` is the time left; ``slice()`` the longest a blocking step may wait before it
    looks again (so a cancel is seen within :data:`CANCEL_SLICE` seconds). Both raise
    :class:`_Cancelled` or :class:`_DeadlineExceeded`.
    """

    def __init__(self, deadline: float, cancel: Cancel | None) -> None:
        self.deadline = deadline
        self._cancel = cancel

    def left(self) -> float:
        if self._cancel is not None and self._cancel.is_set():
            raise _Cancelled
        return _remaining(self.deadline)

    def slice(self) -> float:
        return min(self.left(), CANCEL_SLICE)


def _chunks(
    source: str,
    *,
    base_dir: Path | None,
    max_bytes: int,
    timeout: float,
    cafile: str | None,
    proxies: Proxies | None,
    cancel: Cancel | None,
    exchange: _Exchange | None = None,
) -> _Chunks:
    """Yield the content of ``source`` in chunks of at most 1 MiB (64 KiB from a file),
    enforcing every rule."""
    if not is_allowed_source(source):
        raise FetchError(_one_line(f"{source}: not an allowed source"), hint=_HINT_SOURCE)
    clock = _Clock(time.monotonic() + timeout, cancel)
    scheme = _scheme(source)
    if scheme in ("", "file"):
        if scheme == "file":
            from urllib.request import url2pathname  # noqa: PLC0415  (lazy: see the imports)

            path = Path(url2pathname(urlsplit(source).path))
        else:
            path = Path(source)
        if base_dir is not None and not path.is_absolute():
            path = base_dir / path
        return _file_chunks(path, max_bytes=max_bytes, clock=clock, timeout=timeout)
    return _http_chunks(
        source,
        max_bytes=max_bytes,
        clock=clock,
        timeout=timeout,
        cafile=cafile,
        proxies=proxies,
        exchange=exchange,
    )


def _open_regular(path: Path) -> tuple[int, Path]:
    """Open ``path`` for reading, or the ``index.html`` of a folder, as a static web server
    answers a folder's URL (a ``file://`` index's project pages are folders). Returns the
    descriptor and the path opened.

    Raises:
        FetchError: it cannot be opened, or is not a regular file (a FIFO, a device).
    """
    # O_NONBLOCK: opening a FIFO for reading would otherwise wait forever for a writer.
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0)
    for attempt in (path, path / "index.html"):
        try:
            fd = os.open(attempt, flags)
        except FileNotFoundError as exc:
            raise NotFoundError(
                _one_line(f"{attempt}: cannot open: {exc.strerror or exc}")
            ) from exc
        except OSError as exc:
            raise FetchError(_one_line(f"{attempt}: cannot open: {exc.strerror or exc}")) from exc
        try:
            mode = os.fstat(fd).st_mode
        except OSError as exc:
            os.close(fd)
            raise FetchError(_one_line(f"{attempt}: cannot read: {exc.strerror or exc}")) from exc
        if stat.S_ISREG(mode):
            return fd, attempt
        os.close(fd)
        if not stat.S_ISDIR(mode) or attempt != path:
            # A device (/dev/zero), FIFO or folder has no honest size to cap.
            raise FetchError(f"{attempt}: not a regular file")
    raise AssertionError("unreachable")  # pragma: no cover


def _file_chunks(path: Path, *, max_bytes: int, clock: _Clock, timeout: float) -> _Chunks:
    fd, path = _open_regular(path)
    with os.fdopen(fd, "rb", buffering=0) as file:
        try:
            info = os.fstat(fd)
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
                clock.left()
                yield chunk
        except _Cancelled as exc:
            raise FetchError(f"{path}: cancelled") from exc
        except _DeadlineExceeded as exc:
            raise FetchError(f"{path}: not read within the {timeout:g} s deadline") from exc
        except OSError as exc:
            raise FetchError(_one_line(f"{path}: cannot read: {exc.strerror or exc}")) from exc


# --- HTTP with a total deadline ---------------------------------------------------------------


class _DeadlineReader(io.RawIOBase):
    """A raw reader over a socket that waits at most a slice of the time left before each read,
    then looks at the deadline and the cancel event: per-read timeouts alone let a server that
    trickles one byte a second hold a call forever, in the headers as well as in the body, and a
    read blocked until the deadline would hold a Ctrl-C as long."""

    def __init__(self, sock: socket.socket, clock: _Clock) -> None:
        super().__init__()
        self._sock = sock
        self._clock = clock
        # Held only for its reference: like any makefile() reader, it keeps the descriptor open
        # after http.client closes the connection and hands the socket to the response.
        self._ref = sock.makefile("rb", buffering=0)

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: WriteableBuffer) -> int:
        while True:
            self._sock.settimeout(self._clock.slice())
            try:
                # recv_into, not the makefile() reader: that one refuses every read after a timeout.
                count = self._sock.recv_into(buffer)
            except TimeoutError:  # one slice passed: look at the clock again
                continue
            self._clock.left()
            return count

    def close(self) -> None:
        self._ref.close()
        super().close()


class _DeadlineSocket:
    """What http.client needs of a socket (sendall, makefile, close), under one deadline."""

    def __init__(self, sock: socket.socket, clock: _Clock) -> None:
        self._sock = sock
        self._clock = clock

    def sendall(self, data: bytes) -> None:
        # Since Python 3.5 the timeout bounds the whole sendall, not each send. Requests are a
        # few hundred bytes: they fit in the socket's buffer, so this does not block.
        self._sock.settimeout(self._clock.left())
        self._sock.sendall(data)

    def makefile(self, mode: str = "rb", *args: object, **kwargs: object) -> io.BufferedReader:
        return io.BufferedReader(_DeadlineReader(self._sock, self._clock), CHUNK_SIZE)

    def close(self) -> None:
        # Like socket.close: the descriptor stays open while a makefile() reader still uses it.
        self._sock.close()


class _ProxyFailure(Exception):
    """The proxy could not be reached or would not tunnel; caught in _http_chunks."""

    def __init__(self, proxy: Proxy, why: str) -> None:
        super().__init__(why)
        self.proxy = proxy
        self.why = why


def _connection(
    host: str, port: int, *, clock: _Clock, tls: ssl.SSLContext | None, proxy: Proxy | None
) -> http.client.HTTPConnection:
    """One HTTP(S) connection whose connect, tunnel, handshake, request and response share a
    deadline and a cancel event."""
    import http.client  # noqa: PLC0415  (lazy, see the imports: so the subclass is made here)

    class _Connection(http.client.HTTPConnection):
        def connect(self) -> None:
            if proxy is None:
                sock = _connect_tcp(self.host, self.port, clock, loopback_only=tls is None)
            else:
                sock = _through_proxy(proxy, self.host, self.port, clock)
            try:
                if tls is not None:
                    # The certificate is checked for the target host, never for the proxy.
                    sock = tls.wrap_socket(
                        sock, server_hostname=self.host, do_handshake_on_connect=False
                    )
                    _handshake(sock, clock)
            except BaseException:
                sock.close()
                raise
            self.sock = _DeadlineSocket(sock, clock)

    connection = _Connection(host, port)
    connection.default_port = 443 if tls is not None else 80  # for the Host header
    return connection


def _connect_tcp(host: str, port: int, clock: _Clock, *, loopback_only: bool) -> socket.socket:
    """Connect to the first address of ``host`` that answers, each try bounded by the clock."""
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
            _connect_one(sock, address, clock)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except (_DeadlineExceeded, _Cancelled):
            sock.close()
            raise
        except OSError as exc:
            sock.close()
            error = exc
            continue
        return sock
    raise error


def _connect_one(sock: socket.socket, address: object, clock: _Clock) -> None:
    """A non-blocking connect, waited for a slice at a time (a blocking one ignores cancel)."""
    sock.setblocking(False)
    code = sock.connect_ex(address)  # type: ignore[arg-type]
    while code in (errno.EINPROGRESS, errno.EALREADY, errno.EWOULDBLOCK, errno.EINTR):
        _, writable, failed = select.select([], [sock], [sock], clock.slice())
        if writable or failed:
            code = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
    if code not in (0, errno.EISCONN):
        raise OSError(code, os.strerror(code))  # OSError picks the subclass for the code
    sock.setblocking(True)


def _through_proxy(proxy: Proxy, host: str, port: int, clock: _Clock) -> socket.socket:
    """A TCP connection to ``host:port`` tunnelled through ``proxy`` with ``CONNECT``.

    The proxy resolves ``host``; this machine resolves only the proxy's name.
    """
    try:
        sock = _connect_tcp(proxy.host, proxy.port, clock, loopback_only=False)
    except socket.gaierror as exc:
        raise _ProxyFailure(proxy, f"cannot be resolved: {exc.strerror}") from exc
    except ConnectionRefusedError as exc:
        raise _ProxyFailure(proxy, "refused the connection (is it running?)") from exc
    except OSError as exc:
        if isinstance(exc, (_DeadlineExceeded, TimeoutError)):
            raise
        raise _ProxyFailure(proxy, f"cannot be reached: {exc.strerror or exc}") from exc
    try:
        _tunnel(sock, proxy, host, port, clock)
    except BaseException:
        sock.close()
        raise
    return sock


def _tunnel(sock: socket.socket, proxy: Proxy, host: str, port: int, clock: _Clock) -> None:
    """Ask ``proxy`` on ``sock`` for a tunnel to ``host:port`` and read its answer's head."""
    try:
        name = host if host.isascii() else host.encode("idna").decode("ascii")
    except UnicodeError as exc:
        raise _ProxyFailure(proxy, f"cannot be asked for {host!r}: {exc}") from exc
    authority = f"[{name}]:{port}" if ":" in name else f"{name}:{port}"
    lines = [f"CONNECT {authority} HTTP/1.1", f"Host: {authority}", f"User-Agent: {USER_AGENT}"]
    if proxy.authorization is not None:
        lines.append(f"Proxy-Authorization: {proxy.authorization}")
    sock.settimeout(clock.left())
    sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode("ascii"))
    head = b""
    while b"\r\n\r\n" not in head:
        if len(head) > _MAX_PROXY_HEAD:
            raise _ProxyFailure(proxy, f"answered CONNECT {authority} with over 64 KiB of head")
        sock.settimeout(clock.slice())
        try:
            data = sock.recv(4096)
        except TimeoutError:
            continue
        if not data:
            raise _ProxyFailure(proxy, f"closed the connection on CONNECT {authority}")
        head += data
    head, _, early = head.partition(b"\r\n\r\n")
    status = head.split(b"\r\n", 1)[0].decode("latin-1")
    words = status.split(None, 2)
    accepted = len(words) >= 2 and words[0].startswith("HTTP/") and words[1] in _TUNNEL_OK
    if not accepted:
        raise _ProxyFailure(proxy, _one_line(f"refused CONNECT {authority}: {status[:200]}"))
    if early:
        # The server speaks only after our ClientHello: bytes now came from the proxy itself.
        raise _ProxyFailure(proxy, f"sent data of its own after opening the tunnel to {authority}")


_TUNNEL_OK = frozenset(str(code) for code in range(200, 300))


def _handshake(sock: ssl.SSLSocket, clock: _Clock) -> None:
    """The TLS handshake, non-blocking, so a peer that trickles it cannot outlast the deadline."""
    import ssl  # noqa: PLC0415  (lazy: see the imports)

    sock.setblocking(False)
    while True:
        try:
            sock.do_handshake()
            break
        except ssl.SSLWantReadError:
            select.select([sock], [], [], clock.slice())
        except ssl.SSLWantWriteError:
            select.select([], [sock], [], clock.slice())
        clock.left()
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
    url: str,
    *,
    max_bytes: int,
    clock: _Clock,
    timeout: float,
    cafile: str | None,
    proxies: Proxies | None,
    exchange: _Exchange | None = None,
) -> _Chunks:
    import http.client  # noqa: PLC0415  (lazy: see the imports)

    current = url
    parts = urlsplit(current)
    tls = _tls_context(cafile) if parts.scheme == "https" else None
    redirects = 0
    while True:
        proxy = proxies.for_url(current) if proxies is not None else None
        via = f" (through the proxy {proxy.url} from {proxy.source})" if proxy else ""
        connection = _connection(
            parts.hostname or "",
            parts.port or _DEFAULT_PORTS[parts.scheme],
            clock=clock,
            tls=tls,
            proxy=proxy,
        )
        try:
            try:
                # The response owns the socket once the server says it will close: close both.
                asked = exchange.sent if exchange is not None else Validators()
                with contextlib.closing(_request(connection, parts, asked)) as response:
                    if response.status in _REDIRECT_STATUSES:
                        target = _redirect_target(current, response, redirects)
                        redirects += 1
                        current, parts = target, urlsplit(target)
                        continue
                    if exchange is not None and response.status == 304 and asked.present():
                        exchange.not_modified = True
                        return
                    _check_response(current, response, max_bytes)
                    if exchange is not None:
                        exchange.received = Validators.from_headers(
                            response.getheader("ETag"),
                            response.getheader("Last-Modified"),
                            response.getheader("Date") or "",
                        )
                    yield from _body(current, response, max_bytes)
                    return
            except (_Cancelled, _ProxyFailure, OSError, http.client.HTTPException) as exc:
                raise _as_fetch_error(exc, current, timeout=timeout, via=via) from exc
        finally:
            connection.close()


def _as_fetch_error(exc: Exception, url: str, *, timeout: float, via: str) -> FetchError:
    """The one-line :class:`FetchError` for a low-level failure while fetching ``url``."""
    import ssl  # noqa: PLC0415  (lazy: see the imports)

    if isinstance(exc, _Cancelled):
        return FetchError(f"{url}: cancelled")
    if isinstance(exc, _ProxyFailure):
        return FetchError(
            _one_line(f"{url}: the proxy {exc.proxy.url} (from {exc.proxy.source}) {exc.why}"),
            hint=_HINT_PROXY,
        )
    if isinstance(exc, ssl.SSLCertVerificationError):
        return FetchError(
            _one_line(f"{url}: TLS certificate not trusted: {exc.verify_message}"), hint=_HINT_TLS
        )
    if isinstance(exc, ssl.SSLError):
        return FetchError(_one_line(f"{url}: TLS error: {exc}{via}"), hint=_HINT_TLS)
    if isinstance(exc, socket.gaierror):
        host = urlsplit(url).hostname
        return FetchError(_one_line(f"{url}: cannot resolve {host}: {exc.strerror}"))
    if isinstance(exc, TimeoutError):  # _DeadlineExceeded, or a timeout of the OS
        return FetchError(f"{url}: no complete answer within the {timeout:g} s deadline{via}")
    if isinstance(exc, ConnectionRefusedError):
        return FetchError(f"{url}: connection refused{via}")
    if isinstance(exc, OSError):
        return FetchError(_one_line(f"{url}: {exc.strerror or exc}{via}"))
    return FetchError(_one_line(f"{url}: bad HTTP response: {type(exc).__name__} {exc}{via}"))


def _request(
    connection: http.client.HTTPConnection, parts: SplitResult, validators: Validators
) -> http.client.HTTPResponse:
    target = parts.path or "/"
    if parts.query:
        target += "?" + parts.query
    # skip_accept_encoding: we never ask for compressed bodies (see the gzip-bomb rule).
    connection.putrequest("GET", target, skip_accept_encoding=True)
    connection.putheader("User-Agent", USER_AGENT)
    connection.putheader("Accept", "*/*")
    connection.putheader("Connection", "close")
    if validators.etag is not None:
        connection.putheader("If-None-Match", validators.etag)
    if validators.last_modified is not None:
        connection.putheader("If-Modified-Since", validators.last_modified)
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
        chunk = response.read(min(_BODY_CHUNK, max_bytes + 1 - total))
        if not chunk:
            break
        total += len(chunk)
        if total > max_bytes:
            raise FetchError(f"{url}: more than the cap of {max_bytes} bytes", hint=_HINT_SIZE)
        yield chunk
    # http.client reports a connection closed early as a short read, not as an error.
    if declared is not None and total != declared:
        raise FetchError(f"{url}: truncated: {total} of {declared} bytes")
