"""The signed list as data: parse, serialise, look up, and judge its header (pure).

Format 1 (DESIGN.md §2) is ``sha256sum`` output with a ``# key: value`` header::

    # safepip-list: 1
    # serial: 42
    # issued: 2026-11-23T10:00:00Z
    # expires: 2026-12-23T10:00:00Z
    <64 lower-case hex>  <bare filename>

Parsing is strict: every deviation refuses the whole list with the 1-based line number, because a
list that two tools could read differently is a list an attacker can aim at one of them.
"""

from __future__ import annotations

import contextlib
import functools
import gc
import hashlib
import itertools
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from operator import itemgetter
from typing import Final, Literal, NamedTuple, Protocol

from safepip.errors import FreshnessError, ListFormatError

FORMAT: Final = 1
DEFAULT_MAX_BYTES: Final = 16 * 1024 * 1024  # as config.DEFAULT_MAX_LIST_BYTES
#: Clocks of publisher and user differ a little; an ``issued`` this far ahead is still accepted.
CLOCK_SKEW: Final = timedelta(minutes=5)

_TIME_FORMAT: Final = "%Y-%m-%dT%H:%M:%SZ"
_HEADER_RE: Final = re.compile(r"# ([a-z][a-z0-9-]*): (.*)")
_ENTRY_RE: Final = re.compile(r"([0-9a-f]{64})  (.+)")
# Filenames may hold only what wheel and sdist names hold; anything else could be a path or a URL.
_SAFE_FILENAME_RE: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+!-]*")
# The wheel filename grammar of the binary distribution format spec, anchored.
_WHEEL_RE: Final = re.compile(
    r"(?P<name>[A-Za-z0-9](?:[A-Za-z0-9._]*[A-Za-z0-9])?)-(?P<version>[^-]+)"
    r"(?:-(?P<build>\d[^-]*))?-(?P<tags>[^-]+-[^-]+-[^-]+)\.whl"
)
_SDIST_RE: Final = re.compile(r"(?P<name>.+)-(?P<version>[^-]+)\.(?:tar\.gz|zip)")
_SIMPLE_VERSION_RE: Final = re.compile(r"[0-9]+(?:\.[0-9]+)*")
# One whole entry line naming a wheel, in a language inside both _SAFE_FILENAME_RE and _WHEEL_RE
# (no component holds a hyphen, so the groups split a filename exactly as _WHEEL_RE does). Used
# over the whole body at once; lines it does not match send the list to the line-by-line parser.
_FAST_PART: Final = r"[A-Za-z0-9._+!]"
_FAST_WHEEL_LINE_RE: Final = re.compile(
    rf"^([0-9a-f]{{64}})  ((?P<name>[A-Za-z0-9](?:[A-Za-z0-9._]*[A-Za-z0-9])?)"
    rf"-(?P<version>{_FAST_PART}+)(?:-(?P<build>[0-9]{_FAST_PART}*))?"
    rf"-(?P<tags>{_FAST_PART}+-{_FAST_PART}+-{_FAST_PART}+)\.whl)$",
    re.MULTILINE,
)
_SEPARATOR_RUN_RE: Final = re.compile(r"[-_.]+")
_KNOWN_HEADERS: Final = ("safepip-list", "serial", "issued", "expires")


@dataclass(frozen=True)
class Header:
    """The freshness header; every field is ``None`` in a legacy (header-less) list."""

    format: int | None = None
    serial: int | None = None
    issued: datetime | None = None
    expires: datetime | None = None


class Entry(NamedTuple):
    """One listed file: its exact filename and sha256, and what the filename says.

    A named tuple rather than a frozen dataclass: lists hold 100,000 entries, and creating one
    costs a third as much.
    """

    filename: str
    sha256: str
    name: str  # canonical project name
    version: str  # as written in the filename
    kind: Literal["wheel", "sdist"]
    line: int


class _Table(Protocol):
    """Entries in list order and their indexes by filename and by hash."""

    @property
    def entries(self) -> list[Entry]: ...
    @property
    def by_filename(self) -> dict[str, Entry]: ...
    @property
    def by_hash(self) -> dict[str, Entry]: ...


@dataclass(frozen=True)
class HashList:
    """A parsed list. ``sha256`` is the digest of the exact bytes parsed.

    Every check ran when it was parsed; the ``Entry`` objects and the indexes are only built on
    first use (``verify`` needs none of them: 100,000 entries take longer to build than to check).
    """

    header: Header
    sha256: str
    legacy: bool
    #: How many entries, and how many of them are wheels.
    count: int
    wheel_count: int
    _table: _Table = field(repr=False, compare=False)

    @functools.cached_property
    def entries(self) -> tuple[Entry, ...]:
        """Every entry, in list order."""
        return tuple(self._table.entries)

    @functools.cached_property
    def _by_name(self) -> Mapping[str, tuple[Entry, ...]]:
        by_name: dict[str, list[Entry]] = {}
        for entry in self._table.entries:
            by_name.setdefault(entry.name, []).append(entry)
        return {k: tuple(v) for k, v in by_name.items()}

    def get(self, filename: str) -> Entry | None:
        """The entry for exactly ``filename``, or ``None``."""
        return self._table.by_filename.get(filename)

    def by_sha256(self, digest: str) -> Entry | None:
        """The entry whose hash is ``digest`` (lower-case hex), or ``None``."""
        return self._table.by_hash.get(digest)

    def for_project(self, name: str) -> tuple[Entry, ...]:
        """Every entry (wheels and sdists) whose canonical project name is ``name``."""
        return self._by_name.get(canonical_name(name), ())

    def names(self) -> frozenset[str]:
        """Canonical names of every listed project."""
        return frozenset(self._by_name)

    def wheels(self) -> tuple[Entry, ...]:
        """The wheel entries, in list order."""
        return tuple(e for e in self.entries if e.kind == "wheel")


def _canonical_version(text: str, line: int) -> str:
    """Normalise a version so that ``1.0`` and ``1.0.0`` compare equal, as pip does.

    Raises:
        ListFormatError: the version is not a valid PEP 440 version.
    """
    if _SIMPLE_VERSION_RE.fullmatch(text):
        # Fast path for the common release-only versions: strip leading zeros and zero tails.
        parts = [p.lstrip("0") or "0" for p in text.split(".")]
        while len(parts) > 1 and parts[-1] == "0":
            parts.pop()
        return ".".join(parts)
    # Lazy: most lists hold release versions only, and `verify` need not import packaging.
    from packaging.version import InvalidVersion, Version  # noqa: PLC0415

    try:
        version = Version(text)
    except (InvalidVersion, ValueError):
        # ValueError: Python refuses to convert integers of thousands of digits.
        raise ListFormatError(f"invalid version {text!r} in filename", line=line) from None
    release = list(version.release)
    while len(release) > 1 and release[-1] == 0:
        release.pop()
    return repr((version.epoch, release, version.pre, version.post, version.dev, version.local))


def _canonical_tags(tags: str) -> str:
    """``py2.py3-none-any`` and ``py3.py2-none-any`` name one tag set; return one key for both.

    A tag set is the product of its three dotted parts, as sets (``py2.py2`` is ``py2``, as
    packaging reads it). Products of non-empty sets are equal only if their factors are, so
    the key is the three factors, each sorted: never the product itself, whose size is the
    product of the parts' sizes (a 13 KB line would make a billion strings).
    """
    return "-".join(".".join(sorted(set(part.split(".")))) for part in tags.lower().split("-"))


def _parse_filename(filename: str, line: int) -> tuple[str, str, str, Literal["wheel", "sdist"]]:
    """Return (canonical name, version, collision key, kind) for a listed filename.

    Raises:
        ListFormatError: the name is unsafe, or is neither a valid wheel nor an sdist filename.
    """
    if not _SAFE_FILENAME_RE.fullmatch(filename) or ".." in filename:
        raise ListFormatError(
            f"{filename!r} is not a bare filename (path or URL-significant character)", line=line
        )
    wheel = _WHEEL_RE.fullmatch(filename)
    if wheel is not None:
        raw_name = wheel["name"]
        if "__" in raw_name:
            raise ListFormatError(f"invalid wheel filename {filename!r}", line=line)
        name = canonical_name(raw_name)
        version = _canonical_version(wheel["version"], line)
        key = f"{name} {version} {wheel['build'] or ''} {_canonical_tags(wheel['tags'])}"
        return name, wheel["version"], key, "wheel"
    if filename.endswith(".whl"):
        raise ListFormatError(f"invalid wheel filename {filename!r}", line=line)
    sdist = _SDIST_RE.fullmatch(filename)
    if sdist is None:
        raise ListFormatError(f"{filename!r} is neither a wheel nor an sdist", line=line)
    name = canonical_name(sdist["name"])
    version = _canonical_version(sdist["version"], line)
    return name, sdist["version"], f"{name} {version} sdist", "sdist"


def _parse_time(value: str, key: str, line: int) -> datetime:
    try:
        return datetime.strptime(value, _TIME_FORMAT).replace(tzinfo=timezone.utc)
    except ValueError:
        raise ListFormatError(
            f"{key}: {value!r} is not a UTC time like 2026-11-23T10:00:00Z", line=line
        ) from None


def _parse_header(found: Mapping[str, tuple[str, int]], require_freshness: bool) -> Header:
    """Build the header from ``key → (value, line)``.

    Raises:
        ListFormatError: a value is malformed, or a required key is missing.
    """
    if not found:
        if require_freshness:
            raise ListFormatError(
                "no '# safepip-list: 1' header: a legacy list has no serial and no expiry",
                line=1,
                hint="publish with `safepip publish`, or set require-freshness = false to accept "
                "a legacy sha256sum list without rollback and freeze protection",
            )
        return Header()
    fmt_value, fmt_line = found.get("safepip-list", ("", 1))
    if fmt_value != str(FORMAT) or fmt_line != 1:
        raise ListFormatError(
            f"'# safepip-list: {FORMAT}' must be the first line (found {fmt_value!r})",
            line=fmt_line,
        )
    serial: int | None = None
    if "serial" in found:
        value, line = found["serial"]
        if not re.fullmatch(r"0|[1-9][0-9]{0,17}", value):
            raise ListFormatError(f"serial: {value!r} is not a non-negative integer", line=line)
        serial = int(value)
    issued = (
        _parse_time(found["issued"][0], "issued", found["issued"][1]) if "issued" in found else None
    )
    expires = (
        _parse_time(found["expires"][0], "expires", found["expires"][1])
        if "expires" in found
        else None
    )
    if require_freshness:
        for key in ("serial", "issued", "expires"):
            if key not in found:
                raise ListFormatError(f"the header has no '# {key}:' line", line=len(found) + 1)
    return Header(format=FORMAT, serial=serial, issued=issued, expires=expires)


def _text(data: bytes, max_bytes: int) -> str:
    """The list as text, after the byte-level checks.

    Raises:
        ListFormatError: oversized, BOM, non-ASCII or empty.
    """
    if len(data) > max_bytes:
        raise ListFormatError(f"the list is {len(data)} bytes, above max-list-bytes ({max_bytes})")
    if data.startswith(b"\xef\xbb\xbf"):
        raise ListFormatError("byte order mark", line=1)
    try:
        text = data.decode("ascii")
    except UnicodeDecodeError as exc:
        where = data.count(b"\n", 0, exc.start) + 1
        raise ListFormatError("non-ASCII byte", line=where) from None
    if not text or text.isspace():  # never .strip(): a copy of a 10 MB list to test it
        raise ListFormatError("the list is empty")
    return text


def _lines(text: str) -> list[str]:
    """Split the text into lines.

    Raises:
        ListFormatError: a CR or another control character, with its line.
    """
    lines = text.split("\n")
    if lines[-1] == "":
        lines.pop()  # the final LF ends the last line; it does not start a new one
    for number, line in enumerate(lines, start=1):
        if not line.isprintable():
            what = "carriage return (CRLF line ending)" if "\r" in line else "control character"
            raise ListFormatError(what, line=number)
    return lines


class _EntryTable:
    """Entries in list order, refusing every kind of duplicate as it goes."""

    def __init__(self) -> None:
        self.entries: list[Entry] = []
        self.by_filename: dict[str, Entry] = {}
        self.by_hash: dict[str, Entry] = {}
        self._by_key: dict[str, Entry] = {}

    @property
    def count(self) -> int:
        return len(self.entries)

    @property
    def wheel_count(self) -> int:
        return sum(1 for e in self.entries if e.kind == "wheel")

    def add(self, digest: str, filename: str, number: int) -> None:
        """Add one entry.

        Raises:
            ListFormatError: bad filename, or a duplicate filename, hash or (name, version, tags).
        """
        name, version, key, kind = _parse_filename(filename, number)
        if filename in self.by_filename:
            first = self.by_filename[filename].line
            raise ListFormatError(
                f"{filename} is listed twice (first on line {first})", line=number
            )
        if digest in self.by_hash:
            other_file = self.by_hash[digest].filename
            raise ListFormatError(f"{filename} has the same sha256 as {other_file}", line=number)
        if key in self._by_key:
            other = self._by_key[key]
            raise ListFormatError(
                f"{filename} names the same project, version and tags as {other.filename} "
                f"(line {other.line})",
                line=number,
            )
        entry = Entry(filename, digest, name, version, kind, number)
        self.entries.append(entry)
        self.by_filename[filename] = entry
        self.by_hash[digest] = entry
        self._by_key[key] = entry


def parse(
    data: bytes, *, require_freshness: bool = True, max_bytes: int = DEFAULT_MAX_BYTES
) -> HashList:
    """Parse the exact bytes of a list.

    Raises:
        ListFormatError: anything other than a well-formed list, naming the line where it can.
    """
    text = _text(data, max_bytes)
    with _no_cycle_collection():
        return _parse_text(text, data, require_freshness)


@contextlib.contextmanager
def _no_cycle_collection() -> Iterator[None]:
    """Pause the cyclic garbage collector while a list is built.

    A list makes hundreds of thousands of small objects, none of them in a cycle; left running,
    the collector rescans them all again and again, a third of the parse time at 100,000 entries.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        # What was just built lives as long as the command, and holds no cycle: moved out of
        # the collector's reach, the next collection does not rescan the whole list once more.
        gc.freeze()
        if was_enabled:
            gc.enable()


def _parse_text(text: str, data: bytes, require_freshness: bool) -> HashList:
    """:func:`parse` after the byte-level checks; ``data`` is what ``text`` was decoded from."""
    # The common case first: header lines, then wheel entries and nothing else, judged over the
    # whole text at once. Any doubt (an sdist, a comment, a bad or duplicate line) sends the list
    # to the line-by-line parser, which decides and names the line.
    header, table = _parse_wheels_at_once(text) or _parse_line_by_line(text)
    if not table.count:
        raise ListFormatError("the list has no entries")
    return HashList(
        header=_parse_header(header, require_freshness),
        sha256=hashlib.sha256(data).hexdigest(),
        legacy=not header,
        count=table.count,
        wheel_count=table.wheel_count,
        _table=table,
    )


_Headers = dict[str, tuple[str, int]]


def _read_header_line(header: _Headers, line: str, number: int) -> bool:
    """Record ``line`` if it is a known header line; return whether it was one.

    Raises:
        ListFormatError: the key was already given.
    """
    match = _HEADER_RE.fullmatch(line)
    if match is None or match[1] not in _KNOWN_HEADERS:
        return False
    if match[1] in header:
        raise ListFormatError(f"second '# {match[1]}:' header", line=number)
    header[match[1]] = (match[2], number)
    return True


def _leading_header(text: str) -> tuple[_Headers, int] | None:
    """The header lines that start ``text``, and how many characters they take.

    Returns ``None`` when a leading ``#`` line is a comment, a repeated key or unprintable.
    """
    header: _Headers = {}
    skipped = 0
    # A header has four lines; look at eight at most, each ended by LF. Found one at a time: a
    # split would copy the whole body (~5 ms for a 10 MB list) as its remainder.
    for number in range(1, 9):
        end = text.find("\n", skipped)
        if end < 0 or not text.startswith("#", skipped):
            break
        line = text[skipped:end]
        try:
            if not line.isprintable() or not _read_header_line(header, line, number):
                return None
        except ListFormatError:
            return None
        skipped = end + 1
    return header, skipped


class _WheelTable:
    """The entries of a list that a fast path checked, built only when first asked for.

    Held as columns (one list per field, in list order): 100,000 ``Entry`` objects take longer
    to build than the whole list takes to check, and ``verify`` needs none of them. The
    canonical names are a column too, or the raw name parts joined by LF, one per line.
    """

    def __init__(
        self,
        digests: list[str],
        filenames: list[str],
        versions: list[str],
        first_line: int,
        names: list[str] | str,
    ):
        self._columns = (digests, filenames, versions)
        self._names = names
        self._first_line = first_line
        self.count = self.wheel_count = len(digests)

    @functools.cached_property
    def entries(self) -> list[Entry]:
        digests, filenames, versions = self._columns
        names = self._names
        return list(
            map(
                Entry,
                filenames,
                digests,
                _canonical_lines(names) if isinstance(names, str) else names,
                versions,
                itertools.repeat("wheel"),
                itertools.count(self._first_line),
            )
        )

    @functools.cached_property
    def by_filename(self) -> dict[str, Entry]:
        return {entry.filename: entry for entry in self.entries}

    @functools.cached_property
    def by_hash(self) -> dict[str, Entry]:
        return {entry.sha256: entry for entry in self.entries}


def _parse_wheels_at_once(text: str) -> tuple[_Headers, _WheelTable] | None:
    """Header and entries of a list made of header lines and well-formed wheel lines only.

    Every check of the careful parser runs, over whole columns at once. Returns ``None``, for
    the line-by-line parser to decide, on anything else or on any error: the fast paths may
    only ever accept what the careful parser accepts, with the same entries.
    """
    leading = _leading_header(text)
    if leading is None:
        return None
    header, skipped = leading
    body = text[skipped:]
    return _parse_wheels_in_bulk(header, body) or _parse_wheels_by_pattern(header, body)


_DIGEST: Final = itemgetter(slice(0, 64))
_FILENAME: Final = itemgetter(slice(66, None))
_HEX_BYTES: Final = b"0123456789abcdef"
# Every byte a line of the bulk path may hold: hex, the filename alphabet, space and LF.
_BULK_BYTES: Final = _HEX_BYTES + b"ghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ._+!- \n"


def _names_are_plain(names_text: str) -> bool:
    """Whether the raw names, each between two LFs, are none empty, hold no "+" or "!", start
    and end with a letter or digit, and hold no "__" (refused in a name; allowed in tags)."""
    if "\n\n" in names_text or "+" in names_text or "!" in names_text:
        return False
    # A two-character search costs a scan each; most lists have no "." in a name at all.
    return not any(
        mark in names_text
        and any(run in names_text for run in (f"\n{mark}", f"{mark}\n", mark * 2))
        for mark in "._"
    )


def _parse_wheels_in_bulk(header: _Headers, body: str) -> tuple[_Headers, _WheelTable] | None:
    """The common list, judged with string methods over whole columns and no per-line Python.

    Takes only lines ``<hash>  <name>-<version>-<py>-<abi>-<platform>.whl`` (no build tag),
    each ending in LF, and no two names, versions or tag sets that are one written two ways;
    returns ``None`` on anything else. The regular expression of the other fast path costs
    about 1 µs per line in ``re``; these C-level passes cost a fifth of that.
    """
    columns = _bulk_columns(body)
    if columns is None:
        return None
    digests, filenames, parts = columns
    n = len(digests)
    # Each line's name part is parts[5 * i], led by the LF that ended the line before: joined,
    # they are the names one per line.
    names_text = "\n" + "".join(parts[0::5])
    if not _names_are_plain(names_text):
        return None
    if len(set(digests)) != n or len(set(filenames)) != n:
        return None  # duplicates: found and named by the careful parser
    first_line = len(header) + 1
    versions = parts[1::5]
    if not _one_spelling_each(names_text, versions, parts, first_line):
        return None
    return header, _WheelTable(digests, filenames, versions, first_line, names_text[1:-1])


def _bulk_columns(body: str) -> tuple[list[str], list[str], list[str]] | None:
    """(hashes, filenames, filename parts) when every line of ``body`` is a hash, two spaces
    and a filename of five non-empty parts ending in ``.whl``; else ``None``.

    The parts are those of every filename in order, split at its four hyphens, each line's first
    part led by LF (but the first line's), then a last part that is LF alone.
    """
    n = body.count("\n")
    # Counts first, which cost a millisecond each: two spaces and four hyphens a line (more
    # hyphens is a build tag, most likely: the pattern path takes those).
    if not n or not body.endswith("\n") or body.count(" ") != 2 * n or body.count("-") != 4 * n:
        return None
    if body.encode("ascii").translate(None, _BULK_BYTES):
        return None
    lines = body.split("\n")
    lines.pop()  # the final LF ends the last line; it does not start a new one
    digests = list(map(_DIGEST, lines))
    if "".join(digests).encode("ascii").translate(None, _HEX_BYTES):
        return None
    filenames = list(map(_FILENAME, lines))
    joined = "\n".join(filenames) + "\n"
    # Every filename ends in ".whl", so every line is longer than 66 characters; no space is in
    # a hash (hex) or a filename, so the 2n spaces counted are the two after each hash. And ".."
    # is refused in a filename (the careful parser says so).
    if joined.count(".whl\n") != n or " " in joined or ".." in joined:
        return None
    # With ".whl" made a hyphen, every LF follows a hyphen and so starts a part; no part is
    # empty (the name part is judged by the caller: it is "\n" alone when empty).
    marked = joined.replace(".whl\n", "-\n")
    if "--" in marked:
        return None
    parts = marked.split("-")
    # 5n + 1 parts, as the hyphens counted above say. Every LF starts a part, and there are n:
    # if each of parts[5], parts[10], ... parts[5n] holds one, then each line is exactly five
    # parts, which is four hyphens in every filename.
    if len(parts) != 5 * n + 1 or "".join(parts[5::5]).count("\n") != n:
        return None
    return digests, filenames, parts


def _one_spelling_each(names_text: str, versions: list[str], parts: list[str], line: int) -> bool:
    """Whether no two distinct spellings of a name, a version or a tag set normalise alike (and
    every version is valid), so that unique filenames mean unique (name, version, tags) keys.

    ``names_text`` is the raw names, each between two LFs. Lower-case names without dots need
    no check: only "_" becomes "-" in them.
    """
    try:
        version_keys = {v: _canonical_version(v, line) for v in set(versions)}
    except ListFormatError:
        return False
    if len(set(version_keys.values())) != len(version_keys):
        return False
    # A tag set is the product of its three dotted parts, and products of non-empty sets are
    # equal only if their factors are: distinct spellings within each column are enough.
    for column in (parts[2::5], parts[3::5], parts[4::5]):
        spellings = set(column)
        if len({frozenset(tag.lower().split(".")) for tag in spellings}) != len(spellings):
            return False
    if names_text.lower() != names_text or "." in names_text:
        names = "\n".join(set(names_text[1:-1].split("\n")))
        return len(set(_canonical_lines(names))) == names.count("\n") + 1
    return True


# The hash and the filename of a match of _FAST_WHEEL_LINE_RE (the bulk path slices lines).
_MATCH_DIGEST: Final = itemgetter(0)
_MATCH_FILENAME: Final = itemgetter(1)


def _parse_wheels_by_pattern(header: _Headers, body: str) -> tuple[_Headers, _WheelTable] | None:
    """Any list of wheel lines (build tags, mixed case, dotted names), by one regular expression
    pass: the line grammar, unique filenames and hashes as sets, and unique (name, version,
    build, tags) keys from canonical forms computed once per distinct value."""
    # Hashes are hex, so ".." or "__" anywhere in the body is in a filename: the careful parser
    # judges those (a ".." filename is refused; "__" is refused in a name, allowed in a tag).
    if ".." in body or "__" in body:
        return None
    expected = body.count("\n") + (not body.endswith("\n"))
    matches = _FAST_WHEEL_LINE_RE.findall(body)
    n = len(matches)
    if n != expected:
        return None
    # Duplicates of any kind: counted here, found and named by the careful parser.
    digests = list(map(_MATCH_DIGEST, matches))
    filenames = list(map(_MATCH_FILENAME, matches))
    if len(set(digests)) != n or len(set(filenames)) != n:
        return None
    first_line = len(header) + 1
    raw_names = [m[2] for m in matches]
    versions = [m[3] for m in matches]
    try:
        names = _canonical_names(raw_names)
        canonical_versions = _canonical_column(
            versions, lambda v: _canonical_version(v, first_line)
        )
        tags = _canonical_column([m[5] for m in matches], _canonical_tags)
    except ListFormatError:
        return None
    builds = [m[4] for m in matches]
    if len(set(zip(names, canonical_versions, builds, tags, strict=True))) != n:
        return None
    return header, _WheelTable(digests, filenames, versions, first_line, names)


def _canonical_column(column: list[str], canonical: Callable[[str], str]) -> list[str]:
    """``canonical`` of every value of ``column``, computed once per distinct value."""
    memo = {value: canonical(value) for value in set(column)}
    return list(map(memo.__getitem__, column))


def canonical_name(name: str) -> str:
    """The PEP 503 normal form of a project name, as ``packaging.utils.canonicalize_name``."""
    return _SEPARATOR_RUN_RE.sub("-", name).lower()


def _canonical_names(raw_names: list[str]) -> list[str]:
    """The canonical project names of wheel filenames' name parts (no ``-``, no ``__``, no
    newline), in bulk."""
    return _canonical_lines("\n".join(raw_names))


def _canonical_lines(raw_names: str) -> list[str]:
    """The canonical project names of wheel name parts given one per line: one lower-casing and
    one substitution over all of them."""
    return _SEPARATOR_RUN_RE.sub("-", raw_names.lower()).split("\n")


def _parse_line_by_line(text: str) -> tuple[_Headers, _EntryTable]:
    """Header and entries, one line at a time, refusing the first bad line by its number.

    Raises:
        ListFormatError: a malformed line, or a duplicate filename, hash or (name, version, tags).
    """
    header: _Headers = {}
    in_header = True
    table = _EntryTable()
    for number, line in enumerate(_lines(text), start=1):
        if line.startswith("#"):
            if not (in_header and _read_header_line(header, line, number)):
                in_header = False  # a comment ends the header; later header lines are comments
            continue
        in_header = False
        match = _ENTRY_RE.fullmatch(line)
        if match is None:
            raise ListFormatError(
                "expected '<64 lower-case hex sha256><two spaces><filename>'", line=number
            )
        table.add(match[1], match[2], number)
    return header, table


def serialise(
    files: Mapping[str, str], *, serial: int, issued: datetime, expires: datetime
) -> bytes:
    """Write a format 1 list of ``filename → sha256``, sorted by filename.

    The result is parsed back before it is returned, so a publisher can never sign a list that
    safepip itself would refuse.

    Raises:
        ListFormatError: the files would make an invalid list (bad name, shared hash, collision).
    """
    lines = [
        f"# safepip-list: {FORMAT}",
        f"# serial: {serial}",
        f"# issued: {issued.astimezone(timezone.utc).strftime(_TIME_FORMAT)}",
        f"# expires: {expires.astimezone(timezone.utc).strftime(_TIME_FORMAT)}",
    ]
    lines.extend(f"{files[name]}  {name}" for name in sorted(files))
    data = ("\n".join(lines) + "\n").encode("ascii", errors="strict")
    parse(data, max_bytes=max(len(data), DEFAULT_MAX_BYTES))
    return data


def judge_header(header: Header, *, now: datetime, max_validity_days: int, legacy: bool) -> None:
    """Refuse an expired list, one issued in the future, or one valid for too long.

    ``now`` is the run's start time. A legacy list (accepted only without required freshness) has
    nothing to judge.

    Raises:
        FreshnessError: the list is expired, from the future, or its validity is too long.
    """
    if legacy:
        return
    issued, expires = header.issued, header.expires
    if expires is not None and now >= expires:
        raise FreshnessError(
            f"the list expired at {_show(expires)} (now {_show(now)}): a frozen or stale list",
        )
    if issued is not None and issued > now + CLOCK_SKEW:
        raise FreshnessError(f"the list was issued in the future ({_show(issued)})")
    if issued is not None and expires is not None:
        if expires <= issued:
            raise FreshnessError(f"the list expires ({_show(expires)}) before it was issued")
        if expires - issued > timedelta(days=max_validity_days):
            raise FreshnessError(
                f"the list is valid for {(expires - issued).days} days, above "
                f"max-validity-days ({max_validity_days})",
            )


def _show(moment: datetime) -> str:
    return moment.astimezone(timezone.utc).strftime(_TIME_FORMAT)
