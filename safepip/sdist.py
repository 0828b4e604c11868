"""A hash-checked sdist as a source tree: safe extraction, its build system, its epoch.

Extraction uses :mod:`tarfile`'s ``data`` filter (no absolute paths, no links out of the tree,
no device files, no setuid bits) and then drops the group and other write bits as well: some
real sdists ship world-writable files, and a mode that depends on the archive or on the umask of
whoever extracted it ends up in the wheel. Files get the archive's own mtimes, so the epoch
derived from them is the same on every machine.
"""

from __future__ import annotations

import os
import stat
import sys
import tarfile
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import InvalidSdistFilename, canonicalize_name, parse_sdist_filename

from safepip.errors import BuildError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

__all__ = [
    "LEGACY_BACKEND",
    "BuildSystem",
    "build_system",
    "extract",
    "source_date_epoch",
]

#: What pip and build assume when an sdist has no ``[build-system]`` table (PEP 517).
LEGACY_BACKEND: Final = "setuptools.build_meta:__legacy__"
_LEGACY_REQUIRES: Final = ("setuptools>=40.8.0",)
#: The zip format cannot store a time before 1980-01-01; wheel tools clamp to it.
_ZIP_EPOCH: Final = 315532800
#: A tree larger than this is refused while extracting (a decompression bomb, not a project).
MAX_TREE_BYTES: Final = 2 * 1024**3


@dataclass(frozen=True)
class BuildSystem:
    """``[build-system]`` of a source tree: ``requires`` lines, the backend object reference
    (``module:object``) and ``backend_path`` (folders inside the tree, PEP 517 in-tree
    backends)."""

    requires: tuple[Requirement, ...]
    backend: str
    backend_path: tuple[str, ...]
    declared: bool


def extract(archive: Path, dest: Path, *, name: str, version: str) -> Path:
    """Unpack the sdist ``archive`` into ``dest`` (an empty folder); return the source root.

    The root is the archive's single top-level folder (PEP 625: ``name-version``).

    Raises:
        BuildError: not a ``.tar.gz`` sdist of ``name`` ``version``, a member the ``data``
            filter refuses, more than one top-level folder, or a tree beyond the size cap.
    """
    try:
        parsed_name, parsed_version = parse_sdist_filename(archive.name)
    except InvalidSdistFilename:
        raise BuildError(
            f"{archive.name}: not an sdist filename (name-version.tar.gz)",
            hint="safepip builds .tar.gz sdists (PEP 625); ask upstream for one",
        ) from None
    if parsed_name != canonicalize_name(name) or str(parsed_version) != str(version):
        raise BuildError(f"{archive.name}: not an sdist of {name} {version}")
    if not archive.name.endswith(".tar.gz"):
        raise BuildError(
            f"{archive.name}: only .tar.gz sdists are built",
            hint="PEP 625 sdists are .tar.gz; ask upstream for one",
        )
    if not hasattr(tarfile, "data_filter"):
        raise BuildError(
            "this Python's tarfile has no extraction filters",
            hint="build with Python 3.10.12, 3.11.4 or newer (safe extraction needs them)",
        )
    try:
        with tarfile.open(archive, "r:gz") as tar:
            members = tar.getmembers()
            size = sum(m.size for m in members if m.isfile())
            if size > MAX_TREE_BYTES:
                raise BuildError(f"{archive.name}: unpacks to {size} bytes, beyond the cap")
            tops = {m.name.split("/", 1)[0] for m in members}
            if len(tops) != 1:
                raise BuildError(
                    f"{archive.name}: {len(tops)} top-level entries; an sdist has one folder"
                )
            tar.extractall(dest, filter="data")
    except (tarfile.TarError, OSError, EOFError) as exc:
        raise BuildError(f"{archive.name}: cannot unpack: {exc}") from exc
    _drop_shared_write(dest)
    root = dest / tops.pop()
    if not root.is_dir() or root.is_symlink():
        raise BuildError(f"{archive.name}: its top-level entry is not a folder")
    return root


def _drop_shared_write(tree: Path) -> None:
    """Clear group and other write bits everywhere under ``tree``."""
    for folder, dirs, files in os.walk(tree):
        for entry in (*dirs, *files):
            path = Path(folder, entry)
            mode = path.lstat().st_mode
            if not stat.S_ISLNK(mode) and mode & 0o022:
                path.chmod(stat.S_IMODE(mode) & ~0o022)


def source_date_epoch(archive: Path) -> int:
    """The newest member mtime of the sdist, at least 1980-01-01: ``SOURCE_DATE_EPOCH``.

    Derived from the hashed input alone, so a third party rebuilding the same sdist uses the
    same value (as Debian takes the changelog's date).

    Raises:
        BuildError: the archive cannot be read.
    """
    try:
        with tarfile.open(archive, "r:gz") as tar:
            newest = max((m.mtime for m in tar.getmembers()), default=0)
    except (tarfile.TarError, OSError, EOFError) as exc:
        raise BuildError(f"{archive.name}: cannot read: {exc}") from exc
    return max(int(newest), _ZIP_EPOCH)


def build_system(root: Path) -> BuildSystem:
    """The ``[build-system]`` table of the tree at ``root`` (PEP 517/518 defaults without one).

    Raises:
        BuildError: ``pyproject.toml`` is unreadable, or its table is malformed.
    """
    path = root / "pyproject.toml"
    if not path.is_file():
        return BuildSystem(_parse_requires(_LEGACY_REQUIRES, path), LEGACY_BACKEND, (), False)
    try:
        table = tomllib.loads(path.read_text(encoding="utf-8")).get("build-system")
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise BuildError(f"{path.name}: cannot read: {exc}") from exc
    if table is None:
        return BuildSystem(_parse_requires(_LEGACY_REQUIRES, path), LEGACY_BACKEND, (), False)
    if not isinstance(table, dict):
        raise BuildError(f"{path.name}: [build-system] is not a table")
    requires = table.get("requires", [])
    backend = table.get("build-backend", LEGACY_BACKEND)
    backend_path = table.get("backend-path", [])
    if not isinstance(requires, list) or not all(isinstance(r, str) for r in requires):
        raise BuildError(f"{path.name}: build-system.requires is not a list of strings")
    if not isinstance(backend, str) or not backend:
        raise BuildError(f"{path.name}: build-system.build-backend is not a string")
    if not isinstance(backend_path, list) or not all(
        isinstance(p, str) and _inside(root, p) for p in backend_path
    ):
        raise BuildError(f"{path.name}: build-system.backend-path must name folders in the tree")
    return BuildSystem(_parse_requires(requires, path), backend, tuple(backend_path), True)


def _inside(root: Path, relative: str) -> bool:
    resolved = (root / relative).resolve()
    return resolved == root.resolve() or root.resolve() in resolved.parents


def _parse_requires(lines: tuple[str, ...] | list[str], path: Path) -> tuple[Requirement, ...]:
    found = []
    for line in lines:
        try:
            found.append(Requirement(line))
        except InvalidRequirement as exc:
            raise BuildError(f"{path.name}: build requirement {line!r}: {exc}") from None
        if found[-1].url:
            raise BuildError(
                f"{path.name}: build requirement {line!r} is a direct reference",
                hint="a build dependency must come from the hashed pool, by name and version",
            )
    return tuple(found)
