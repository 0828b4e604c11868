"""Reproducible wheels from hash-pinned sdists (``safepip build``, DESIGN.md §4).

The order of a build is the order of trust: nothing runs before the bytes it comes from were
hash-checked.

1. Each sdist is fetched by URL (from ``--find-links`` or the index's project page) and its
   sha256 compared with the hashes of its line; never ``pip download``, which runs build hooks.
2. Each pool line's wheel for this interpreter is fetched the same way and hash-checked.
3. Per sdist and per build folder: extract safely (:mod:`safepip.sdist`), make a venv
   ``--without-pip`` (no ensurepip pip or setuptools, which are on no list), resolve
   ``build-system.requires`` over the pool's wheels in process (:mod:`safepip.resolve`, no pip
   resolver), and install the result with safepip's own pip from outside
   (``pip --python ENV --no-index --no-deps --require-hashes``: pip re-hashes every wheel, and no
   pip is left inside the environment). Only then does backend code run:
   ``get_requires_for_build_wheel``, whose answer is resolved and installed the same way, then
   ``build_wheel``, both offline and in a fixed environment (:mod:`safepip.sandbox`).
4. With ``check``, all of step 3 again in another folder; two wheels that differ are refused
   with the members that differ (:mod:`safepip.wheeldiff`).

pip runs outside the network namespace, but with ``--no-index`` on a folder of checked files
it has nothing to fetch.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import (
    InvalidSdistFilename,
    InvalidWheelFilename,
    canonicalize_name,
    parse_sdist_filename,
    parse_wheel_filename,
)
from packaging.version import Version

from safepip import fetch, hashlist, pip, process, resolve, sandbox, sdist, wheeldiff
from safepip.errors import BuildError, IrreproducibleError, PipError, PolicyError
from safepip.files import sha256_file
from safepip.hashlist import Entry, HashList
from safepip.interpreter import TargetEnvironment, best_wheel
from safepip.policy import Rejection
from safepip.requirements import RequirementLine
from safepip.wheel import WheelError, read_metadata

__all__ = [
    "Built",
    "Context",
    "Pool",
    "Source",
    "Unsatisfied",
    "Wanted",
    "build_all",
    "choose_from",
    "empty_list",
    "fetch_pool",
    "fetch_sdist",
    "needs_of",
    "pool_context",
    "requirements_of",
    "wanted",
    "wheel_of",
]

#: The most bytes one sdist or build-dependency wheel may have.
MAX_FILE_BYTES: Final = 512 * 1024**2
#: How long one backend hook may run.
HOOK_TIMEOUT: Final = 3600.0
_HOOK_SCRIPT: Final = Path(__file__).with_name("_hook_script.py")


@dataclass(frozen=True)
class Wanted:
    """One pinned, hashed line: canonical ``name``, exact ``version``, accepted ``hashes``."""

    name: str
    version: Version
    hashes: frozenset[str]
    location: str


@dataclass(frozen=True)
class Pool:
    """The hash-checked build-dependency wheels for this interpreter: their list and folder."""

    listed: HashList | resolve.Entries
    folder: Path

    def path(self, entry: Entry) -> Path:
        return self.folder / entry.filename


@dataclass(frozen=True)
class Built:
    """One built sdist: its file and hash, the wheel's, the backend, the time the first build
    took, and whether a second build matched (``None`` without ``check``)."""

    name: str
    version: str
    sdist: str
    sdist_sha256: str
    wheel: str
    wheel_sha256: str
    backend: str
    seconds: float
    identical: bool | None


def wanted(lines: Sequence[RequirementLine], what: str) -> list[Wanted]:
    """The pinned, hashed lines of an SDISTS or POOL file.

    Raises:
        PolicyError: a line is not pinned with ``==`` or has no ``--hash``.
    """
    found = []
    for line in lines:
        version = line.pinned_version
        if version is None:
            raise PolicyError(
                f"{line.location}: {line.requirement} is not pinned with ==",
                hint=f"every {what} line is name==version --hash=sha256:…",
            )
        if not line.hashes:
            raise PolicyError(
                f"{line.location}: {line.name}=={version} has no --hash",
                hint=f"every {what} line is name==version --hash=sha256:…",
            )
        found.append(Wanted(line.name, version, frozenset(line.hashes), line.location))
    return found


class Source:
    """Where files come from: a local ``--find-links`` folder, or a PEP 503 index.

    Only transport: every file is hash-checked against a pinned line after it arrives.
    """

    def __init__(
        self,
        *,
        find_links: Path | None,
        index_url: str | None,
        base_dir: Path,
        cafile: str | None,
        proxies: fetch.Proxies | None,
        timeout: float,
    ) -> None:
        self._find_links = find_links
        self._index_url = index_url
        self._base_dir = base_dir
        self._cafile = cafile
        self._proxies = proxies
        self._timeout = timeout
        self._pages: dict[str, dict[str, str]] = {}

    def files(self, name: str) -> dict[str, str]:
        """``filename → URL or path`` of what the source offers; the index's page for ``name``
        or every file of the find-links folder.

        Raises:
            FetchError: the page cannot be fetched.
        """
        if name not in self._pages:
            if self._find_links is not None:
                self._pages[name] = {
                    p.name: str(p.absolute())
                    for p in sorted(self._find_links.iterdir())
                    if p.is_file() and not p.is_symlink()
                }
            else:
                from safepip import sources  # noqa: PLC0415  (only for an index)

                if self._index_url is None:
                    raise ValueError("a Source needs find_links or index_url")
                page, links = sources.Links(
                    [sources.Source(self._index_url)],
                    base_dir=self._base_dir,
                    cafile=self._cafile,
                    proxies=self._proxies,
                    timeout=lambda: self._timeout,
                ).page(name)
                self._pages[name] = {
                    filename: fetch.join_url(page, href) for filename, href in links.items()
                }
        return self._pages[name]

    def download(self, url: str, dest: Path) -> str:
        """Copy ``url`` into the new file ``dest``; return its sha256.

        Raises:
            FetchError: the transfer failed.
        """
        return fetch.download(
            url,
            dest,
            max_bytes=MAX_FILE_BYTES,
            timeout=self._timeout,
            cafile=self._cafile,
            proxies=self._proxies,
        )


def fetch_sdist(source: Source, line: Wanted, folder: Path) -> tuple[Path, str]:
    """Download the ``.tar.gz`` sdist of ``line`` into ``folder`` and check its hash.

    Returns the file and its sha256.

    Raises:
        PolicyError: the source offers no such sdist, or other bytes than the line's hash.
        FetchError: the transfer failed.
    """
    offered = {
        filename: url
        for filename, url in source.files(line.name).items()
        if filename.endswith(".tar.gz") and _sdist_of(filename) == (line.name, line.version)
    }
    if not offered:
        raise PolicyError(
            f"{line.location}: no .tar.gz sdist of {line.name} {line.version} at the source",
            hint="check --find-links / --index-url, or the pinned version",
        )
    return _fetch_checked(source, offered, line, folder)


def _fetch_checked(
    source: Source, offered: Mapping[str, str], line: Wanted, folder: Path
) -> tuple[Path, str]:
    seen = []
    for filename, url in sorted(offered.items()):
        dest = folder / filename
        digest = source.download(url, dest)
        if digest in line.hashes:
            return dest, digest
        dest.unlink()
        seen.append(f"{filename} has sha256 {digest[:12]}…")
    raise PolicyError(
        f"{line.location}: hash-mismatch: {'; '.join(seen)}, which no --hash of "
        f"{line.name}=={line.version} names; the file was deleted and nothing of it ran",
        hint="the source serves other bytes than the ones pinned; do not build from it",
    )


def fetch_pool(
    source: Source, lines: Sequence[Wanted], folder: Path, target: TargetEnvironment
) -> Pool:
    """Download and hash-check, for every pool line, its wheel that fits ``target``.

    A line with no wheel for this interpreter is skipped (it may serve another platform).

    Raises:
        PolicyError: a downloaded wheel's hash is not among its line's.
        FetchError: a transfer failed.
    """
    files: dict[str, str] = {}
    for line in lines:
        offered = {
            filename: url
            for filename, url in source.files(line.name).items()
            if wheel_of(filename) == (line.name, line.version)
        }
        best = best_wheel(sorted(offered), target)
        if best is None:
            continue
        path, digest = _fetch_checked(source, {best: offered[best]}, line, folder)
        files[path.name] = digest
    text = "".join(f"{digest}  {filename}\n" for filename, digest in sorted(files.items()))
    if not files:
        return Pool(empty_list(), folder)
    return Pool(hashlist.parse(text.encode("ascii"), require_freshness=False), folder)


def empty_list() -> resolve.Entries:
    """A pool with no entries (the list parser refuses one: an empty list is an error there)."""
    return resolve.Entries()


def _sdist_of(filename: str) -> tuple[str, Version] | None:
    try:
        name, version = parse_sdist_filename(filename)
    except InvalidSdistFilename:
        return None
    return canonicalize_name(name), version


def wheel_of(filename: str) -> tuple[str, Version] | None:
    """(canonical name, version) of a wheel filename, else ``None``."""
    if not filename.endswith(".whl"):
        return None
    try:
        name, version, _, _ = parse_wheel_filename(filename)
    except InvalidWheelFilename:
        return None
    return canonicalize_name(name), version


# --- one build ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Context:
    """How builds get their dependencies: ``choose`` resolves needs to pool entries (raising
    :class:`PolicyError` when it cannot), ``path`` and ``digest`` give a chosen entry's
    hash-checked file and its sha256; ``folder`` holds those files for pip."""

    choose: Callable[[Sequence[resolve.Need], str], tuple[Entry, ...]]
    path: Callable[[Entry], Path]
    digest: Callable[[Entry], str]
    folder: Path
    target: TargetEnvironment
    isolation: sandbox.Isolation
    environ: Mapping[str, str]
    log: Callable[[str], None] | None


def pool_context(
    pool: Pool,
    target: TargetEnvironment,
    environ: Mapping[str, str],
    log: Callable[[str], None] | None,
) -> Context:
    """Builds that take their dependencies from ``pool`` alone."""

    def choose(needs: Sequence[resolve.Need], origin: str) -> tuple[Entry, ...]:
        return choose_from(pool.listed, pool.path, needs, origin, target)

    return Context(
        choose, pool.path, lambda e: e.sha256, pool.folder, target, sandbox.isolation(),
        environ, log,
    )  # fmt: skip


def choose_from(
    listed: resolve.Catalog,
    path: Callable[[Entry], Path],
    needs: Sequence[resolve.Need],
    origin: str,
    target: TargetEnvironment,
) -> tuple[Entry, ...]:
    """Resolve ``needs`` over the wheels of ``listed`` (METADATA read from ``path``).

    Raises:
        PolicyError: no choice of listed wheels meets every need.
    """
    try:
        resolution, rejections = resolve.resolve(
            needs,
            listed,
            target,
            metadata=lambda entry: read_metadata(path(entry)),
            prefetch=lambda _entries: None,
        )
    except (resolve.Refused, WheelError) as exc:
        raise PolicyError(f"{origin}: {exc}") from None
    if resolution is None:
        raise Unsatisfied(origin, rejections)
    return tuple(entry for entry, _ in resolution.chosen)


class Unsatisfied(PolicyError):
    """The pool (or index) has no wheels that meet the build requirements (exit 1)."""

    def __init__(self, origin: str, rejections: Sequence[Rejection]) -> None:
        why = "; ".join(r.message for r in rejections)
        super().__init__(
            f"{origin}: the pool cannot satisfy the build requirements: {why}",
            hint="add the missing build dependencies to the pool "
            "(`safepip build --lock-build-deps` writes one)",
        )
        self.rejections = tuple(rejections)


def requirements_of(
    archive: Path, line: Wanted, root: Path, context: Context
) -> tuple[Path, sdist.BuildSystem, dict[str, str], tuple[Entry, ...], tuple[Requirement, ...]]:
    """Extract ``archive`` under the empty folder ``root``, make its build environment with
    ``build-system.requires`` installed, and ask the backend for the rest.

    Returns the source tree, its build system, the build's environment variables, the entries
    installed and the requirements ``get_requires_for_build_wheel`` added.

    Raises:
        PolicyError: a build requirement has no fitting wheel.
        BuildError: the archive, the backend or pip failed.
    """
    for part in ("src", "home", "tmp", "out"):
        (root / part).mkdir()
    tree = sdist.extract(archive, root / "src", name=line.name, version=str(line.version))
    system = sdist.build_system(tree)
    venv = root / "env"
    _make_venv(venv)
    installed = _install(system.requires, (), f"{archive.name} [build-system]", venv, context)
    env = sandbox.environment(root, venv, epoch=sdist.source_date_epoch(archive))
    extra = _hook(
        "get_requires_for_build_wheel",
        system=system,
        tree=tree,
        root=root,
        env=env,
        context=context,
    )
    if not isinstance(extra, list) or not all(isinstance(r, str) for r in extra):
        raise BuildError(f"{archive.name}: get_requires_for_build_wheel did not return strings")
    dynamic = _requirements(extra, f"{archive.name} get_requires_for_build_wheel")
    return tree, system, env, installed, dynamic


def _build_once(archive: Path, line: Wanted, root: Path, context: Context) -> tuple[Path, str]:
    """Build ``archive`` under the empty folder ``root``; return the wheel and the backend.

    Raises:
        PolicyError: a build requirement has no fitting wheel in the pool.
        BuildError: the archive, the backend or pip failed.
    """
    tree, system, env, installed, dynamic = requirements_of(archive, line, root, context)
    if dynamic:
        origin = f"{archive.name} [build-system] + get_requires_for_build_wheel"
        _install((*system.requires, *dynamic), installed, origin, root / "env", context)
    name = _hook("build_wheel", system=system, tree=tree, root=root, env=env, context=context)
    wheel = root / "out" / str(name)
    if not isinstance(name, str) or "/" in name or not wheel.is_file():
        raise BuildError(f"{archive.name}: the backend named no wheel it wrote ({name!r})")
    _check_wheel(wheel, line)
    return wheel, system.backend


def _make_venv(venv: Path) -> None:
    # --without-pip: ensurepip would put a pip and setuptools on no list into the environment.
    argv = [sys.executable, "-I", "-m", "venv", "--without-pip", str(venv)]
    try:
        done = process.run(argv, env={"PATH": "/usr/bin:/bin"}, merge_stderr=True, timeout=300)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise BuildError(f"cannot make a build environment: {exc}") from exc
    if done.returncode != 0:
        raise BuildError(f"cannot make a build environment: {done.stdout.strip()[-300:]}")


def _requirements(lines: Sequence[str], origin: str) -> tuple[Requirement, ...]:
    found = []
    for text in lines:
        try:
            requirement = Requirement(text)
        except InvalidRequirement as exc:
            raise BuildError(f"{origin}: {text!r}: {exc}") from None
        if requirement.url:
            raise BuildError(
                f"{origin}: {text!r} is a direct reference",
                hint="a build dependency must come from the hashed pool, by name and version",
            )
        found.append(requirement)
    return tuple(found)


def needs_of(
    requirements: Sequence[Requirement], origin: str, target: TargetEnvironment
) -> list[resolve.Need]:
    """The needs of ``requirements`` whose marker holds for ``target`` (pure)."""
    needs = []
    for requirement in requirements:
        marker = requirement.marker
        if marker is None or marker.evaluate({**target.markers, "extra": ""}):
            needs.append(
                resolve.Need(
                    canonicalize_name(requirement.name),
                    requirement.specifier,
                    frozenset(canonicalize_name(e) for e in requirement.extras),
                    origin,
                )
            )
    return needs


def _install(
    requirements: Sequence[Requirement],
    installed: Sequence[Entry],
    origin: str,
    venv: Path,
    context: Context,
) -> tuple[Entry, ...]:
    """Resolve ``requirements`` over the pool and install what is not in ``installed``."""
    needs = needs_of(requirements, origin, context.target)
    if not needs:
        return tuple(installed)
    chosen = context.choose(needs, origin)
    for entry in chosen:
        context.path(entry)  # fetched and hash-checked before pip sees it
    new = [entry for entry in chosen if entry not in installed]
    if new:
        pinned = venv.parent / "tmp" / "build-requirements.txt"
        pinned.write_text(
            "".join(f"{e.name}=={e.version} --hash=sha256:{context.digest(e)}\n" for e in new),
            encoding="utf-8",
        )
        try:
            pip.install(
                context.folder,
                pinned,
                python_target=str(venv / "bin" / "python"),
                target_dir=None,
                environ=context.environ,
                log=context.log,
            )
        except PipError as exc:
            raise BuildError(f"{origin}: cannot install the build requirements: {exc}") from exc
        finally:
            pinned.unlink()
    return chosen


def _hook(
    hook: str,
    *,
    system: sdist.BuildSystem,
    tree: Path,
    root: Path,
    env: Mapping[str, str],
    context: Context,
) -> object:
    result = root / "tmp" / f"{hook}.json"
    argv = [
        *context.isolation.prefix,
        str(root / "env" / "bin" / "python"),
        "-I",
        str(_HOOK_SCRIPT),
        hook,
        system.backend,
        json.dumps(list(system.backend_path)),
        str(root / "out"),
        str(result),
    ]
    if context.log is not None:
        context.log(" ".join(argv))
    try:
        done = process.run(argv, env=env, timeout=HOOK_TIMEOUT, merge_stderr=True, cwd=str(tree))
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise BuildError(f"{tree.name}: {hook} did not finish: {exc}") from exc
    if context.log is not None and done.stdout:
        context.log(done.stdout.rstrip("\n"))
    if done.returncode != 0:
        last = [line for line in done.stdout.splitlines() if line.strip()][-1:] or ["no output"]
        raise BuildError(f"{tree.name}: {hook} failed (exit {done.returncode}): {last[0][:300]}")
    try:
        value: object = json.loads(result.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise BuildError(f"{tree.name}: {hook} left no result: {exc}") from exc
    finally:
        result.unlink(missing_ok=True)
    return value


def _check_wheel(wheel: Path, line: Wanted) -> None:
    try:
        metadata = read_metadata(wheel)
    except WheelError as exc:
        raise BuildError(f"{wheel.name}: the backend wrote a bad wheel: {exc}") from None
    if (canonicalize_name(metadata.name), metadata.version) != (line.name, line.version):
        raise BuildError(
            f"{wheel.name}: the backend built {metadata.name} {metadata.version}, "
            f"not {line.name} {line.version}"
        )


# --- the whole run --------------------------------------------------------------------------


def build_all(
    sdists: Sequence[Wanted],
    source: Source,
    pool: Pool,
    *,
    out_dir: Path,
    work_dir: Path,
    target: TargetEnvironment,
    check: bool,
    environ: Mapping[str, str],
    progress: Callable[[str], None],
    log: Callable[[str], None] | None = None,
) -> list[Built]:
    """Fetch, check and build every sdist; put each wheel beside its sdist in ``out_dir``.

    ``work_dir`` is an empty private folder the caller removes. Nothing is written to
    ``out_dir`` until every build is done (and, with ``check``, matched).

    Raises:
        PolicyError: a hash mismatch, a build requirement the pool cannot meet.
        IrreproducibleError: with ``check``, two builds of one sdist differ.
        BuildError: a build failed.
        FetchError: a transfer failed.
    """
    context = pool_context(pool, target, environ, log)
    progress(f"builds run offline: {context.isolation.description}")
    (work_dir / "sdists").mkdir()
    results: list[tuple[Built, Path, Path]] = []
    for number, line in enumerate(sdists, 1):
        archive, digest = fetch_sdist(source, line, work_dir / "sdists")
        progress(f"[{number}/{len(sdists)}] {archive.name}: sha256 checked, building")
        started = time.monotonic()
        first_root = work_dir / f"{number}-a"
        first_root.mkdir()
        wheel, backend = _build_once(archive, line, first_root, context)
        seconds = time.monotonic() - started
        identical: bool | None = None
        if check:
            progress(f"[{number}/{len(sdists)}] {archive.name}: building again elsewhere")
            second_root = work_dir / f"other-{number}-b"
            second_root.mkdir()
            again, _ = _build_once(archive, line, second_root, context)
            found = wheeldiff.differences(wheel, again)
            if again.name != wheel.name:
                found.insert(0, f"the wheel's name differs ({wheel.name} vs {again.name})")
            if found:
                raise IrreproducibleError(
                    f"{wheel.name}: two builds of {archive.name} differ: " + "; ".join(found)
                )
            identical = True
            shutil.rmtree(second_root)
        wheel_digest = sha256_file(wheel)
        built = Built(
            line.name,
            str(line.version),
            archive.name,
            digest,
            wheel.name,
            wheel_digest,
            backend,
            seconds,
            identical,
        )
        progress(
            f"[{number}/{len(sdists)}] {wheel.name}: built in {seconds:.1f} s"
            + (", identical twice" if identical else "")
        )
        results.append((built, archive, wheel))
    out_dir.mkdir(parents=True, exist_ok=True)
    for _built, archive, wheel in results:
        for path in (archive, wheel):
            shutil.copyfile(path, out_dir / path.name)
    return [built for built, _, _ in results]
