"""The publisher: hash a wheel folder, write and sign the list, build a static PEP 503 index.

The output folder is what a plain static web server (or ``file://``) serves::

    DIR/sha256sums.txt        the list (format 1)
    DIR/sha256sums.txt.asc    its detached signature
    DIR/<wheel files>         the wheels themselves
    DIR/simple/index.html     the PEP 503 root page
    DIR/simple/<name>/index.html   one page a project, links carrying #sha256=

**The list and its signature change together.** Clients fetch two files, so no plain file
system operation swaps both at once; what publish guarantees instead:

- the new pair is written and flushed to disk in a private folder first, then renamed whole to
  ``DIR/.publish-pending`` (the commit point: a complete, signed pair waits there);
- the two renames into place follow each other at once, with SIGINT, SIGTERM and SIGHUP held
  back until both are done (an interrupt then takes effect, with the new pair in place);
- a crash between the two renames (power loss, SIGKILL) leaves the rest of the pair in
  ``.publish-pending``, and the next ``publish`` completes it before anything else.

An interrupt before the commit point leaves the old pair served and nothing else; a client
fetching while the pair is swapped can still meet one old and one new file (no static server
can prevent that), only within the microseconds between two renames.

**Serials survive a clean workspace.** The next serial is one above the highest of the list
served (read by the caller with :func:`read_served`, signature checked against the pins) and the
list already in ``DIR``; with no served list to read, it is the UTC time as ``YYYYMMDDHHMMSS``,
never a restart at 1.
"""

from __future__ import annotations

import contextlib
import html
import os
import re
import shutil
import signal
import tempfile
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from types import FrameType
from typing import Final
from urllib.parse import quote

from packaging.utils import InvalidSdistFilename, canonicalize_name, parse_sdist_filename

from safepip import fetch, gpg, hashlist
from safepip.config import MAX_VALIDITY_DAYS
from safepip.errors import ListFormatError, NotFoundError, PublishError, UsageError
from safepip.files import sha256_file
from safepip.policy import Rejection
from safepip.wheel import WheelError, read_metadata

LIST_NAME: Final = "sha256sums.txt"
SIGNATURE_NAME: Final = "sha256sums.txt.asc"
_DURATION_RE: Final = re.compile(r"([1-9][0-9]*)([dh])")
#: Where a complete new pair waits between the commit point and its two renames into place.
PENDING_NAME: Final = ".publish-pending"
#: The deadline for fetching the served list, and its signature, in seconds.
_SERVED_DEADLINE: Final = 60.0
#: The largest serial a list may carry (hashlist accepts at most 18 digits).
_MAX_SERIAL: Final = 10**18 - 1
#: Signals held back while the pair is renamed into place.
_DEFERRED: Final = tuple(
    getattr(signal, name) for name in ("SIGINT", "SIGTERM", "SIGHUP") if hasattr(signal, name)
)


@dataclass(frozen=True)
class Served:
    """The list a site serves now: where, its serial (``None``: a legacy list) and projects."""

    source: str
    serial: int | None
    names: frozenset[str]


@dataclass(frozen=True)
class Published:
    """What ``publish`` wrote."""

    list_path: Path
    signature_path: Path
    serial: int
    issued: datetime
    expires: datetime
    entries: int
    projects: int
    sdists: int = 0


def parse_duration(text: str) -> timedelta:
    """``30d`` or ``12h`` as a timedelta, at most :data:`~safepip.config.MAX_VALIDITY_DAYS`.

    Raises:
        UsageError: anything else, or a longer duration (a date that far away is no expiry,
            and beyond year 9999 it cannot even be written).
    """
    match = _DURATION_RE.fullmatch(text.strip())
    if match is None:
        raise UsageError(f"{text!r} is not a duration like 30d or 12h")
    # Compare digits before converting: int() refuses more than 4,300 of them.
    number = int(match[1]) if len(match[1]) <= len(str(MAX_VALIDITY_DAYS * 24)) else None
    days = None if number is None else number if match[2] == "d" else number / 24
    if days is None or days > MAX_VALIDITY_DAYS:
        raise UsageError(f"{text!r} is longer than {MAX_VALIDITY_DAYS} days")
    return timedelta(days=days)


def collect(wheel_dir: Path) -> dict[str, tuple[str, str | None]]:
    """``filename → (sha256, Requires-Python)`` for every wheel and sdist in ``wheel_dir``.

    ``.tar.gz`` sdists (``safepip build`` puts each beside its wheel) are listed as data.

    Raises:
        PublishError: the folder is missing or empty, holds a symlink or a file that is not a
            wheel, a wheel whose METADATA disagrees with its filename, or one with a
            ``Requires-Dist`` that is a direct reference (``name @ URL``).
    """
    if not wheel_dir.is_dir():
        raise PublishError(f"{wheel_dir} is not a folder")
    found: dict[str, tuple[str, str | None]] = {}
    for path in sorted(wheel_dir.iterdir()):
        if path.name.startswith("."):
            continue
        if path.is_symlink() or not path.is_file():
            raise PublishError(
                f"{path}: not a regular file", hint="the wheel folder must hold only wheel files"
            )
        if _is_sdist(path.name):
            # Listed as data beside the wheel built from it (DESIGN.md §2): anyone can check
            # the source against upstream's hash and rebuild the wheel. Never installed.
            found[path.name] = (sha256_file(path), None)
            continue
        if not path.name.endswith(".whl"):
            raise PublishError(
                f"{path}: not a wheel",
                hint="safepip publishes wheels (and the .tar.gz sdists they were built from); "
                "move other files out",
            )
        try:
            metadata = read_metadata(path)
        except WheelError as exc:
            raise PublishError(str(exc), hint="rebuild the wheel from its vetted source") from None
        direct = [str(r) for r in metadata.requires_dist if r.url is not None]
        if direct:
            # Installing it would make a resolver fetch (and build) whatever that URL serves
            # today: bytes no list vouches for.
            raise PublishError(
                f"{path.name}: Requires-Dist {direct[0]!r} is a direct reference (name @ URL), "
                "which no signed list can vouch for",
                hint="rebuild the wheel with a plain requirement (name and version specifier) "
                "and publish that dependency as a wheel of its own",
            )
        found[path.name] = (sha256_file(path), metadata.requires_python)
    if not any(name.endswith(".whl") for name in found):
        raise PublishError(f"{wheel_dir} holds no wheels")
    return found


def _is_sdist(filename: str) -> bool:
    if not filename.endswith(".tar.gz"):
        return False
    try:
        parse_sdist_filename(filename)
    except InvalidSdistFilename:
        return False
    return True


def previous_serial(out_dir: Path) -> tuple[int, frozenset[str]]:
    """The serial and project names of the list already in ``out_dir`` (``(0, {})`` if none).

    Raises:
        PublishError: a list is there but cannot be read; its serial is then unknown.
    """
    path = out_dir / LIST_NAME
    if not path.exists():
        return 0, frozenset()
    try:
        parsed = hashlist.parse(path.read_bytes(), require_freshness=False)
    except (OSError, ListFormatError) as exc:
        raise PublishError(
            f"cannot read the previous list {path}: {exc}",
            hint="the next serial must be above the last one published; repair or pass --serial",
        ) from None
    return parsed.header.serial or 0, parsed.names()


def read_served(
    list_source: str,
    signature_source: str,
    *,
    base_dir: Path | None,
    key_files: Sequence[Path],
    trusted: Sequence[str],
    max_bytes: int,
    cafile: str | None,
    log: Callable[[str], None] | None = None,
) -> Served | None:
    """The list served at ``list_source``, its signature checked; ``None`` if nothing is there.

    One good signature by a pinned key is enough (a site between the publisher's signature and
    a co-signer's holds one): the serial read here only ever raises the next one. Freshness is
    not judged: republishing after the list expired is what a publisher must be able to do.

    Raises:
        FetchError: the list or signature cannot be fetched (other than not existing).
        SignatureError, ConfigError: no pinned key signed it, a signature is bad, or the key
            files cannot be read.
        ListFormatError: the served list is malformed.
    """
    try:
        data = fetch.fetch_bytes(
            list_source, base_dir=base_dir, max_bytes=max_bytes, timeout=_SERVED_DEADLINE,
            cafile=cafile,
        )  # fmt: skip
    except NotFoundError:
        return None
    signature = fetch.fetch_bytes(
        signature_source, base_dir=base_dir, max_bytes=max_bytes, timeout=_SERVED_DEADLINE,
        cafile=cafile,
    )  # fmt: skip
    gpg.verify(
        data,
        signature,
        key_files=key_files,
        trusted=trusted,
        threshold=1,
        source=signature_source,
        log=log,
    )
    parsed = hashlist.parse(data, require_freshness=False, max_bytes=max_bytes)
    return Served(list_source, parsed.header.serial, parsed.names())


def clock_serial(now: datetime) -> int:
    """``now`` in UTC as the integer ``YYYYMMDDHHMMSS`` (readable, and rising with time)."""
    return int(now.astimezone(timezone.utc).strftime("%Y%m%d%H%M%S"))


def next_serial(*, requested: int | None, local: int, served: Served | None, now: datetime) -> int:
    """The serial of the list about to be published (pure).

    Above both the list served and the one in the output folder (``local``, 0 if none): one
    above the higher when a served list was read, else at least the clock
    (:func:`clock_serial`). ``requested`` (``--serial``) wins when it is above both.

    Raises:
        PublishError: ``requested`` is not above them, or the serial would exceed 18 digits.
    """
    served_serial = served.serial if served is not None and served.serial is not None else 0
    floor = max(local, served_serial)
    if requested is not None:
        if requested <= floor:
            where = (
                f"the serial {served_serial} served at {served.source}"
                if served is not None and served_serial >= local
                else f"the last published serial {local}"
            )
            raise PublishError(
                f"serial {requested} is not above {where}",
                hint="clients refuse a serial they have seen before: use a higher --serial, "
                "or leave it out",
            )
        chosen = requested
    elif served is not None and served.serial is not None:
        chosen = floor + 1
    else:
        chosen = max(floor + 1, clock_serial(now))
    if chosen > _MAX_SERIAL:
        raise PublishError(f"serial {chosen} has more than 18 digits; clients would refuse it")
    return chosen


def render_index(files: Mapping[str, tuple[str, str | None]]) -> dict[str, str]:
    """The PEP 503 pages for ``filename → (sha256, Requires-Python)`` (pure).

    Returns ``relative path → HTML``; every name, href and attribute is escaped.
    """
    projects: dict[str, list[str]] = {}
    for filename in sorted(files):
        projects.setdefault(_project(filename), []).append(filename)
    pages = {
        "index.html": _page(
            "Simple index",
            [
                f'<a href="{html.escape(quote(name))}/">{html.escape(name)}</a>'
                for name in sorted(projects)
            ],
        )
    }
    for name, filenames in projects.items():
        links = []
        for filename in filenames:
            digest, requires_python = files[filename]
            attr = (
                f' data-requires-python="{html.escape(requires_python)}"' if requires_python else ""
            )
            href = html.escape(f"../../{quote(filename)}#sha256={digest}")
            links.append(f'<a href="{href}"{attr}>{html.escape(filename)}</a>')
        pages[f"{name}/index.html"] = _page(f"Links for {name}", links)
    return pages


def _project(filename: str) -> str:
    """The canonical project name of a wheel filename (the part before the first ``-``)."""
    return canonicalize_name(filename.split("-", 1)[0])


def _page(title: str, links: Iterable[str]) -> str:
    body = "<br>\n".join(links)
    return (
        '<!DOCTYPE html>\n<html>\n<head><meta name="pypi:repository-version" content="1.0">'
        f"<title>{html.escape(title)}</title></head>\n<body>\n{body}\n</body>\n</html>\n"
    )


def _write_atomically(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, temp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())  # on disk before any list that names it is
        Path(temp).chmod(0o644)  # served files must be world-readable; mkstemp makes them 0600
        Path(temp).replace(path)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise


def _fsync_folder(folder: Path) -> None:
    """Make the renames in ``folder`` durable (where the platform can)."""
    with contextlib.suppress(OSError):
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


@contextlib.contextmanager
def _signals_deferred() -> Iterator[None]:
    """Hold SIGINT, SIGTERM and SIGHUP back until the block ends, then deliver them.

    Python handlers run only in the main thread, so only there can they be swapped; in another
    thread the block runs as is.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    caught: list[int] = []

    def hold(number: int, frame: FrameType | None) -> None:
        caught.append(number)

    previous = {number: signal.signal(number, hold) for number in _DEFERRED}
    try:
        yield
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler if handler is not None else signal.SIG_DFL)
        for number in dict.fromkeys(caught):
            signal.raise_signal(number)


def finish_interrupted(out_dir: Path) -> bool:
    """Move a committed pair left in ``out_dir/.publish-pending`` into place; ``True`` if any.

    Signature first, list last, one right after the other with signals held back.

    Raises:
        PublishError: the pair cannot be moved into place.
    """
    pending = out_dir / PENDING_NAME
    if pending.is_symlink() or not pending.is_dir():
        return False
    try:
        with _signals_deferred():
            for name in (SIGNATURE_NAME, LIST_NAME):
                if (pending / name).is_file():
                    (pending / name).replace(out_dir / name)
            _fsync_folder(out_dir)
            pending.rmdir()
    except OSError as exc:
        raise PublishError(
            f"cannot move the signed list waiting in {pending} into place: {exc}",
            hint=f"move {LIST_NAME} and {SIGNATURE_NAME} from there into {out_dir} by hand",
        ) from exc
    return True


def _commit_pair(out_dir: Path, data: bytes, signature: bytes) -> None:
    """Write the list and its signature so that both or neither take effect (see above)."""
    staging = Path(tempfile.mkdtemp(dir=out_dir, prefix=".publish-"))
    try:
        _write_atomically(staging / SIGNATURE_NAME, signature)
        _write_atomically(staging / LIST_NAME, data)
        staging.chmod(0o755)
        _fsync_folder(staging)
        staging.rename(out_dir / PENDING_NAME)  # the commit point
    except OSError as exc:
        shutil.rmtree(staging, ignore_errors=True)
        raise PublishError(
            f"cannot write the list into {out_dir}: {exc}; the list served there is unchanged"
        ) from exc
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    _fsync_folder(out_dir)
    finish_interrupted(out_dir)


def _write_index(out_dir: Path, pages: Mapping[str, str]) -> None:
    """Build ``simple/`` beside the old one, then swap, so no page is ever half-written."""
    staging = Path(tempfile.mkdtemp(dir=out_dir, prefix=".simple-"))
    try:
        for relative, text in pages.items():
            target = staging / relative
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(text, encoding="utf-8")
        for folder in [staging, *(p for p in staging.rglob("*") if p.is_dir())]:
            folder.chmod(0o755)
        old = out_dir / "simple"
        retired = out_dir / ".simple-retired"
        if retired.exists():
            shutil.rmtree(retired)
        if old.exists():
            old.rename(retired)
        staging.rename(old)
        shutil.rmtree(retired, ignore_errors=True)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def publish(
    wheel_dir: Path,
    out_dir: Path,
    *,
    fingerprint: str,
    now: datetime,
    expires_in: timedelta,
    max_validity_days: int,
    serial: int | None = None,
    served: Served | None = None,
    gnupghome: Path | None = None,
    check_names: Callable[[Iterable[str]], list[Rejection]] | None = None,
    log: Callable[[str], None] | None = None,
) -> Published:
    """Hash ``wheel_dir``, then write and sign the list and the index in ``out_dir``.

    Nothing is written until every check has passed and the signature exists; a pair left by
    an interrupted publish is completed first. The serial is :func:`next_serial` of ``serial``
    (``--serial``), the list in ``out_dir`` and ``served`` (the list the site serves now, from
    :func:`read_served`). ``check_names`` judges the project names this list *adds* to both
    (the typosquat check); any rejection refuses. ``log`` sees the gpg command lines.

    Raises:
        PublishError: bad folder, serial not above the last, expiry beyond the maximum, a
            lookalike name, a name collision, or a key that cannot sign.
    """
    if expires_in > timedelta(days=max_validity_days):
        raise PublishError(
            f"--expires {expires_in.days}d is beyond max-validity-days ({max_validity_days})"
        )
    files = collect(wheel_dir)
    if out_dir.is_dir():
        finish_interrupted(out_dir)
    last, old_names = previous_serial(out_dir)
    if served is not None:
        old_names |= served.names
    chosen = next_serial(requested=serial, local=last, served=served, now=now)
    if check_names is not None:
        added = sorted({_project(f) for f in files} - old_names)
        problems = check_names(added)
        if problems:
            first = problems[0]
            raise PublishError(
                f"{first.subject}: {first.message}"
                + (f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""),
                hint="add the name to allow-names if it is genuinely what you mean to publish",
            )
    try:
        data = hashlist.serialise(
            {name: digest for name, (digest, _) in files.items()},
            serial=chosen,
            issued=now,
            expires=now + expires_in,
        )
    except ListFormatError as exc:
        # The line number is of a list that was never written; the filenames say enough.
        reason = str(exc).split(": ", 1)[1] if exc.line is not None else str(exc)
        raise PublishError(f"the wheels make an invalid list: {reason}") from None
    signature = gpg.sign(data, fingerprint=fingerprint, gnupghome=gnupghome, log=log)
    out_dir.mkdir(parents=True, exist_ok=True)
    for filename in files:
        source, target = wheel_dir / filename, out_dir / filename
        if source.resolve() != target.resolve():
            _write_atomically(target, source.read_bytes())
    _write_index(out_dir, render_index(files))
    _commit_pair(out_dir, data, signature)
    projects = {_project(name) for name in files}
    return Published(
        out_dir / LIST_NAME,
        out_dir / SIGNATURE_NAME,
        chosen,
        now,
        now + expires_in,
        len(files) - sum(_is_sdist(name) for name in files),
        len(projects),
        sum(_is_sdist(name) for name in files),
    )
