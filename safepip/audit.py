"""Installed distributions x the list x vetted wheel contents → findings (pure).

The IO lives in :mod:`safepip.installed` (reading ``.dist-info`` folders, hashing installed
files, reading a vetted wheel's manifest); this module only decides. What is expected comes from
the **vetted wheel itself** (its members, hashed by its own ``RECORD``, which is inside bytes the
list vouches for, or by the member's bytes where that ``RECORD`` gives no hash): never from the
installed ``RECORD``, which whoever edits an installed file can edit too. The installed
``RECORD`` only says which *extra* files the distribution claims (``unknown-file``).

Codes (DESIGN.md §4):

- ``not-in-list``: no wheel of that name and version is on the list;
- ``missing-file``: a file the wheel installs is not there;
- ``modified``: a file the wheel installs has other bytes (or is not a regular file), or a
  console script pip generated from the wheel's ``entry_points.txt`` is not pip's launcher for
  that entry point;
- ``unknown-file``: the installed ``RECORD`` names a file the wheel does not hold and that pip
  does not generate.

What pip generates and is therefore not unknown: the ``.dist-info`` folder's ``RECORD``,
``INSTALLER`` and ``REQUESTED``; the console and GUI scripts of ``entry_points.txt`` (judged
against pip's launcher template, with any interpreter line); and the ``.pyc`` files that pip or
safepip's byte-compilation wrote for the wheel's own ``.py`` files (a row
``<dir>/__pycache__/<stem>.<tag>[.opt-N].pyc`` whose ``<dir>/<stem>.py`` the wheel installs).
Those ``.pyc`` files are accepted by name only, their bytes are not judged: a ``.pyc`` is
derived from its source by the target interpreter, and judging its bytes means compiling every
source again (seconds for a large environment). README says so.
"""

from __future__ import annotations

import posixpath
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Final, Literal

from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion, Version

from safepip.hashlist import Entry, HashList

Code = Literal["not-in-list", "modified", "missing-file", "unknown-file"]

#: Files pip writes into every ``.dist-info`` folder it installs.
_PIP_WRITES: Final = frozenset({"RECORD", "INSTALLER", "REQUESTED", "direct_url.json"})
#: A compiled file's name: ``stem.<cache tag>[.opt-N].pyc``.
_PYC: Final = re.compile(r"(?P<stem>[^/.]+)\.[A-Za-z0-9_-]+(\.opt-[12])?\.pyc")


@dataclass(frozen=True)
class Finding:
    """One problem with one installed distribution (``path`` absolute, or ``None``)."""

    code: Code
    name: str
    version: str
    path: str | None
    message: str

    def to_json(self) -> dict[str, str | None]:
        return {
            "code": self.code,
            "name": self.name,
            "version": self.version,
            "path": self.path,
            "message": self.message,
        }

    def line(self) -> str:
        where = f" {self.path}" if self.path else ""
        return f"{self.name} {self.version}: {self.code}:{where} {self.message}".rstrip()


@dataclass(frozen=True)
class InstalledFile:
    """A file on disk, as :mod:`safepip.installed` found it (``sha256`` ``None``: missing;
    ``""``: not a regular file). ``tail_sha256`` hashes what follows the first line, and
    ``text`` is the content of a small file in the scripts folder: what judges a script whose
    interpreter line pip rewrote."""

    sha256: str | None
    tail_sha256: str | None = None
    text: bytes | None = None


@dataclass(frozen=True)
class Distribution:
    """An installed distribution: its ``.dist-info`` folder ``dist_info`` in ``site``, and the
    absolute paths its installed ``RECORD`` names (``recorded``)."""

    name: str  # canonical
    version: str
    site: str
    dist_info: str
    tags: frozenset[str] = frozenset()
    recorded: tuple[str, ...] = ()
    problem: str | None = None  # its METADATA or RECORD cannot be read
    egg: bool = False  # an ``.egg-info`` folder: installed by something else than a wheel


@dataclass(frozen=True)
class Expected:
    """What the wheel installs at one place: the member's sha256, and, for a script whose
    interpreter line pip rewrites (``#!python``), the sha256 of what follows that line."""

    sha256: str
    tail_sha256: str | None = None


@dataclass(frozen=True)
class Manifest:
    """A vetted wheel as data: its ``.dist-info`` folder, members (path → :class:`Expected`)
    and entry points (``(script name, module, object)``)."""

    dist_info: str
    members: Mapping[str, Expected]
    scripts: tuple[tuple[str, str, str], ...] = ()


@dataclass(frozen=True)
class Folders:
    """Where pip puts a wheel's parts: ``None`` for a folder not audited (``--path DIR``)."""

    purelib: str
    platlib: str
    scripts: str | None
    data: str | None

    def inside(self) -> tuple[str, ...]:
        """The folders an installed file may be judged in."""
        found = [self.purelib, self.platlib, self.scripts, self.data]
        return tuple(f for f in found if f is not None)


@dataclass(frozen=True)
class Plan:
    """Installed distributions matched to listed wheels: ``pairs`` to judge against their
    wheel (several candidates when the list has more than one wheel of that version and the
    installed ``WHEEL`` tags do not single one out), and the ``not-in-list`` findings."""

    pairs: tuple[tuple[Distribution, tuple[Entry, ...]], ...]
    findings: tuple[Finding, ...] = field(default=())


def match(distributions: Sequence[Distribution], listed: HashList) -> Plan:
    """Pair each installed distribution with the listed wheels of its name and version."""
    pairs: list[tuple[Distribution, tuple[Entry, ...]]] = []
    findings: list[Finding] = []
    for dist in distributions:
        if dist.egg:
            findings.append(
                Finding(
                    "not-in-list",
                    dist.name,
                    dist.version,
                    posixpath.join(dist.site, dist.dist_info),
                    "installed as .egg-info, not from a wheel: nothing on the list vouches for it",
                )
            )
            continue
        if dist.problem is not None:
            findings.append(Finding("modified", dist.name, dist.version, None, dist.problem))
            continue
        wheels = tuple(
            e
            for e in listed.for_project(dist.name)
            if e.kind == "wheel" and same_version(e.version, dist.version)
        )
        if not wheels:
            findings.append(
                Finding(
                    "not-in-list",
                    dist.name,
                    dist.version,
                    None,
                    f"no wheel of {dist.name} {dist.version} is on the list",
                )
            )
            continue
        tagged = tuple(e for e in wheels if _tags(e.filename) == dist.tags)
        pairs.append((dist, tagged or wheels))
    return Plan(tuple(pairs), tuple(findings))


def judge(
    dist: Distribution,
    manifest: Manifest,
    files: Mapping[str, InstalledFile],
    folders: Folders,
) -> list[Finding]:
    """Every finding for ``dist`` against the vetted wheel ``manifest``.

    ``files`` maps absolute paths (the expected ones and those in ``dist.recorded``) to what is
    on disk.
    """
    roots = (*folders.inside(), dist.site)
    expected = expected_paths(manifest, dist.site, folders) | {
        path: want
        for path, want in header_paths(manifest, dist).items()
        if folders.scripts is not None or _under(path, roots)  # --path DIR: DIR only
    }
    found: list[Finding] = []

    def add(code: Code, path: str | None, message: str) -> None:
        found.append(Finding(code, dist.name, dist.version, path, message))

    for path, want in sorted(expected.items()):
        have = files.get(path, InstalledFile(None))
        if have.sha256 is None:
            add("missing-file", path, "the vetted wheel installs this file; it is not there")
        elif have.sha256 == "":
            add("modified", path, "not a regular file (a symlink?)")
        elif have.sha256 != want.sha256 and not (
            want.tail_sha256 is not None and have.tail_sha256 == want.tail_sha256
        ):
            add("modified", path, "its bytes differ from the vetted wheel's")
    generated = _generated(manifest, dist.site, folders)
    for path, (module, obj) in sorted(generated.scripts.items()):
        have = files.get(path, InstalledFile(None))
        if have.sha256 is None:
            continue  # pip may not have written it (--target); nothing runs from a missing file
        if have.text is None or not is_launcher(have.text, module, obj):
            add("modified", path, f"not pip's launcher for the entry point {module}:{obj}")
    sources = {p for p in expected if p.endswith(".py")}
    for path in dist.recorded:
        if path in expected or path in generated.scripts or path in generated.files:
            continue
        if _compiled_from(path) in sources:
            continue
        if folders.scripts is None and not _under(path, roots):
            continue  # --path DIR: scripts and data pip put outside DIR are not looked at
        add("unknown-file", path, "in the installed RECORD, but not in the vetted wheel")
    return found


def expected_paths(manifest: Manifest, site: str, folders: Folders) -> dict[str, Expected]:
    """Absolute path → what the wheel installs there, mapped as pip maps members: a member
    ``<x>.data/<key>/<path>`` goes to the folder of scheme key ``key``, any other to ``site``
    (the folder that holds the ``.dist-info``). Members of a folder not audited, ``headers``
    members, and paths pip would refuse are left out."""
    keys = {
        "purelib": folders.purelib,
        "platlib": folders.platlib,
        "scripts": folders.scripts,
        "data": folders.data,
    }
    found: dict[str, Expected] = {}
    for member, want in manifest.members.items():
        top, _, rest = member.partition("/")
        if top.endswith(".data") and rest:
            key, _, relative = rest.partition("/")
            folder = keys.get(key)
            if folder is None or not relative:
                continue
        elif top == manifest.dist_info and rest in _PIP_WRITES:
            continue
        else:
            folder, relative = site, member
        normal = posixpath.normpath(relative)
        if normal.startswith(("/", "../")) or normal == "..":
            continue
        found[posixpath.join(folder, normal)] = want
    return found


def header_paths(manifest: Manifest, dist: Distribution) -> dict[str, Expected]:
    """The installed ``RECORD``'s paths of the wheel's ``<x>.data/headers`` members.

    pip puts headers in a folder named after the project as the requirement spelled it
    (``include/site/python3.11/<name>/``), which cannot be known afterwards; so a ``RECORD``
    row under an ``include`` folder ending with a header member's path is taken as that
    member, and judged by the member's hash. A header no row names is not looked for:
    nothing runs a header.
    """
    headers: dict[str, Expected] = {}
    for member, want in manifest.members.items():
        top, _, rest = member.partition("/")
        key, _, relative = rest.partition("/")
        if top.endswith(".data") and key == "headers" and relative:
            headers["/" + posixpath.normpath(relative)] = want
    if not headers:
        return {}
    found: dict[str, Expected] = {}
    for path in dist.recorded:
        if "/include/" not in path:
            continue
        for suffix, want in headers.items():
            if path.endswith(suffix):
                found[path] = want
    return found


@dataclass(frozen=True)
class _Generated:
    scripts: dict[str, tuple[str, str]]  # path → (module, object)
    files: frozenset[str]


def _generated(manifest: Manifest, site: str, folders: Folders) -> _Generated:
    scripts = (
        {posixpath.join(folders.scripts, n): (m, o) for n, m, o in manifest.scripts}
        if folders.scripts is not None
        else {}
    )
    files = frozenset(posixpath.join(site, manifest.dist_info, name) for name in _PIP_WRITES)
    return _Generated(scripts, files)


def is_launcher(text: bytes, module: str, obj: str) -> bool:
    """True when ``text`` is pip's (distlib's) console-script launcher for ``module:obj``, with
    any interpreter line (a ``#!`` line, or the ``/bin/sh`` trampoline used for long paths)."""
    head, dot, rest = obj.partition(".")
    call = f"{head}.{rest}" if dot else head
    pattern = (
        rb"(?:#![^\n]*\n|#!/bin/sh\n'''exec' [^\n]*\n' '''\n)"
        rb"(?:# -\*- coding: utf-8 -\*-\n)?"
        rb"import re\nimport sys\n"
        + b"from " + re.escape(module).encode() + b" import " + re.escape(head).encode() + b"\n"
        + rb"if __name__ == (['\"])__main__\1:\n"
        rb"    sys\.argv\[0\] = re\.sub\(r(['\"])\(-script\\\.pyw\|\\\.exe\)\?\$\2, \2\2, "
        rb"sys\.argv\[0\]\)\n"
        + b"    sys\\.exit\\(" + re.escape(call).encode() + b"\\(\\)\\)\n?"
    )  # fmt: skip
    return re.fullmatch(pattern, text) is not None


def _compiled_from(path: str) -> str | None:
    """``dir/stem.py`` for ``dir/__pycache__/stem.<tag>[.opt-N].pyc``, else ``None``."""
    folder, name = posixpath.split(path)
    parent, cache = posixpath.split(folder)
    match = _PYC.fullmatch(name)
    if cache != "__pycache__" or match is None:
        return None
    return posixpath.join(parent, match.group("stem") + ".py")


def _under(path: str, roots: Sequence[str]) -> bool:
    return any(path == root or path.startswith(root.rstrip("/") + "/") for root in roots)


def same_version(a: str, b: str) -> bool:
    try:
        return Version(a) == Version(b)
    except InvalidVersion:
        return a == b


def _tags(filename: str) -> frozenset[str]:
    from packaging.utils import parse_wheel_filename  # noqa: PLC0415

    return frozenset(str(t) for t in parse_wheel_filename(filename)[3])


def canonical(name: str) -> str:
    """The canonical form of a project name (for ``--exclude``)."""
    return canonicalize_name(name)
