"""``install --target DIR``: merge what pip installed into a private staging folder into DIR.

pip's own ``--target`` handling works on whole top-level entries of DIR: with ``--upgrade`` it
deletes every entry that a wheel also ships (the user's ``bin/`` or ``tests/``), it keeps a
symlink where a package must go (and the install "succeeds" with the old code importable), and it
never removes an earlier version's files or ``.dist-info``. So safepip runs pip with ``--target``
into an empty staging folder *inside* DIR (same filesystem: every move is a rename, and nothing
collides there), and only once pip has succeeded merges it into DIR here:

1. For each distribution staged, every version of it already in DIR is removed: the files its
   ``RECORD`` names (files inside DIR only, never through a symlink, never a folder) and its
   ``.dist-info`` folder. A file no such ``RECORD`` names is never removed for being old.
2. Each staged entry is moved in: a folder whose place is free moves whole; one whose place is a
   real folder is merged into it entry by entry, so the user's own files there stay. A file or
   symlink standing where a vetted file or folder must go is replaced (a symlink is removed, never
   what it points to), with a warning, as pip warns. A real folder where a vetted *file* must go,
   or a module that would shadow a vetted one on import (a package folder ``x/`` beside a vetted
   ``x.py``, an extension ``x.*.so``), refuses the install with DIR unchanged: removing it would
   delete what no ``RECORD`` names, and keeping it would make ``import`` run unvetted code.

Every removal is a rename into a trash folder beside the staging folder and every step is
journalled: a failure or an interrupt part-way undoes the merge, and the trash is deleted only once
the merge is complete. :func:`plan` decides (pure, over a :class:`View` of DIR);
:func:`merge` inspects, applies and undoes.
"""

from __future__ import annotations

import contextlib
import csv
import io
import os
import posixpath
import shutil
import stat
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Final, Literal, Protocol

from packaging.utils import canonicalize_name

from safepip.errors import TargetError

__all__ = [
    "Installed",
    "Kind",
    "Merged",
    "Plan",
    "Replaced",
    "Staging",
    "View",
    "merge",
    "plan",
    "record_path",
    "staging",
]

#: What sits at a path, never following a symlink (``link``).
Kind = Literal["missing", "dir", "file", "link"]
#: A RECORD larger than this is not read (the largest real ones are a few MiB).
_MAX_RECORD_BYTES: Final = 64 * 1024 * 1024
_EXTENSION_SUFFIXES: Final = (".so", ".pyd")
_STAGING_PREFIX: Final = ".safepip-target-"


class View(Protocol):
    """DIR as the planner sees it: paths relative to DIR, symlinks never followed.

    ``kind`` is only asked for a path whose ancestors are all real folders.
    """

    def kind(self, path: PurePosixPath) -> Kind: ...

    def names(self, folder: PurePosixPath) -> frozenset[str]: ...


@dataclass(frozen=True)
class Installed:
    """A distribution already in DIR: its ``.dist-info`` folder, canonical name and RECORD paths.

    ``record`` is ``None`` when the folder has no readable ``RECORD``.
    """

    dist_info: str
    name: str
    record: tuple[str, ...] | None


@dataclass(frozen=True)
class Replaced:
    """An entry of DIR that no RECORD named, replaced because a vetted ``wanted`` goes there."""

    path: PurePosixPath
    was: Kind
    wanted: Literal["file", "dir"]


@dataclass(frozen=True)
class Plan:
    """What to do to DIR, in order: ``remove`` (into the trash), then ``move`` (from staging).

    ``move`` names staged paths that go to the same path in DIR (a folder moves whole);
    ``prune`` lists folders to remove at the end if they were left empty, deepest first;
    ``conflicts`` (if any) refuse the whole merge.
    """

    remove: tuple[PurePosixPath, ...]
    move: tuple[PurePosixPath, ...]
    prune: tuple[PurePosixPath, ...]
    replaced: tuple[Replaced, ...]
    old_versions: tuple[str, ...]
    unrecorded: tuple[str, ...]
    conflicts: tuple[str, ...]


def record_path(row: str) -> PurePosixPath | None:
    """Where in DIR the file of a ``RECORD`` path is, or ``None`` when it is not inside DIR.

    pip's ``--target`` installs into a temporary home, then moves the contents of its
    ``lib/python`` and of the home itself into DIR, but writes ``RECORD`` relative to
    ``lib/python``: a console script is ``../../bin/tool``. Exactly that climb maps to DIR; any
    other climb, an absolute path or a drive is outside DIR.
    """
    if not row or row.startswith(("/", "\\")) or ":" in row.split("/", 1)[0]:
        return None
    parts = posixpath.normpath(row).split("/")
    if parts[:2] == ["..", ".."]:
        parts = parts[2:]
    if not parts or any(part in ("", ".", "..") for part in parts):
        return None
    return PurePosixPath(*parts)


def _under(path: PurePosixPath, prefixes: set[PurePosixPath]) -> bool:
    return any(p in prefixes for p in (path, *path.parents))


@dataclass
class _Overlay:
    """The view after the removals planned so far, and those removals in order."""

    view: View
    removed: list[PurePosixPath] = field(default_factory=list)
    _gone: set[PurePosixPath] = field(default_factory=set)

    def remove(self, path: PurePosixPath) -> None:
        self.removed.append(path)
        self._gone.add(path)

    def kind(self, path: PurePosixPath) -> Kind:
        return "missing" if _under(path, self._gone) else self.view.kind(path)

    def real_folder_chain(self, path: PurePosixPath) -> bool:
        """Whether every ancestor of ``path`` inside DIR is a real folder."""
        return all(self.kind(parent) == "dir" for parent in reversed(path.parents[:-1]))

    def names(self, folder: PurePosixPath) -> frozenset[str]:
        return frozenset(n for n in self.view.names(folder) if not _under(folder / n, self._gone))


def plan(
    staged: Mapping[PurePosixPath, Literal["dir", "file"]],
    staged_names: frozenset[str],
    installed: Sequence[Installed],
    view: View,
) -> Plan:
    """Decide how to merge the ``staged`` tree (every path, relative) into DIR (pure).

    ``staged_names`` are the canonical names of the distributions staged; ``installed`` the
    distributions already in DIR.
    """
    overlay = _Overlay(view)
    old = [dist for dist in installed if dist.name in staged_names]
    prune = _remove_old_versions(old, overlay)
    move: list[PurePosixPath] = []
    replaced: list[Replaced] = []
    conflicts: list[str] = []
    children: dict[PurePosixPath, list[PurePosixPath]] = {}
    for path in staged:
        children.setdefault(path.parent, []).append(path)
    pending = list(children.get(PurePosixPath(), ()))
    while pending:
        path = pending.pop()
        wanted = staged[path]
        there = overlay.kind(path)
        if wanted == "dir" and there == "dir":
            pending.extend(children.get(path, ()))  # merge into the real folder
        elif there == "dir":
            conflicts.append(f"{path} is a folder where a vetted file must go")
        else:
            if there in ("file", "link"):
                replaced.append(Replaced(path, there, wanted))
                overlay.remove(path)
            move.append(path)
            conflicts.extend(_shadowing(path, staged, overlay))
    return Plan(
        remove=tuple(overlay.removed),
        move=tuple(sorted(move)),
        prune=tuple(sorted(prune, key=lambda p: (-len(p.parts), p))),
        replaced=tuple(sorted(replaced, key=lambda r: r.path)),
        old_versions=tuple(dist.dist_info for dist in old),
        unrecorded=tuple(dist.dist_info for dist in old if dist.record is None),
        conflicts=tuple(sorted(conflicts)),
    )


def _remove_old_versions(old: Sequence[Installed], overlay: _Overlay) -> set[PurePosixPath]:
    """Plan the removal of ``old``: its ``.dist-info`` and the files its RECORD names.

    Returns the folders that may be left empty.
    """
    prune: set[PurePosixPath] = set()
    for dist in old:
        folder = PurePosixPath(dist.dist_info)
        if overlay.kind(folder) != "missing":
            overlay.remove(folder)
        for row in dist.record or ():
            path = record_path(row)
            if path is None or overlay.kind(path) == "missing":
                continue
            if not overlay.real_folder_chain(path) or overlay.kind(path) == "dir":
                continue  # never through a symlink, never a folder
            overlay.remove(path)
            prune.update(path.parents[:-1])
    return prune


def _shadowing(
    path: PurePosixPath, staged: Mapping[PurePosixPath, Literal["dir", "file"]], overlay: _Overlay
) -> list[str]:
    """What in DIR would be imported instead of the vetted module ``path`` (``x.py``).

    Python's path finder prefers, in one folder, a package folder ``x/`` holding an
    ``__init__`` over an extension ``x.<suffix>.so`` over ``x.py``.
    """
    if staged[path] != "file" or path.suffix != ".py" or path.name == "__init__.py":
        return []
    folder, stem = path.parent, path.stem
    found: list[str] = []
    for name in sorted(overlay.names(folder)):
        other = folder / name
        if other in staged:
            continue
        if name == stem and overlay.kind(other) in ("dir", "link"):
            if any(n.startswith("__init__.") for n in overlay.names(other)):
                found.append(f"{other}/ is a package that would be imported instead of {path}")
        elif name.startswith(stem + ".") and name.endswith(_EXTENSION_SUFFIXES):
            found.append(f"{other} is an extension module imported instead of {path}")
    return found


# --- IO ---------------------------------------------------------------------------------------


class _Disk:
    """:class:`View` of a real folder, through ``lstat`` (symlinks are never followed)."""

    def __init__(self, root: Path, hidden: str) -> None:
        self.root = root
        self.hidden = hidden

    def kind(self, path: PurePosixPath) -> Kind:
        try:
            mode = os.lstat(self.root / path).st_mode
        except (FileNotFoundError, NotADirectoryError):
            return "missing"
        if stat.S_ISLNK(mode):
            return "link"
        return "dir" if stat.S_ISDIR(mode) else "file"

    def names(self, folder: PurePosixPath) -> frozenset[str]:
        if folder != PurePosixPath() and self.kind(folder) not in ("dir", "link"):
            return frozenset()
        try:
            found = frozenset(entry.name for entry in (self.root / folder).iterdir())
        except OSError:
            return frozenset()
        return found - {self.hidden} if folder == PurePosixPath() else found


@dataclass
class Staging:
    """The private folder inside DIR: pip installs into ``pip_dir``; the trash sits beside it."""

    target: Path
    root: Path
    keep: bool = False

    @property
    def pip_dir(self) -> Path:
        return self.root / "pip"

    @property
    def trash(self) -> Path:
        return self.root / "trash"


@dataclass(frozen=True)
class Merged:
    """What :func:`merge` did, for the user: warnings and the earlier versions it removed
    (``.dist-info`` folder names; a reinstalled version is not one)."""

    warnings: tuple[str, ...]
    old_versions: tuple[str, ...]


@contextlib.contextmanager
def staging(target: Path) -> Iterator[Staging]:
    """A fresh ``0700`` folder inside ``target`` (created if missing), removed on exit.

    A ``target`` this created is removed again if it is left empty (a failed install then leaves
    nothing behind). The folder is kept when a merge could not be undone (``Staging.keep``): it
    holds what the merge removed.

    Raises:
        TargetError: ``target`` is not a folder or cannot be written.
    """
    target = Path(target).absolute()
    created = not target.exists() and not target.is_symlink()
    try:
        target.mkdir(parents=True, exist_ok=True)
        root = Path(tempfile.mkdtemp(dir=target, prefix=_STAGING_PREFIX))
    except OSError as exc:
        raise TargetError(
            f"--target {target}: cannot create a staging folder there: {exc.strerror or exc}",
            hint="--target must name a folder you can write (it is created if missing)",
        ) from exc
    place = Staging(target, root)
    try:
        yield place
    finally:
        if not place.keep:
            shutil.rmtree(root, ignore_errors=True)
            if created:
                with contextlib.suppress(OSError):
                    target.rmdir()  # only if empty


def merge(place: Staging) -> Merged:
    """Merge ``place.pip_dir`` (what pip installed) into ``place.target``, as the module says.

    Raises:
        TargetError: a conflict (nothing changed), or a failure part-way (undone; if undoing
            failed too, the message names what is where and ``place.keep`` is set).
    """
    if not place.pip_dir.is_dir():
        return Merged((), ())  # pip had nothing to install
    staged = _staged_tree(place.pip_dir)
    names = frozenset(
        _dist_name(p.name)
        for p, kind in staged.items()
        if len(p.parts) == 1 and kind == "dir" and p.name.endswith(".dist-info")
    )
    disk = _Disk(place.target, place.root.name)
    decided = plan(staged, names, _installed(place.target, names, place.root.name), disk)
    if decided.conflicts:
        shown = "; ".join(decided.conflicts[:3])
        more = f" (and {len(decided.conflicts) - 3} more)" if len(decided.conflicts) > 3 else ""
        raise TargetError(
            f"cannot install into {place.target}: {shown}{more}; nothing was changed",
            hint="move that entry out of the target folder (no RECORD names it), then run again",
        )
    warnings = [_describe(place.target, r) for r in decided.replaced]
    warnings += [
        f"{place.target / d}: no readable RECORD; its files were left, the vetted ones replace "
        "those of the same name"
        for d in decided.unrecorded
    ]
    _apply(decided, place)
    # A reinstall of the same version replaces its .dist-info: not an earlier version.
    earlier = tuple(d for d in decided.old_versions if PurePosixPath(d) not in staged)
    return Merged(tuple(warnings), earlier)


def _describe(target: Path, replaced: Replaced) -> str:
    where = target / replaced.path
    if replaced.was == "link":
        try:
            points = f" to {where.readlink()}"
        except OSError:
            points = ""
        what = f"was a symlink{points}"
    else:
        what = "was a file that no earlier version's RECORD names"
    return f"{where}: {what}; replaced by the vetted {replaced.wanted}"


def _staged_tree(root: Path) -> dict[PurePosixPath, Literal["dir", "file"]]:
    """Every path under ``root`` (relative): folders as ``dir``, anything else as ``file``."""
    found: dict[PurePosixPath, Literal["dir", "file"]] = {}
    folders = [PurePosixPath()]
    while folders:
        folder = folders.pop()
        with os.scandir(root / folder) as entries:
            for entry in entries:
                path = folder / entry.name
                if entry.is_dir(follow_symlinks=False):
                    found[path] = "dir"
                    folders.append(path)
                else:
                    found[path] = "file"
    return found


def _installed(target: Path, names: frozenset[str], hidden: str) -> list[Installed]:
    """The distributions in ``target`` named ``names``, with their RECORD paths."""
    found: list[Installed] = []
    for entry in sorted(p.name for p in target.iterdir()):
        if entry == hidden or not entry.endswith(".dist-info"):
            continue
        name = _dist_name(entry)
        if name in names:
            found.append(Installed(entry, name, _record(target / entry / "RECORD")))
    return found


def _dist_name(dist_info: str) -> str:
    """The canonical project name of a ``<name>-<version>.dist-info`` folder name."""
    return canonicalize_name(dist_info.removesuffix(".dist-info").rpartition("-")[0])


def _record(path: Path) -> tuple[str, ...] | None:
    """The paths (first column) of a RECORD, read only from a real folder and a regular file."""
    try:
        if path.parent.is_symlink():
            return None
        info = os.lstat(path)
        if not stat.S_ISREG(info.st_mode) or info.st_size > _MAX_RECORD_BYTES:
            return None
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return None
    try:
        return tuple(row[0] for row in csv.reader(io.StringIO(text)) if row)
    except csv.Error:
        return None


def _apply(decided: Plan, place: Staging) -> None:
    """Carry ``decided`` out, journalled; undo it all on any failure or interrupt."""
    target, trash = place.target, place.trash
    trash.mkdir()
    journal: list[tuple[Path, Path]] = []  # (from, to) of each rename done
    try:
        for number, path in enumerate(decided.remove):
            _rename(target / path, trash / str(number), journal)
        for path in decided.move:
            _rename(place.pip_dir / path, target / path, journal)
    except BaseException as exc:
        left = _undo(journal)
        if left:
            place.keep = True
            raise TargetError(
                f"merging into {target} failed ({_reason(exc)}) and could not be undone: "
                f"{target} is half-merged; {len(left)} entr(ies) are still in {place.root}, "
                f"first {left[0]}",
                hint=f"move them back by hand (see {trash}), or reinstall into a new folder",
            ) from exc
        if isinstance(exc, OSError):
            raise TargetError(
                f"merging into {target} failed: {_reason(exc)}; it was restored as it was"
            ) from exc
        raise
    for folder in decided.prune:
        with contextlib.suppress(OSError):
            (target / folder).rmdir()  # only if the removals left it empty


def _rename(source: Path, destination: Path, journal: list[tuple[Path, Path]]) -> None:
    source.rename(destination)
    journal.append((source, destination))


def _undo(journal: list[tuple[Path, Path]]) -> list[str]:
    """Rename back, newest first; return what could not be put back."""
    left: list[str] = []
    for source, destination in reversed(journal):
        try:
            destination.rename(source)
        except OSError:
            left.append(f"{destination} (belongs at {source})")
    return left


def _reason(exc: BaseException) -> str:
    if isinstance(exc, OSError):
        return f"{exc.filename}: {exc.strerror}" if exc.filename else str(exc)
    return type(exc).__name__
