"""The canonical identity of a list's location: one string per list, however it is spelt.

The trust state (the rollback ratchet) and the cache of the last verified list are keyed by it, so
that spelling one location another way cannot open a fresh serial history: a plain path and its
``file://`` URL, an upper-case scheme or host, the default port (``:443``, ``:80``), an empty
query (``?``), a fragment, ``.`` and ``..`` segments, or percent-escapes of characters that need
none all name the same list. Credentials in a URL are dropped (they never name another list, and
must not be written into the state).

- A local list (a path, or a ``file:`` URL without a host or with ``localhost``) is identified by
  its absolute path with symlinks resolved, e.g. ``/srv/site/sha256sums.txt``.
- Any other URL is identified by its normalised form, e.g. ``https://example.org/sha256sums.txt``.

Merging two spellings into one history is the safe direction: at worst it refuses a list that a
separate history would have accepted; it can never accept an older list.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Final
from urllib.parse import SplitResult, unquote, urlsplit, urlunsplit

_DEFAULT_PORTS: Final = {"http": 80, "https": 443}
_PERCENT_RE: Final = re.compile(r"%([0-9A-Fa-f]{2})")
_UNRESERVED: Final = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")


def _scheme(source: str) -> str:
    scheme = urlsplit(source).scheme.lower()
    # A one-letter "scheme" is a Windows drive letter (C:\...); on POSIX "c:x" is a file name.
    return "" if len(scheme) == 1 else scheme


def _normalise_escapes(text: str) -> str:
    """Decode escapes of unreserved characters and upper-case the others (RFC 3986 §6.2.2)."""

    def one(match: re.Match[str]) -> str:
        char = chr(int(match.group(1), 16))
        return char if char in _UNRESERVED else f"%{match.group(1).upper()}"

    return _PERCENT_RE.sub(one, text)


def _remove_dot_segments(path: str) -> str:
    """RFC 3986 §5.2.4: ``/a/./b/../c`` is ``/a/c``. Empty segments (``//``) are kept."""
    output: list[str] = []
    segments = path.split("/")
    for index, segment in enumerate(segments):
        last = index == len(segments) - 1
        if segment == ".":
            if last:
                output.append("")
        elif segment == "..":
            if len(output) > 1:
                output.pop()
            if last:
                output.append("")
        else:
            output.append(segment)
    result = "/".join(output)
    return result if result.startswith("/") else "/" + result


def _local_path(source: str, scheme: str, base_dir: Path) -> Path | None:
    """The file a local source names, or ``None`` when ``source`` is not local."""
    if scheme == "":
        path = Path(source)
    elif scheme == "file":
        parts = urlsplit(source)
        if (parts.hostname or "").lower() not in ("", "localhost"):
            return None
        path = Path(unquote(parts.path))
    else:
        return None
    return (base_dir / path).resolve()


def canonical(source: str, *, base_dir: Path) -> str:
    """The canonical identity of the list at ``source`` (a URL, or a path relative to ``base_dir``).

    Pure apart from resolving symlinks of a local path. Never raises for a string: what is not an
    allowed source is refused later, by :mod:`safepip.fetch`; its identity is then merely stable.
    """
    scheme = _scheme(source)
    local = _local_path(source, scheme, base_dir)
    if local is not None:
        return str(local)
    try:
        parts = urlsplit(source)
        port = parts.port
    except ValueError:  # a port that is not a number: not a list anyone can fetch
        return source
    host = (parts.hostname or "").lower()
    if ":" in host:  # an IPv6 literal keeps its brackets
        host = f"[{host}]"
    if port is not None and port != _DEFAULT_PORTS.get(scheme):
        host = f"{host}:{port}"
    path = _remove_dot_segments(_normalise_escapes(parts.path)) if host else parts.path
    query = _normalise_escapes(parts.query)
    return urlunsplit(SplitResult(scheme, host, path, query, ""))
