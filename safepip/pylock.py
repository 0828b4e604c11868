"""PEP 751 lock files (``pylock.toml``): read as locked requirement lines, and written (pure).

A ``pylock.toml`` says, per package, its name, version and the files that may be installed with
their hashes. safepip reads each package as the locked line ``name==version`` whose hashes are
its wheels' sha256 (and its sdist's, which the list may name but which is never installed), so
``check`` and ``install -r`` judge it exactly as a hashed requirements file: every hash bound to
a listed file of that name and version. Locations are ``file:line`` of the package's
``[[packages]]`` table (or of its ``name =`` line).

Refused (data, code ``unsupported``): a package installed from a VCS, a directory or an archive
URL (a build of something no list vouches for), a package without a version. A file that is not
TOML, or whose ``lock-version`` is not 1.x, is a :class:`RequirementsError` (exit 2).
"""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import PurePath
from typing import Any, Final

from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name

from safepip.errors import RequirementsError
from safepip.policy import Rejection

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

#: PEP 751: ``pylock.toml`` or ``pylock.<name>.toml``.
_NAME_RE: Final = re.compile(r"pylock(?:\.[^.\\/]+)?\.toml")
_PACKAGES_RE: Final = re.compile(r"^\s*\[\[\s*packages\s*\]\]\s*(?:#.*)?$")


def is_pylock(path: PurePath) -> bool:
    """Whether ``path`` is named as PEP 751 names lock files."""
    return _NAME_RE.fullmatch(path.name) is not None


@dataclass(frozen=True)
class Locked:
    """One package of a lock file: ``requirement`` (``name==version`` with its marker), its
    sha256 hashes (wheels first, then the sdist), where it is (``file:line``), and the
    dependency groups its marker sees (the file's ``default-groups``)."""

    requirement: Requirement
    name: str
    hashes: tuple[str, ...]
    location: str
    groups: frozenset[str] = frozenset()


def parse(text: str, source: str) -> tuple[list[Locked], list[Rejection]]:
    """The packages of the lock file ``text`` named ``source``, and what is refused in it.

    Raises:
        RequirementsError: not TOML, not a PEP 751 lock file, or a package that is not a table
            with a valid name and version.
    """
    try:
        document = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise RequirementsError(
            f"{source}: not a TOML file: {exc}", hint="a pylock.toml is TOML (PEP 751)"
        ) from exc
    version = document.get("lock-version")
    if not isinstance(version, str) or not version.startswith("1."):
        raise RequirementsError(
            f"{source}: lock-version {version!r} is not 1.x",
            hint="safepip reads PEP 751 lock files of lock-version 1.0",
        )
    packages = document.get("packages", [])
    if not isinstance(packages, list):
        raise RequirementsError(f"{source}: `packages` is not an array of tables")
    defaults = document.get("default-groups", [])
    listed_groups = defaults if isinstance(defaults, list) else []
    groups = frozenset(g for g in listed_groups if isinstance(g, str))
    lines = _package_lines(text, packages)
    found: list[Locked] = []
    rejections: list[Rejection] = []
    for index, package in enumerate(packages):
        where = f"{source}:{lines[index]}"
        if not isinstance(package, dict) or not isinstance(package.get("name"), str):
            raise RequirementsError(f"{where}: a package without a name")
        name = canonicalize_name(package["name"])
        source_kind = next((k for k in ("vcs", "directory", "archive") if k in package), None)
        if source_kind is not None:
            rejections.append(
                Rejection(
                    "unsupported",
                    name,
                    f"installed from a {source_kind}: a build of what no list vouches for",
                    where,
                )
            )
            continue
        version = package.get("version")
        if not isinstance(version, str):
            rejections.append(Rejection("not-pinned", name, "the package has no version", where))
            continue
        marker = package.get("marker")
        text_requirement = f"{name}=={version}" + (
            f"; {marker}" if isinstance(marker, str) and marker else ""
        )
        try:
            requirement = Requirement(text_requirement)
        except InvalidRequirement as exc:
            raise RequirementsError(f"{where}: {exc}") from exc
        hashes = [*_hashes(package.get("wheels", []), where), *_hashes(package.get("sdist"), where)]
        found.append(Locked(requirement, name, tuple(hashes), where, groups))
    return found, rejections


def _hashes(files: object, where: str) -> list[str]:
    """The sha256 of each file table in ``files`` (one table or an array of them)."""
    tables = [files] if isinstance(files, dict) else files if isinstance(files, list) else []
    digests = []
    for table in tables:
        hashes = table.get("hashes") if isinstance(table, dict) else None
        digest = hashes.get("sha256") if isinstance(hashes, dict) else None
        if isinstance(digest, str) and re.fullmatch(r"[0-9a-fA-F]{64}", digest):
            digests.append(digest.lower())
        elif digest is not None:
            raise RequirementsError(f"{where}: a sha256 that is not 64 hex digits: {digest!r}")
    return digests


def _package_lines(text: str, packages: Sequence[Any]) -> list[int]:
    """The line number of each package: its ``[[packages]]`` header, else its ``name =`` line,
    else the line of ``packages``."""
    headers = [n for n, line in enumerate(text.splitlines(), 1) if _PACKAGES_RE.match(line)]
    if len(headers) == len(packages):
        return headers
    lines = text.splitlines()
    found = []
    start = 0
    for package in packages:
        name = package.get("name") if isinstance(package, dict) else None
        pattern = re.compile(rf"\bname\s*=\s*[\"']{re.escape(str(name))}[\"']")
        number = next((n for n in range(start, len(lines)) if pattern.search(lines[n])), None)
        if number is None:
            found.append(headers[0] if headers else 1)
        else:
            found.append(number + 1)
            start = number + 1
    return found


@dataclass(frozen=True)
class LockedFile:
    """A file of a locked package for :func:`render`: its name, URL and sha256."""

    filename: str
    url: str
    sha256: str


def render(
    packages: Mapping[tuple[str, str], Sequence[LockedFile]], *, created_by: str, comment: str
) -> str:
    """A PEP 751 ``pylock.toml`` for ``(name, version) → wheels``, sorted by name (pure)."""
    out = [f"# {comment}", 'lock-version = "1.0"', f"created-by = {_string(created_by)}", ""]
    for (name, version), files in sorted(packages.items()):
        out += ["[[packages]]", f"name = {_string(name)}", f"version = {_string(version)}"]
        out.append("wheels = [")
        for file in sorted(files, key=lambda f: f.filename):
            out.append(
                f"    {{ name = {_string(file.filename)}, url = {_string(file.url)}, "
                f"hashes = {{ sha256 = {_string(file.sha256)} }} }},"
            )
        out += ["]", ""]
    return "\n".join(out)


def _string(value: str) -> str:
    """A TOML basic string (JSON's escapes are TOML's for these characters)."""
    return json.dumps(value, ensure_ascii=True)
