"""The install, lock and check pipelines the CLI calls (DESIGN.md §5), typed end to end.

Each command is one call: requirements and the verified list in, a :class:`Outcome` out (the
rejections are data, so the user sees all of them in one run). Nothing here prints: what the user
should hear on the way goes to a :class:`Notes` (the CLI's output). The decisions live in the pure
modules (:mod:`policy`, :mod:`resolve`, :mod:`hashlist`); the IO behind :mod:`fetch`,
:mod:`wheelstore`, :mod:`pip`, :mod:`bytecode` and :mod:`target`.

``check`` must start fast (it runs in pre-commit hooks): what only ``install`` and ``lock`` need
(the resolver, the wheel store, pip, the interpreter probe) is imported where it is used.
"""

from __future__ import annotations

import contextlib
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Final, Protocol

from packaging.specifiers import SpecifierSet
from packaging.version import Version

from safepip import policy, pylock, requirements, vet
from safepip.config import Config
from safepip.errors import FetchError, UsageError
from safepip.listcache import ListCache
from safepip.policy import Rejection
from safepip.requirements import ParsedRequirements, RequirementLine
from safepip.state import TrustState
from safepip.vet import Artifact, TrustedList

if TYPE_CHECKING:
    from safepip.audit import Finding
    from safepip.cache import WheelCache
    from safepip.sources import Links


class Notes(Protocol):
    """Where a pipeline says what it does (the CLI's :class:`~safepip._output.Output`)."""

    def info(self, message: str) -> None: ...
    def warn(self, message: str) -> None: ...
    def debug(self, message: str) -> None: ...
    def progress_bar(
        self, description: str, total: int
    ) -> AbstractContextManager[Callable[[int], None]]: ...


@dataclass(frozen=True)
class Trust:
    """Where a run judges and records the list: the trust state and the cache of verified lists
    (``None``: nothing recorded / no offline copy)."""

    state: TrustState | None
    cache: ListCache | None
    now: datetime
    #: The content-addressed wheel cache (``None``: ``--no-cache-dir``, or a command that
    #: downloads no wheel); every read from it is re-hashed.
    wheels: WheelCache | None = None


@dataclass(frozen=True)
class Request:
    """What to install or lock: specs from the command line and requirements files.

    ``python`` is the target interpreter (``None``: safepip's own), ``target`` a ``--target``
    folder; ``timeout`` bounds all the downloads of the run. ``index_url`` (``-i``) takes the
    place of the configured index, which stays the last source tried; ``extra_index_urls`` and
    ``find_links`` add sources; ``no_index`` leaves only ``find_links``
    (:func:`safepip.sources.ordered`). ``constraints`` are ``-c`` files (the same strict
    parser), ``pre`` admits pre-releases, ``no_deps`` follows no dependency. ``upgrade`` and
    ``force_reinstall`` are pip's ``-U`` and ``--force-reinstall``: every run installs the
    newest vetted versions the request admits, from the vetted wheels, which is what both ask.
    ``user``, ``prefix``, ``root``: pip puts the files there and byte-compiles them itself
    (unless not ``compile``).
    """

    specs: tuple[str, ...] = ()
    files: tuple[Path, ...] = ()
    python: str | None = None
    target: Path | None = None
    timeout: float = vet.DOWNLOAD_DEADLINE
    dry_run: bool = False
    index_url: str | None = None
    extra_index_urls: tuple[str, ...] = ()
    find_links: tuple[str, ...] = ()
    no_index: bool = False
    constraints: tuple[Path, ...] = ()
    pre: bool = False
    no_deps: bool = False
    upgrade: bool = False
    force_reinstall: bool = False
    user: bool = False
    prefix: Path | None = None
    root: Path | None = None
    break_system_packages: bool = False
    compile: bool = True

    def pip_options(self) -> list[str]:
        """Where pip puts the files, for ``--user``, ``--prefix``, ``--root`` (pip does these
        itself), and ``--break-system-packages``."""
        options = ["--user"] if self.user else []
        if self.prefix is not None:
            options += ["--prefix", str(self.prefix.absolute())]
        if self.root is not None:
            options += ["--root", str(self.root.absolute())]
        if self.break_system_packages:
            options.append("--break-system-packages")
        return options


@dataclass(frozen=True)
class Outcome:
    """What a pipeline decided: the list it used, the vetted artifacts and the rejections.

    ``rejections`` empty means the command succeeded (and the list was committed).
    """

    trusted: TrustedList
    artifacts: tuple[Artifact, ...]
    rejections: tuple[Rejection, ...]
    lines: int = 0
    requested: frozenset[str] = frozenset()
    #: Filenames of vetted wheels whose distribution was already installed, byte-identical to
    #: the wheel, and so kept (installed means vetted).
    kept: frozenset[str] = frozenset()
    #: Each installed distribution that differed from its vetted wheel, and how: reinstalled.
    reinstalled: tuple[tuple[str, tuple[Finding, ...]], ...] = ()

    @property
    def refused(self) -> bool:
        return bool(self.rejections)


def read_request(request: Request) -> ParsedRequirements:
    """The requirement lines of ``request`` (files first, then specs), parsed strictly.

    Raises:
        UsageError: nothing was asked for.
        RequirementsError: a file cannot be read or a line does not parse.
    """
    files = requirements.parse_files(list(request.files)) if request.files else None
    specs = requirements.parse_specs(list(request.specs)) if request.specs else None
    parts = [p for p in (files, specs) if p is not None]
    if not parts:
        raise UsageError("nothing to do: give requirement specs or -r FILE")
    return ParsedRequirements(
        lines=tuple(line for p in parts for line in p.lines),
        rejections=tuple(r for p in parts for r in p.rejections),
    )


def read_constraints(
    request: Request, markers: Mapping[str, str]
) -> tuple[dict[str, SpecifierSet], list[Rejection]]:
    """``name → specifier`` from the ``-c`` files (lines whose marker holds in ``markers``),
    parsed as strictly as requirements files, and their rejections.

    Raises:
        RequirementsError: a file cannot be read or a line does not parse.
    """
    if not request.constraints:
        return {}, []
    parsed = requirements.parse_files(list(request.constraints))
    found: dict[str, SpecifierSet] = {}
    for line in parsed.lines:
        marker = line.requirement.marker
        if marker is None or marker.evaluate({**markers, "extra": ""}):
            found[line.name] = found.get(line.name, SpecifierSet()) & line.requirement.specifier
    return found, list(parsed.rejections)


def judge_constraints(
    planned: Sequence[Artifact], constraints: Mapping[str, SpecifierSet]
) -> list[Rejection]:
    """A locked wheel whose version a constraint excludes (pure)."""
    return [
        Rejection(
            "dependency-missing",
            a.name,
            f"{a.name}=={a.version} is excluded by the constraint {a.name}{constraints[a.name]} "
            "(-c)",
        )
        for a in planned
        if a.name in constraints
        and not constraints[a.name].contains(Version(a.version), prereleases=True)
    ]


def trusted_list(cfg: Config, notes: Notes, trust: Trust, *, fallback: bool = False) -> TrustedList:
    """The verified list (:func:`vet.load_trusted_list`), its warnings told to ``notes``.

    ``fallback``: from the cache when its server cannot be reached.

    Raises:
        ConfigError, FetchError, SignatureError, ListFormatError, FreshnessError, StateError.
    """
    trusted = vet.load_trusted_list(
        cfg,
        now=trust.now,
        state=trust.state,
        log=notes.debug,
        cache=trust.cache,
        fallback=fallback,
    )
    vet.announce(trusted, notes)
    notes.info(f"list: {trusted.describe()}")
    return trusted


def judge_request(
    lines: Sequence[RequirementLine], cfg: Config, trusted: TrustedList, notes: Notes
) -> list[Rejection]:
    """The gate before any request reaches the index: typosquats, then the list's verdict on
    each requested line (a lookalike is reported as that, not also as "not on the list").

    Raises:
        ConfigError: the ``popular-names`` file cannot be read.
    """
    typos, warnings = vet.judge_names(
        [(line.name, line.location) for line in lines], cfg, trusted.hashlist
    )
    for warning in warnings:
        notes.warn(warning)
    flagged = {r.subject for r in typos}
    unflagged = [line for line in lines if line.name not in flagged]
    return [
        *typos,
        *policy.judge_request(unflagged, trusted.hashlist, locked=vet.is_locked(lines)),
    ]


def resolve_lines(
    lines: Sequence[RequirementLine],
    cfg: Config,
    notes: Notes,
    *,
    trusted: TrustedList,
    staging: Path,
    request: Request,
    cache: WheelCache | None = None,
    reads: vet.Reads | None = None,
    links: Links | None = None,
) -> tuple[list[Artifact], list[Rejection], bool]:
    """The artifacts to install and the rejections: locked fast path, else the in-process
    resolver over vetted metadata. Returns (artifacts, rejections, locked); for the resolver
    path the wheels are already downloaded and hash-checked into ``staging / "wheels"``. On the
    locked path, the METADATA of each wheel copied from ``cache`` is read into ``reads``.

    ``links`` (default: :func:`source_links`) is where files are looked for. When it is given,
    the locked path leaves the URL of each wheel not in the cache empty: the caller's download
    looks it up (:func:`safepip.vet.download_all`).

    Raises:
        FetchError: the index cannot be read or a download failed.
        UsageError: ``python`` cannot be run.
    """
    from safepip import interpreter  # noqa: PLC0415  (lazy: see the module)

    listed = trusted.hashlist
    target = interpreter.describe(request.python)
    deferred = links is not None
    links = links if links is not None else source_links(request, cfg, notes)
    constraints, problems = read_constraints(request, target.markers)
    if problems:
        return [], problems, vet.is_locked(lines)
    if vet.is_locked(lines):
        planned, rejections = vet.plan_locked(lines, listed, target)
        if rejections:
            return [], rejections, True
        artifacts = [
            Artifact(e.name, e.version, e.filename, e.sha256, "", extras) for e, extras in planned
        ]
        rejections = judge_constraints(artifacts, constraints)
        if rejections:
            return [], rejections, True
        # A cached wheel is copied in now, re-hashed on the way: no page, no download.
        cached = vet.from_cache([e for e, _ in planned], staging / "wheels", cache, reads=reads)
        if deferred:
            urls = cached
        else:
            urls = cached | vet.locate([e for e, _ in planned if e.filename not in cached], links)
        artifacts = [replace(a, url=urls.get(a.filename, "")) for a in artifacts]
        return artifacts, [], True
    # The resolver and its wheel store (and resolvelib) are imported only for what needs them.
    from safepip import resolve  # noqa: PLC0415
    from safepip.wheelstore import WheelStore  # noqa: PLC0415

    wheels = staging / "wheels"
    wheels.mkdir(mode=0o700, exist_ok=True)
    notes.info(f"resolving {len(lines)} requirement(s) against the list's wheels")
    with WheelStore(
        wheels,
        links=links,
        cafile=cfg.cert,
        timeout=request.timeout,
        proxies=cfg.proxies,
        on_download=lambda entry: notes.debug(f"fetched and hash-checked {entry.filename}"),
        cache=cache,
    ) as store:
        try:
            resolution, rejections = resolve.resolve(
                resolve.requested(lines, target),
                listed,
                target,
                metadata=store.metadata,
                prefetch=store.prefetch,
                pre=request.pre,
                constraints=constraints,
                deps=not request.no_deps,
            )
        except resolve.Refused as refused:
            return [], [refused.rejection], False
        if resolution is None:
            return [], rejections, False
        artifacts = [
            Artifact(e.name, e.version, e.filename, e.sha256, store.source(e), extras)
            for e, extras in resolution.chosen
        ]
    store.discard_except([e for e, _ in resolution.chosen])  # after every download stopped
    return artifacts, [], False


def source_links(request: Request, cfg: Config, notes: Notes) -> Links:
    """Where the listed files are looked for, in order (:func:`safepip.sources.ordered`).

    Pages share one deadline, ``request.timeout``, with the downloads.
    """
    from safepip import sources  # noqa: PLC0415  (lazy: see the module)

    configured = cfg.index()
    ordered = sources.ordered(
        request.index_url or configured,
        extra_indexes=request.extra_index_urls,
        find_links=request.find_links,
        fallback=configured if request.index_url else None,
        no_index=request.no_index,
    )
    deadline = time.monotonic() + request.timeout

    def remaining() -> float:
        left = deadline - time.monotonic()
        if left <= 0:
            raise FetchError(
                f"the downloads did not finish within {request.timeout:g} s",
                hint="check that the index answers, or raise --timeout",
            )
        return min(left, vet.LIST_DEADLINE)

    return sources.Links(
        ordered,
        base_dir=cfg.base_dir,
        cafile=cfg.cert,
        proxies=cfg.proxies,
        timeout=remaining,
        log=notes.debug,
    )


def lookalikes_named(
    problems: Sequence[Rejection], cfg: Config, trusted: TrustedList, notes: Notes
) -> list[Rejection]:
    """Transitive names, judged after resolution: a missing lookalike is called a typosquat.

    Raises:
        ConfigError: the ``popular-names`` file cannot be read.
    """
    relabelled, warnings = vet.name_lookalikes(problems, cfg, trusted.hashlist)
    for warning in warnings:
        notes.warn(warning)
    return relabelled


def _resolved(
    request: Request,
    cfg: Config,
    notes: Notes,
    trust: Trust,
    staging: Path,
    *,
    reads: vet.Reads | None = None,
    links: Links | None = None,
) -> tuple[Outcome, bool]:
    """Requirements, list, the gate before the index, then :func:`resolve_lines`; returns the
    outcome and whether the locked fast path was taken (its wheels are not downloaded yet)."""
    parsed = read_request(request)
    trusted = trusted_list(cfg, notes, trust)
    rejections = [*parsed.rejections, *judge_request(parsed.lines, cfg, trusted, notes)]
    if rejections:  # before any request reaches the index
        return Outcome(trusted, (), tuple(rejections)), False
    artifacts, problems, locked = resolve_lines(
        parsed.lines,
        cfg,
        notes,
        trusted=trusted,
        staging=staging,
        request=request,
        cache=trust.wheels,
        reads=reads,
        links=links,
    )
    named = lookalikes_named(problems, cfg, trusted, notes) if problems else []
    requested = frozenset(line.name for line in parsed.lines)
    return Outcome(trusted, tuple(artifacts), tuple(named), requested=requested), locked


def vet_request(
    request: Request, cfg: Config, notes: Notes, trust: Trust, staging: Path
) -> Outcome:
    """Steps 1-6 of DESIGN.md §5: every wheel to install is in ``staging / "wheels"``,
    downloaded and hash-checked, or the outcome holds the rejections.

    Raises:
        SafepipError: a failure to proceed (list, requirements file, index, download).
    """
    from safepip import interpreter  # noqa: PLC0415  (lazy: see the module)

    # Each wheel's METADATA is read by the worker that copied or downloaded it, while the
    # others are still on their way; the verdicts are still given below, in the lock's order.
    reads: vet.Reads = {}
    # On the locked path each wheel's page is read by the worker that then downloads it.
    links = source_links(request, cfg, notes)
    outcome, locked = _resolved(request, cfg, notes, trust, staging, reads=reads, links=links)
    # The resolver fetched, hash-checked and read every wheel it chose.
    if outcome.refused or not locked:
        return outcome
    trusted, artifacts = outcome.trusted, outcome.artifacts
    wheels = staging / "wheels"
    wheels.mkdir(mode=0o700, exist_ok=True)
    # Wheels already copied in from the cache (re-hashed on the way) need no download.
    pending = [a for a in artifacts if not (wheels / a.filename).exists()]
    urls: dict[str, str] = {}
    with notes.progress_bar("downloading", len(pending)) as advance:
        problems = vet.download_all(
            pending,
            wheels,
            cafile=cfg.cert,
            timeout=request.timeout,
            advance=advance,
            proxies=cfg.proxies,
            cache=trust.wheels,
            reads=reads,
            links=links,
            urls=urls,
        )
    artifacts = tuple(replace(a, url=urls.get(a.filename, a.url)) for a in artifacts)
    # A refused download leaves a hole in the closure; judging it would only add noise.
    target = interpreter.describe(request.python)
    problems += vet.check_wheels(
        artifacts,
        wheels,
        closure=not problems and not request.no_deps,
        environment=target.markers,
        reads=reads,
    )
    named = lookalikes_named(problems, cfg, trusted, notes)
    return replace(outcome, artifacts=artifacts, rejections=tuple(named))


def install(
    request: Request, cfg: Config, notes: Notes, trust: Trust, environ: Mapping[str, str]
) -> Outcome:
    """Vet ``request``, then (unless ``dry_run``) install the vetted wheels with pip and
    byte-compile them; commit the list on success.

    Raises:
        SafepipError: a failure to proceed; ``PipError`` when pip failed after vetting.
    """
    from safepip import bytecode, installed  # noqa: PLC0415  (lazy: see the module)

    # --user, --prefix, --root: pip knows where the files go, so pip byte-compiles them.
    elsewhere = request.user or request.prefix is not None or request.root is not None
    staging = Path(tempfile.mkdtemp(prefix="safepip-"))  # mkdtemp makes it 0700
    # What runs beside the pipeline: children started early, a folder being removed. Closed
    # (children ended, the removal waited for) whatever happens.
    probes = contextlib.ExitStack()
    try:
        # A missing uv: a usage error before any fetch.
        install_wheels = installer(cfg, request, scratch=staging)
        # Where pip will install is asked for before it installs: the compile step then runs
        # without `site`, so that no .pth file or sitecustomize of the packages installed runs
        # (pip never runs them either). Asked now, the target starts while the list is fetched
        # and the wheels vetted; its answer, or its failure, is taken once they are.
        layout_of = (
            None
            if elsewhere or request.dry_run
            else probes.enter_context(
                bytecode.layout_probe(
                    request.python, request.target, environ=environ, log=notes.debug
                )
            )
        )
        outcome = vet_request(request, cfg, notes, trust, staging)
        if outcome.refused:
            return outcome
        if request.dry_run:
            vet.commit(outcome.trusted, notes)
            return outcome
        pip_compiles = request.compile and elsewhere
        layout = layout_of() if layout_of is not None else None
        # Installed means vetted: a distribution already there byte-identical to its vetted
        # wheel is kept; one that differs (tampered, files missing or added) is reinstalled.
        # --force-reinstall, and places only pip knows (--user, --prefix, --root), keep nothing.
        same = (
            installed.differing(
                [(a.name, a.version, staging / "wheels" / a.filename) for a in outcome.artifacts],
                layout,
                log=notes.debug,
            )
            if layout is not None and not request.force_reinstall
            else installed.Differing(frozenset(), {})
        )
        outcome = replace(
            outcome,
            kept=same.kept,
            reinstalled=tuple(sorted((name, tuple(f)) for name, f in same.reinstall.items())),
        )
        artifacts = [a for a in outcome.artifacts if a.filename not in same.kept]
        notes.info(
            f"all {len(outcome.artifacts)} wheel(s) vetted; "
            + (
                f"{cfg.installer} installs "
                + ("them" if len(artifacts) == len(outcome.artifacts) else str(len(artifacts)))
                + " with --require-hashes"
                if artifacts
                else "every one is installed and byte-identical: pip has nothing to do"
            )
        )
        generated = staging / "vetted.txt"
        generated.write_text(vet.requirements_text(artifacts), encoding="utf-8")
        options = request.pip_options()
        # The compile run starts now, and loads while the installer runs (-S: it sees nothing
        # the installer writes until it is handed its work, afterwards).
        compile_wheels = (
            probes.enter_context(bytecode.compiler(layout, environ=environ, log=notes.debug))
            if layout is not None and request.compile and artifacts
            else None
        )
        if artifacts and request.target is None:
            install_wheels(
                staging / "wheels",
                generated,
                python_target=request.python,
                target_dir=None,
                environ=environ,
                log=notes.debug,
                options=options,
                compile=pip_compiles,
            )
        elif artifacts and request.target is not None:
            # pip installs into an empty folder inside the target, then safepip merges it in.
            from safepip import target  # noqa: PLC0415  (lazy: only --target needs it)

            with target.staging(request.target) as place:
                install_wheels(
                    staging / "wheels",
                    generated,
                    python_target=request.python,
                    target_dir=place.pip_dir,
                    environ=environ,
                    log=notes.debug,
                    options=options,
                )
                merged = target.merge(place)
            for warning in merged.warnings:
                notes.warn(warning)
            for old in merged.old_versions:
                notes.info(f"removed {old} and the files its RECORD names from {request.target}")
        if cfg.installer == "uv":
            # uv's private cache holds an unpacked copy of every wheel: removed (~60 ms) while
            # the compile runs.
            probes.enter_context(_removed_meanwhile(staging / _UV_CACHE))
        if compile_wheels is not None:
            compiled = compile_wheels([staging / "wheels" / a.filename for a in artifacts])
            notes.debug(f"byte-compiled {compiled.compiled} of {compiled.sources} .py file(s)")
    finally:
        probes.close()
        shutil.rmtree(staging, ignore_errors=True)
    vet.commit(outcome.trusted, notes)
    return outcome


#: uv's private cache, in the staging folder (:func:`installer`).
_UV_CACHE: Final = "uv-cache"


@contextlib.contextmanager
def _removed_meanwhile(folder: Path) -> Iterator[None]:
    """Remove ``folder`` in a thread while the block runs; it is gone when the block ends."""
    import threading  # noqa: PLC0415  (lazy: see the module)

    remover = threading.Thread(
        target=shutil.rmtree,
        args=(folder,),
        kwargs={"ignore_errors": True},
        name="safepip-remove",
        daemon=True,
    )
    remover.start()
    try:
        yield
    finally:
        remover.join()


def installer(cfg: Config, request: Request, *, scratch: Path | None = None) -> Callable[..., None]:
    """What installs the vetted wheels: ``pip.install``, or ``uv.install`` with
    ``installer = "uv"`` (the same contract: offline, no deps, every hash re-checked). With
    ``scratch`` (a private folder), uv makes its cache there (``uv-cache``) and leaves it for
    the caller to remove.

    Raises:
        UsageError: uv is asked for but the optional extra ``safepip[uv]`` is not installed, or
            for a place only pip knows how to fill (``--user``, ``--prefix``, ``--root``).
    """
    if cfg.installer != "uv":
        from safepip import pip  # noqa: PLC0415  (lazy: see the module)

        return pip.install
    import functools  # noqa: PLC0415

    from safepip import uv  # noqa: PLC0415  (lazy: an optional extra)

    if request.pip_options():
        raise UsageError(
            "installer uv does not take --user, --prefix, --root or --break-system-packages here",
            hint="use --installer pip for those, or install into a venv (--python)",
        )
    cache_dir = scratch / _UV_CACHE if scratch is not None else None
    return functools.partial(uv.install, uv_binary=uv.find_uv(), cache_dir=cache_dir)


def lock(request: Request, output: Path, cfg: Config, notes: Notes, trust: Trust) -> Outcome:
    """Resolve ``request`` over the list and write ``output``: every requirement pinned and
    hashed from the list; commit the list on success.

    Raises:
        SafepipError: a failure to proceed; ``UsageError`` when ``output`` cannot be written.
    """
    staging = Path(tempfile.mkdtemp(prefix="safepip-"))
    try:
        outcome, _ = _resolved(request, cfg, notes, trust, staging)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    if outcome.refused:
        return outcome
    trusted, artifacts = outcome.trusted, outcome.artifacts
    text = (
        pylock_text(trusted, artifacts, source_links(request, cfg, notes))
        if pylock.is_pylock(output)
        else lock_text(trusted, artifacts)
    )
    try:
        output.write_text(text, encoding="utf-8")
    except OSError as exc:  # checked when parsed, but permissions or a full disk remain
        raise UsageError(f"cannot write {output}: {exc.strerror or exc}") from exc
    vet.commit(trusted, notes)
    return Outcome(trusted, tuple(artifacts), ())


def lock_text(trusted: TrustedList, artifacts: Sequence[Artifact]) -> str:
    """The requirements file ``lock`` writes: ``name==version`` with the hash of every listed
    wheel of that version, so the file works on every platform the list covers (pure). The
    hashes come from the list, never from the index."""
    lines = [
        f"# generated by safepip lock from {trusted.url} (serial {trusted.hashlist.header.serial})"
    ]
    for artifact in sorted(artifacts, key=lambda a: a.name):
        hashes = sorted(
            e.sha256
            for e in trusted.hashlist.for_project(artifact.name)
            if e.kind == "wheel" and e.version == artifact.version
        )
        options = "".join(f" \\\n    --hash=sha256:{h}" for h in hashes)
        lines.append(f"{artifact.name}=={artifact.version}{options}")
    return "\n".join(lines) + "\n"


def pylock_text(trusted: TrustedList, artifacts: Sequence[Artifact], links: Links) -> str:
    """A PEP 751 ``pylock.toml`` of ``artifacts``: every listed wheel of each chosen version,
    with its URL at the sources and the list's hash.

    Raises:
        FetchError: a source cannot be read, or no source offers a listed wheel.
    """
    versions = {(a.name, a.version) for a in artifacts}
    entries = [
        e
        for name, version in sorted(versions)
        for e in trusted.hashlist.for_project(name)
        if e.kind == "wheel" and e.version == version
    ]
    urls = vet.locate(entries, links)
    packages: dict[tuple[str, str], list[pylock.LockedFile]] = {}
    for entry in entries:
        files = packages.setdefault((entry.name, entry.version), [])
        files.append(pylock.LockedFile(entry.filename, urls[entry.filename], entry.sha256))
    serial = trusted.hashlist.header.serial
    comment = f"generated by safepip lock from {trusted.url} (serial {serial})"
    return pylock.render(packages, created_by="safepip", comment=comment)


def check(files: Sequence[Path], cfg: Config, notes: Notes, trust: Trust) -> Outcome:
    """The lock-file verdict: every line pinned ``==`` with hashes bound to listed files, no
    typosquats, no unsafe option lines; offline when the list is local or cached. Rejections are
    sorted by ``file:line``; the list is committed when there is none.

    Raises:
        UsageError: no file given.
        SafepipError: a file cannot be read, or the list is not trustworthy or not available.
    """
    if not files:
        raise UsageError("no requirements file given", hint="safepip check requirements.txt")
    parsed = requirements.parse_files(list(files))
    trusted = trusted_list(cfg, notes, trust, fallback=True)
    rejections = list(parsed.rejections)
    typos, warnings = vet.judge_names(
        [(line.name, line.location) for line in parsed.lines], cfg, trusted.hashlist
    )
    for warning in warnings:
        notes.warn(warning)
    rejections.extend(typos)
    # A lookalike line is reported as that, not also as not on the list (as install does).
    flagged = {(r.subject, r.location) for r in typos}
    for line in parsed.lines:
        if (line.name, line.location) not in flagged:
            rejections.extend(policy.judge_lock_line(line, trusted.hashlist))
    rejections.sort(key=lambda r: _location_key(r.location))
    if not rejections:
        vet.commit(trusted, notes)
    return Outcome(trusted, (), tuple(rejections), lines=len(parsed.lines))


def _location_key(location: str | None) -> tuple[str, int]:
    if not location or ":" not in location:
        return (location or "", 0)
    path, _, line = location.rpartition(":")
    return (path, int(line) if line.isdigit() else 0)


def report_document(outcome: Outcome, environment: Mapping[str, str]) -> dict[str, object]:
    """pip's installation report (``--report``, format ``"1"``) for the vetted artifacts (pure):
    what pip's would say, with the list's hashes."""
    from safepip import __version__  # noqa: PLC0415

    return {
        "version": "1",
        "pip_version": f"safepip {__version__}",
        "install": [
            {
                "download_info": {
                    "url": a.url,
                    "archive_info": {
                        "hash": f"sha256={a.sha256}",
                        "hashes": {"sha256": a.sha256},
                    },
                },
                "is_direct": False,
                "is_yanked": False,
                "requested": a.name in outcome.requested,
                "requested_extras": sorted(a.extras),
                "metadata": {"metadata_version": "2.1", "name": a.name, "version": a.version},
            }
            for a in outcome.artifacts
        ],
        "environment": dict(environment),
    }


def write_report(path: Path, outcome: Outcome, python: str | None) -> None:
    """Write :func:`report_document` to ``path``, for the interpreter ``python``.

    Raises:
        UsageError: ``path`` cannot be written.
    """
    import json  # noqa: PLC0415

    from safepip import interpreter  # noqa: PLC0415

    document = report_document(outcome, interpreter.describe(python).markers)
    try:
        path.write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
    except OSError as exc:
        raise UsageError(f"--report {path}: cannot write it: {exc.strerror or exc}") from exc
