"""What is installed in an environment, read without running any of its code.

- :func:`environment` asks the target interpreter for its folders as ``python -I -S`` (no
  ``site``: no ``.pth`` file or ``sitecustomize`` of the environment runs), computing a venv's
  folders from its ``pyvenv.cfg`` as ``site`` would; :func:`folder` audits a bare folder.
- :func:`distributions` reads every ``*.dist-info`` there: METADATA's name and version, WHEEL's
  tags, and the paths its RECORD names (opened as regular files only).
- :func:`manifest` reads a vetted wheel's members and their hashes (from the wheel's own
  RECORD, else from the member's bytes) and its entry points.
- :func:`inspect` hashes installed files (never following a symlink at the file itself).
- :func:`differing` is the install step's "installed means vetted" check built on those and on
  :func:`safepip.audit.judge`.

The decisions are :mod:`safepip.audit`'s.
"""

from __future__ import annotations

import base64
import binascii
import configparser
import csv
import hashlib
import io
import json
import os
import posixpath
import stat
import zipfile
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from email.parser import HeaderParser
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO, Final

from packaging.utils import canonicalize_name

from safepip import audit, process
from safepip.audit import Distribution, Expected, Folders, InstalledFile, Manifest
from safepip.bytecode import Layout
from safepip.errors import UsageError
from safepip.hashlist import Entry

if TYPE_CHECKING:
    from safepip.cache import WheelCache
from safepip.pip import scrubbed_environment

_CHUNK: Final = 1024 * 1024
#: A METADATA, WHEEL, RECORD or entry_points.txt larger than this is hostile or broken.
_MAX_TEXT: Final = 16 * 1024 * 1024
#: Scripts smaller than this are read whole, to judge a generated launcher.
_MAX_SCRIPT: Final = 64 * 1024

#: Run as ``python -I -S -c``: stdlib only, Python 3.7 syntax. ``site`` is not imported, so a
#: venv's interpreter reports the base installation; its own folders come from its pyvenv.cfg,
#: as ``site.venv`` finds it (next to the interpreter or one folder up).
_LAYOUT: Final = """
import json, os, sys, sysconfig
here = os.path.dirname(os.path.abspath(sys.executable))
venv = next((d for d in (here, os.path.dirname(here))
             if os.path.isfile(os.path.join(d, "pyvenv.cfg"))), None)
names = sysconfig.get_scheme_names()
if venv is not None:
    scheme = "venv" if "venv" in names else ("nt" if os.name == "nt" else "posix_prefix")
    paths = sysconfig.get_paths(scheme, vars={"base": venv, "platbase": venv})
    sites = [paths["purelib"], paths["platlib"]]
    with open(os.path.join(venv, "pyvenv.cfg"), encoding="utf-8") as f:
        system = any(l.split("=", 1)[0].strip().lower() == "include-system-site-packages"
                     and l.split("=", 1)[1].strip().lower() == "true" for l in f if "=" in l)
    if system:
        base = sysconfig.get_paths()
        sites += [base["purelib"], base["platlib"]]
else:
    import site
    paths = sysconfig.get_paths()
    sites = [paths["purelib"], paths["platlib"]] + list(getattr(site, "getsitepackages", list)())
json.dump({"sites": sites, "purelib": paths["purelib"], "platlib": paths["platlib"],
           "scripts": paths["scripts"], "data": paths["data"]}, sys.stdout)
"""


@dataclass(frozen=True)
class Environment:
    """The folders to audit: ``sites`` (that may hold a ``.dist-info``, in search order) and
    where pip puts a wheel's parts (``folders``)."""

    sites: tuple[str, ...]
    folders: Folders


def environment(python: str, *, environ: Mapping[str, str]) -> Environment:
    """The folders of the interpreter ``python``, asked as ``python -I -S`` (nothing of the
    environment's own code runs).

    Raises:
        UsageError: ``python`` is not an interpreter that answers.
    """
    path = str(Path(python).absolute())
    try:
        finished = process.run([path, "-I", "-S", "-c", _LAYOUT], env=scrubbed_environment(environ))
    except OSError as exc:
        raise UsageError(
            f"--python {python}: cannot run it: {exc.strerror or exc}",
            hint="pass the path of a Python interpreter, for example .venv/bin/python",
        ) from exc
    try:
        if finished.returncode != 0:
            raise ValueError(finished.stderr.strip().splitlines()[-1:])
        answer = json.loads(finished.stdout)
        folders = Folders(
            _real(answer["purelib"]),
            _real(answer["platlib"]),
            _real(answer["scripts"]),
            _real(answer["data"]),
        )
        sites = tuple(dict.fromkeys(_real(s) for s in answer["sites"]))
    except (ValueError, KeyError, TypeError) as exc:
        raise UsageError(
            f"--python {python}: cannot learn its folders ({exc})",
            hint="pass the path of a Python interpreter, for example .venv/bin/python",
        ) from exc
    return Environment(sites, folders)


def folder(path: Path) -> Environment:
    """A bare folder (``--path DIR``, a ``--target`` folder): it holds the ``.dist-info``
    folders and the packages; scripts and data files, which pip puts elsewhere, are not
    audited.

    Raises:
        UsageError: ``path`` is not a folder.
    """
    if not path.is_dir():
        raise UsageError(f"--path {path}: not a folder", hint="name a site-packages folder")
    real = _real(str(path))
    return Environment((real,), Folders(real, real, None, None))


def distributions(sites: Iterable[str], *, exclude: Iterable[str] = ()) -> list[Distribution]:
    """Every ``*.dist-info`` folder in ``sites``, and every ``*.egg-info`` (installed other than
    from a wheel: ``egg`` set), but those whose canonical name is excluded.

    A folder whose METADATA or RECORD cannot be read is returned with ``problem`` set. A site
    that does not exist holds nothing (a user site never made, say).

    Raises:
        UsageError: a site exists but cannot be listed: skipping it would report its
            distributions as absent, and an audit of what could be read as clean.
    """
    skipped = {canonicalize_name(n) for n in exclude}
    found: list[Distribution] = []
    for site in sites:
        try:
            names = sorted(os.listdir(site))  # noqa: PTH208  (strings: paths are pip's)
        except (FileNotFoundError, NotADirectoryError):
            continue
        except OSError as exc:
            raise UsageError(
                f"cannot list {site}: {exc.strerror or exc}",
                hint="run safepip as a user who can read the environment",
            ) from exc
        for name in names:
            if name.endswith(".egg-info"):
                stem = name.removesuffix(".egg-info")
                project, _, version = stem.partition("-")
                version = version.split("-py", 1)[0]
                dist = Distribution(canonicalize_name(project), version, site, name, egg=True)
            elif name.endswith(".dist-info"):
                dist = _distribution(site, name)
            else:
                continue
            if dist.name not in skipped:
                found.append(dist)
    return found


def _distribution(site: str, name: str) -> Distribution:
    folder = posixpath.join(site, name)
    guess = canonicalize_name(name.removesuffix(".dist-info").rpartition("-")[0] or name)
    version = name.removesuffix(".dist-info").rpartition("-")[2]
    try:
        headers = HeaderParser().parsestr(_text(posixpath.join(folder, "METADATA")))
        meta_name, meta_version = headers.get("Name"), headers.get("Version")
        if not meta_name or not meta_version:
            raise ValueError("METADATA has no Name or Version")
        wheel = HeaderParser().parsestr(_text(posixpath.join(folder, "WHEEL")))
        tags = frozenset(t.strip() for t in wheel.get_all("Tag") or ())
        rows = csv.reader(io.StringIO(_text(posixpath.join(folder, "RECORD"))))
        recorded = tuple(
            dict.fromkeys(posixpath.normpath(posixpath.join(site, r[0])) for r in rows if r)
        )
    except (OSError, ValueError, csv.Error) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        return Distribution(guess, version, site, name, problem=f"{folder}: unreadable: {reason}")
    return Distribution(canonicalize_name(meta_name), meta_version, site, name, tags, recorded)


def manifest(wheel: BinaryIO | Path) -> Manifest:
    """The members of a vetted wheel and the sha256 of each, and its entry points.

    Hashes come from the wheel's own RECORD (inside the vetted bytes); a member that RECORD
    gives no hash for is hashed from its bytes. A ``.data/scripts`` member starting with
    ``#!python`` (pip rewrites that line) also gets the hash of what follows its first line.

    Raises:
        UsageError: not a readable wheel.
    """
    try:
        with zipfile.ZipFile(wheel) as archive:
            infos = [i for i in archive.infolist() if not i.filename.endswith("/")]
            folders = {i.filename.split("/", 1)[0] for i in infos if "/" in i.filename}
            dist_infos = sorted(f for f in folders if f.endswith(".dist-info"))
            if len(dist_infos) != 1:
                raise ValueError(f"expected one .dist-info folder, found {len(dist_infos)}")
            dist_info = dist_infos[0]
            names = {i.filename for i in infos}
            record_name = f"{dist_info}/RECORD"
            record = _read_member(archive, record_name) if record_name in names else b""
            hashes = _record_hashes(record.decode("utf-8"))
            members: dict[str, Expected] = {}
            for info in infos:
                top, _, rest = info.filename.partition("/")
                script = top.endswith(".data") and rest.startswith("scripts/")
                digest = hashes.get(info.filename)
                tail = None
                if digest is None or script:
                    data = _read_member(archive, info.filename, limit=None)
                    digest = digest or hashlib.sha256(data).hexdigest()
                    if script and data.startswith(b"#!python"):
                        tail = hashlib.sha256(data.partition(b"\n")[2]).hexdigest()
                members[info.filename] = Expected(digest, tail)
            points = f"{dist_info}/entry_points.txt"
            scripts = _entry_points(_read_member(archive, points)) if points in names else ()
    except (zipfile.BadZipFile, OSError, ValueError, UnicodeDecodeError) as exc:
        raise UsageError(f"a vetted wheel cannot be read: {exc}") from exc
    return Manifest(dist_info, members, scripts)


def inspect(paths: Iterable[str], *, scripts: str | None) -> dict[str, InstalledFile]:
    """What is on disk at each absolute path: its sha256 (never through a symlink at the file),
    and for a small file in the ``scripts`` folder its text and the hash after its first line."""
    found: dict[str, InstalledFile] = {}
    prefix = scripts.rstrip("/") + "/" if scripts else None
    for path in paths:
        flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
        try:
            fd = os.open(path, flags)
        except FileNotFoundError:
            found[path] = InstalledFile(None)
            continue
        except OSError:  # ELOOP: a symlink; EACCES: cannot be judged, so not vetted
            found[path] = InstalledFile("")
            continue
        with os.fdopen(fd, "rb") as handle:
            status = os.fstat(handle.fileno())
            if not stat.S_ISREG(status.st_mode):
                found[path] = InstalledFile("")
                continue
            if prefix is not None and path.startswith(prefix) and status.st_size <= _MAX_SCRIPT:
                text = handle.read(_MAX_SCRIPT + 1)
                tail = hashlib.sha256(text.partition(b"\n")[2]).hexdigest()
                found[path] = InstalledFile(hashlib.sha256(text).hexdigest(), tail, text)
                continue
            digest = hashlib.sha256()
            while chunk := handle.read(_CHUNK):
                digest.update(chunk)
            found[path] = InstalledFile(digest.hexdigest())
    return found


def judge_installed(dist: Distribution, wheel: Manifest, env: Environment) -> list[audit.Finding]:
    """Hash what ``dist`` has on disk and judge it against the vetted ``wheel``."""
    expected = audit.expected_paths(wheel, dist.site, env.folders)
    expected |= audit.header_paths(wheel, dist)
    scripts = env.folders.scripts
    extra = [posixpath.join(scripts, n) for n, _, _ in wheel.scripts] if scripts else []
    files = inspect([*expected, *extra], scripts=scripts)
    return audit.judge(dist, wheel, files, env.folders)


def cached_manifests(entries: Sequence[Entry], cache: WheelCache | None) -> dict[str, Manifest]:
    """``filename → manifest`` of each entry the cache holds, read from the very descriptor
    whose bytes were just re-hashed (a poisoned entry is removed and left out).

    Raises:
        FetchError: the cache is unsafe. UsageError: a cached wheel is not a readable wheel.
    """
    found: dict[str, Manifest] = {}
    if cache is None:
        return found
    for entry in entries:
        with cache.open_verified(entry.sha256) as handle:
            if handle is not None:
                found[entry.filename] = manifest(handle)
    return found


def judge_plan(
    plan: audit.Plan, manifests: Mapping[str, Manifest], env: Environment
) -> list[audit.Finding]:
    """The findings of every matched distribution, each judged against the listed wheel it
    matches best (fewest findings), on two threads (hashing and inflating release the GIL)."""

    def one(pair: tuple[Distribution, tuple[Entry, ...]]) -> list[audit.Finding]:
        dist, candidates = pair
        judged = [judge_installed(dist, manifests[e.filename], env) for e in candidates]
        return sorted(judged, key=len)[0]

    with ThreadPoolExecutor(max_workers=2, thread_name_prefix="safepip-audit") as pool:
        return [f for found in pool.map(one, plan.pairs) for f in found]


@dataclass(frozen=True)
class Differing:
    """The install step's check: ``kept`` wheels (filenames) whose distribution is installed
    byte-identical; ``reinstall`` maps each other installed one to its findings."""

    kept: frozenset[str]
    reinstall: Mapping[str, tuple[audit.Finding, ...]]


def differing(
    wheels: Sequence[tuple[str, str, Path]],
    layout: Layout,
    *,
    log: Callable[[str], None] | None = None,
) -> Differing:
    """Which of ``wheels`` (``(canonical name, version, vetted file)``) are already installed,
    byte-identical to the vetted file, where pip installs for ``layout`` (its ``purelib`` and
    ``platlib``; a ``--target`` layout is never checked: nothing is kept there).

    A distribution installed at another version, or not at all, is neither kept nor listed:
    pip installs it. Any finding (or an unreadable installation) means reinstall.

    Raises:
        UsageError: a vetted wheel cannot be read.
    """
    if layout.target:
        return Differing(frozenset(), {})
    folders = Folders(
        _real(layout.purelib),
        _real(layout.platlib),
        _real(layout.scripts) if layout.scripts else None,
        _real(layout.data) if layout.data else None,
    )
    sites = tuple(dict.fromkeys(_real(s) for s in layout.sites))
    env = Environment(sites, folders)
    targets = [s for s in sites if s in {folders.purelib, folders.platlib}]
    installed: dict[str, list[Distribution]] = {}
    for dist in distributions(targets):
        installed.setdefault(dist.name, []).append(dist)

    def one(wheel: tuple[str, str, Path]) -> tuple[str, list[audit.Finding]] | None:
        name, version, path = wheel
        same = [d for d in installed.get(name, []) if audit.same_version(d.version, version)]
        if not same:
            return None
        vetted = manifest(path)
        findings: list[audit.Finding] = []
        for dist in same:
            if dist.problem is not None:
                findings.append(audit.Finding("modified", name, version, None, dist.problem))
            else:
                findings += judge_installed(dist, vetted, env)
        return path.name, findings

    kept: set[str] = set()
    reinstall: dict[str, tuple[audit.Finding, ...]] = {}
    # Two threads: hashing and inflating release the GIL.
    with ThreadPoolExecutor(max_workers=2, thread_name_prefix="safepip-installed") as pool:
        for result in pool.map(one, wheels):
            if result is None:
                continue
            filename, findings = result
            if findings:
                reinstall[filename] = tuple(findings)
            else:
                kept.add(filename)
            if log is not None:
                log(f"{filename}: {'differs' if findings else 'installed and identical'}")
    return Differing(frozenset(kept), reinstall)


# --- reading -----------------------------------------------------------------------------------


def _text(path: str) -> str:
    """A small regular file's text (never through a symlink at the file)."""
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    with os.fdopen(fd, "rb") as handle:
        if not stat.S_ISREG(os.fstat(handle.fileno()).st_mode):
            raise ValueError(f"{path} is not a regular file")
        data = handle.read(_MAX_TEXT + 1)
    if len(data) > _MAX_TEXT:
        raise ValueError(f"{path} is larger than {_MAX_TEXT} bytes")
    return data.decode("utf-8")


def _read_member(archive: zipfile.ZipFile, name: str, *, limit: int | None = _MAX_TEXT) -> bytes:
    info = archive.getinfo(name)
    if limit is not None and info.file_size > limit:
        raise ValueError(f"{name} is larger than {limit} bytes")
    return archive.read(info)


def _record_hashes(text: str) -> dict[str, str]:
    """member → sha256 hex, from a wheel's RECORD (rows without a sha256 left out)."""
    found: dict[str, str] = {}
    for row in csv.reader(io.StringIO(text)):
        if len(row) < 2 or not row[1].startswith("sha256="):
            continue
        encoded = row[1].removeprefix("sha256=")
        try:
            raw = base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4))
        except (binascii.Error, ValueError):
            continue
        if len(raw) == 32:
            found[row[0]] = raw.hex()
    return found


def _entry_points(data: bytes) -> tuple[tuple[str, str, str], ...]:
    """(script name, module, object) of each console and GUI script, as pip reads them."""
    parser = configparser.ConfigParser(delimiters=("=",), interpolation=None)
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    try:
        parser.read_string(data.decode("utf-8"))
    except configparser.Error as exc:
        raise ValueError(f"entry_points.txt: {exc}") from exc
    found: list[tuple[str, str, str]] = []
    for section in ("console_scripts", "gui_scripts"):
        if not parser.has_section(section):
            continue
        for name, value in parser.items(section):
            target = value.split("[", 1)[0].strip()
            module, _, obj = target.partition(":")
            if module and obj:
                found.append((name.strip(), module.strip(), obj.strip()))
    return tuple(found)


def _real(path: str) -> str:
    """``path`` absolute, normalised, with symlinked folders resolved (``lib64`` → ``lib``)."""
    return os.path.realpath(path)
