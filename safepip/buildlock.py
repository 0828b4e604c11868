"""Write the hashed pool of build dependencies for a set of sdists (``build --lock-build-deps``).

The publisher's one step of trust on first use, the way ``pip-compile --generate-hashes`` is:
the index's wheels have no list yet, so each one is hashed as it is downloaded, and the pool
records those hashes. What runs before the pool exists is bounded all the same: each sdist is
checked against its pinned hash first, every wheel is hashed before pip installs it (pip
re-hashes it under ``--require-hashes``), and the one backend hook called,
``get_requires_for_build_wheel``, runs offline in the fixed environment, exactly as in a build.

Candidates are resolved in process (:mod:`safepip.resolve`) over the wheels the index offers for
this interpreter; a project's page is read only once some requirement names it, and a wheel is
downloaded only once the resolver looks at it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from packaging.utils import canonicalize_name

from safepip import build, resolve, sandbox
from safepip.errors import NotFoundError
from safepip.hashlist import Entry
from safepip.interpreter import TargetEnvironment, best_wheel

__all__ = ["lock"]


class _Index:
    """The index's wheels for this interpreter, read page by page, hashed on download.

    ``listed`` is a list whose projects are read from the index the first time the resolver
    asks for them, so a dependency's page is there before the resolver judges its parent (were
    it missing, resolvelib would walk back through every older version of the parent first).
    """

    def __init__(self, source: build.Source, folder: Path, target: TargetEnvironment) -> None:
        self._source = source
        self._folder = folder
        self._target = target
        self._urls: dict[str, str] = {}
        self.digests: dict[str, str] = {}
        self.listed = _Pages(self.entries)

    def entries(self, name: str) -> tuple[Entry, ...]:
        """The best-fitting wheel of each version of ``name`` the index offers."""
        by_version: dict[str, dict[str, str]] = {}
        try:
            offered_files = self._source.files(name)
        except NotFoundError:  # no such project: the resolver says what needed it
            offered_files = {}
        for filename, url in offered_files.items():
            found = build.wheel_of(filename)
            if found is not None and found[0] == name:
                by_version.setdefault(str(found[1]), {})[filename] = url
        entries = []
        for offered in by_version.values():
            best = best_wheel(sorted(offered), self._target)
            if best is not None:
                self._urls[best] = offered[best]
                # A placeholder: the resolver needs some hash; the pool gets the real one,
                # taken from the download (digest()).
                placeholder = hashlib.sha256(best.encode()).hexdigest()
                version = best.split("-")[1]
                entries.append(Entry(best, placeholder, name, version, "wheel", 0))
        return tuple(entries)

    def path(self, entry: Entry) -> Path:
        dest = self._folder / entry.filename
        if entry.filename not in self.digests:
            self.digests[entry.filename] = self._source.download(self._urls[entry.filename], dest)
        return dest

    def digest(self, entry: Entry) -> str:
        self.path(entry)
        return self.digests[entry.filename]


class _Pages:
    """A :class:`resolve.Catalog` whose projects are each read once, when first asked for."""

    def __init__(self, read: Callable[[str], tuple[Entry, ...]]) -> None:
        self._read = read
        self._read_already: dict[str, tuple[Entry, ...]] = {}

    def for_project(self, name: str) -> tuple[Entry, ...]:
        wanted = canonicalize_name(name)
        if wanted not in self._read_already:
            self._read_already[wanted] = self._read(wanted)
        return self._read_already[wanted]


def lock(
    sdists: Sequence[build.Wanted],
    source: build.Source,
    *,
    work_dir: Path,
    target: TargetEnvironment,
    environ: Mapping[str, str],
    progress: Callable[[str], None],
    log: Callable[[str], None] | None = None,
) -> tuple[str, int]:
    """The pool file's text for ``sdists`` and its number of lines.

    Raises:
        PolicyError: an sdist's hash does not match, or the index cannot satisfy a build.
        BuildError: extraction, pip or the backend's ``get_requires_for_build_wheel`` failed.
        FetchError: a transfer failed.
    """
    (work_dir / "sdists").mkdir()
    (work_dir / "wheels").mkdir()
    index = _Index(source, work_dir / "wheels", target)
    chosen: dict[str, Entry] = {}

    def choose(needs: Sequence[resolve.Need], origin: str) -> tuple[Entry, ...]:
        found = build.choose_from(index.listed, index.path, needs, origin, target)
        chosen.update((e.filename, e) for e in found)
        return found

    context = build.Context(
        choose, index.path, index.digest, work_dir / "wheels", target, sandbox.isolation(),
        environ, log,
    )  # fmt: skip
    progress(f"get_requires_for_build_wheel runs offline: {context.isolation.description}")
    for number, line in enumerate(sdists, 1):
        archive, _ = build.fetch_sdist(source, line, work_dir / "sdists")
        progress(f"[{number}/{len(sdists)}] {archive.name}: sha256 checked, reading requirements")
        root = work_dir / f"{number}"
        root.mkdir()
        _, system, _, _, dynamic = build.requirements_of(archive, line, root, context)
        if dynamic:
            origin = f"{archive.name} [build-system] + get_requires_for_build_wheel"
            choose(build.needs_of((*system.requires, *dynamic), origin, target), origin)
    lines = [
        "# generated by safepip build --lock-build-deps: build dependencies, hashed as "
        "downloaded from the index"
    ]
    for entry in sorted(chosen.values(), key=lambda e: (e.name, e.version)):
        lines.append(f"{entry.name}=={entry.version} --hash=sha256:{index.digests[entry.filename]}")
    return "\n".join(lines) + "\n", len(chosen)
