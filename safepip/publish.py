"""The publisher: hash a wheel folder, write and sign the list, build a static PEP 503 index.

The output folder is what a plain static web server (or ``file://``) serves::

    DIR/sha256sums.txt        the list (format 1)
    DIR/sha256sums.txt.asc    its detached signature
    DIR/<wheel files>         the wheels themselves
    DIR/simple/index.html     the PEP 503 root page
    DIR/simple/<name>/index.html   one page a project, links carrying #sha256=
"""

from __future__ import annotations

import hashlib
import html
import os
import re
import shutil
import tempfile
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Final
from urllib.parse import quote

from packaging.utils import canonicalize_name

from safepip import gpg, hashlist
from safepip.errors import ListFormatError, PublishError
from safepip.policy import Rejection
from safepip.wheel import WheelError, read_metadata

LIST_NAME: Final = "sha256sums.txt"
SIGNATURE_NAME: Final = "sha256sums.txt.asc"
_DURATION_RE: Final = re.compile(r"([1-9][0-9]*)([dh])")


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


def parse_duration(text: str) -> timedelta:
    """``30d`` or ``12h`` as a timedelta.

    Raises:
        PublishError: anything else.
    """
    match = _DURATION_RE.fullmatch(text.strip())
    if match is None:
        raise PublishError(f"--expires {text!r}: expected a duration like 30d or 12h")
    number = int(match[1])
    return timedelta(days=number) if match[2] == "d" else timedelta(hours=number)


def collect(wheel_dir: Path) -> dict[str, tuple[str, str | None]]:
    """``filename → (sha256, Requires-Python)`` for every wheel in ``wheel_dir``.

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
        if not path.name.endswith(".whl"):
            raise PublishError(
                f"{path}: not a wheel", hint="safepip publishes wheels only; move other files out"
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
        found[path.name] = (_sha256_file(path), metadata.requires_python)
    if not found:
        raise PublishError(f"{wheel_dir} holds no wheels")
    return found


def _sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1024 * 1024), b""):
            digest.update(block)
    return digest.hexdigest()


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
        Path(temp).chmod(0o644)  # served files must be world-readable; mkstemp makes them 0600
        Path(temp).replace(path)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise


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
    gnupghome: Path | None = None,
    check_names: Callable[[Iterable[str]], list[Rejection]] | None = None,
    log: Callable[[str], None] | None = None,
) -> Published:
    """Hash ``wheel_dir``, then write and sign the list and the index in ``out_dir``.

    Nothing is written until every check has passed and the signature exists. ``check_names``
    judges the project names this list *adds* (the typosquat check); any rejection refuses.
    ``log`` sees the gpg command lines.

    Raises:
        PublishError: bad folder, serial not above the last, expiry beyond the maximum, a
            lookalike name, a name collision, or a key that cannot sign.
    """
    if expires_in > timedelta(days=max_validity_days):
        raise PublishError(
            f"--expires {expires_in.days}d is beyond max-validity-days ({max_validity_days})"
        )
    files = collect(wheel_dir)
    last, old_names = previous_serial(out_dir)
    next_serial = last + 1 if serial is None else serial
    if next_serial <= last:
        raise PublishError(
            f"serial {next_serial} is not above the last published serial {last}",
            hint="clients refuse a serial they have seen before: use a higher --serial",
        )
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
            serial=next_serial,
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
    _write_atomically(out_dir / SIGNATURE_NAME, signature)
    _write_atomically(out_dir / LIST_NAME, data)
    projects = {_project(name) for name in files}
    return Published(
        out_dir / LIST_NAME,
        out_dir / SIGNATURE_NAME,
        next_serial,
        now,
        now + expires_in,
        len(files),
        len(projects),
    )
