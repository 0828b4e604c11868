"""The pipeline shared by ``verify``, ``check``, ``install`` and ``lock``.

This module sequences the steps of DESIGN.md §5; the decisions themselves live in the pure
modules (:mod:`hashlist`, :mod:`policy`, :mod:`typosquat`) and the IO behind :mod:`fetch`,
:mod:`gpg`, :mod:`state` and :mod:`pip`.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Final, Protocol

from safepip import fetch, gpg, hashlist, location, policy
from safepip.config import Config
from safepip.errors import FetchError, FreshnessError
from safepip.fetch import Validators
from safepip.listcache import CachedList, ListCache
from safepip.policy import Rejection
from safepip.state import TrustState, judge_serial

# `check` and `verify` never download: what only `install` and `lock` need (a thread pool, the
# index page parser, wheel reading, pip) is imported where it is used, keeping their start fast.
if TYPE_CHECKING:
    from safepip.cache import NewEntry, WheelCache
    from safepip.interpreter import TargetEnvironment
    from safepip.requirements import RequirementLine
    from safepip.sources import Links
    from safepip.wheel import WheelMetadata

#: The whole fetch of the list, and of its signature, must finish within this many seconds.
LIST_DEADLINE: Final = 60.0


@dataclass(frozen=True)
class PendingRecord:
    """What a successful command records about the list it used: its serial and a cached copy.

    Built by :func:`load_trusted_list`, written by :meth:`TrustedList.commit` only when the
    command succeeds, so that a refused run leaves the trust state and the cache unchanged.
    """

    state: TrustState | None
    cache: ListCache | None
    list_id: str
    serial: int | None
    sha256: str
    min_serial: int
    fingerprints: tuple[str, ...]
    data: bytes
    signature: bytes
    now: datetime
    list_validators: Validators = field(default_factory=Validators)
    signature_validators: Validators = field(default_factory=Validators)
    #: Both files answered 304: the cache already holds exactly these bytes and validators.
    unchanged: bool = False


@dataclass(frozen=True)
class TrustedList:
    """A list whose signature, format and freshness were all accepted.

    ``url`` identifies the list (its canonical identity: :func:`safepip.location.canonical`);
    ``warnings`` are things the user must hear about even though the list was accepted (a legacy
    list, a list about to expire, a cached copy used offline). ``pending`` is what
    :meth:`commit` records once the command that used the list has succeeded.
    """

    url: str
    hashlist: hashlist.HashList
    verification: gpg.Verification
    warnings: tuple[str, ...] = ()
    pending: PendingRecord | None = field(default=None, repr=False, compare=False)

    def describe(self) -> str:
        """One line naming the list: serial, signers and expiry."""
        header = self.hashlist.header
        # Full fingerprints: the config accepts nothing shorter, so the user can compare them.
        signers = ", ".join(self.verification.signers)
        serial = "legacy list" if self.hashlist.legacy else f"serial {header.serial}"
        expires = f", expires {header.expires:%Y-%m-%d %H:%M}Z" if header.expires else ""
        return f"{self.url} ({serial}, signed by {signers}{expires})"

    def commit(self) -> tuple[str, ...]:
        """Record the list's serial in the trust state, then keep a copy of it in the cache.

        Call it only when the command succeeded, right before it returns. The state re-judges the
        serial under its lock: a higher serial a concurrent run stored meanwhile is kept (the
        stored serial never goes down), and the copy is then not cached either. Returns warnings
        (a cache that cannot be written costs only the offline fallback, never the result).

        Raises:
            FreshnessError: another run stored this serial with other bytes meanwhile.
            StateError: the trust state is corrupt or cannot be written.
        """
        pending = self.pending
        if pending is None:
            return ()
        current = True
        if pending.state is not None and pending.serial is not None:
            current = pending.state.accept(
                pending.list_id,
                pending.serial,
                pending.sha256,
                min_serial=pending.min_serial,
                fingerprints=pending.fingerprints,
                keep_newer=True,
            )
        if pending.cache is None or not current or not is_remote(pending.list_id):
            return ()
        if pending.unchanged:
            return ()
        try:
            pending.cache.store(
                pending.list_id,
                pending.data,
                pending.signature,
                now=pending.now,
                list_validators=pending.list_validators,
                signature_validators=pending.signature_validators,
            )
        except (OSError, FetchError) as exc:
            return (f"cannot keep a copy of the list for offline use: {exc}",)
        return ()


def list_identity(cfg: Config) -> str:
    """The canonical identity of the configured list (:func:`safepip.location.canonical`)."""
    return location.canonical(cfg.list_source(), base_dir=cfg.base_dir)


def is_remote(list_id: str) -> bool:
    """True for a list fetched over the network (its identity is a URL, not a local path)."""
    return "://" in list_id


@dataclass(frozen=True)
class _Pair:
    """The list's and the signature's bytes, with their validators; ``unchanged`` when both
    answered 304 Not Modified and are the stored copy's bytes."""

    data: bytes
    signature: bytes
    list_validators: Validators = field(default_factory=Validators)
    signature_validators: Validators = field(default_factory=Validators)
    unchanged: bool = False


def _fetch_pair(cfg: Config, stored: CachedList | None, log: Callable[[str], None] | None) -> _Pair:
    """The list's and the signature's bytes, each capped and under a deadline.

    With a ``stored`` copy, each request carries that copy's validators, and a 304 answer stands
    for the stored bytes: the caller verifies them exactly as fetched ones (signature, format,
    expiry, serial), so a 304 saves the transfer, never a check.
    """
    data, list_validators, same_list = _fetch_one(
        cfg,
        cfg.list_source(),
        (stored.data, stored.list_validators) if stored else None,
        log,
    )
    signature, signature_validators, same_signature = _fetch_one(
        cfg,
        cfg.signature_source(),
        (stored.signature, stored.signature_validators) if stored else None,
        log,
    )
    unchanged = same_list and same_signature
    return _Pair(data, signature, list_validators, signature_validators, unchanged)


def _fetch_one(
    cfg: Config,
    source: str,
    kept: tuple[bytes, Validators] | None,
    log: Callable[[str], None] | None,
) -> tuple[bytes, Validators, bool]:
    """``source``'s bytes and validators, and whether they are ``kept``'s (a 304 answer)."""
    answer = fetch.fetch_if_changed(
        source,
        validators=kept[1] if kept else Validators(),
        base_dir=cfg.base_dir,
        max_bytes=cfg.max_list_bytes,
        timeout=LIST_DEADLINE,
        cafile=cfg.cert,
        proxies=cfg.proxies,
    )
    if answer.data is not None:
        return answer.data, answer.validators, False
    if kept is None:  # fetch_if_changed answers 304 only when validators were sent
        raise FetchError(f"{source}: HTTP 304 to an unconditional request")
    if log is not None:
        log(f"{source}: not modified (HTTP 304); verifying the stored copy in full")
    return kept[0], kept[1], True


def _stored_copy(
    cache: ListCache, identity: str, cfg: Config, log: Callable[[str], None] | None
) -> CachedList | None:
    """The cached copy whose validators make the fetch conditional; an unusable cache is only
    logged here (the fetch then simply is not conditional)."""
    try:
        return cache.load(identity, max_bytes=cfg.max_list_bytes)
    except (FetchError, OSError) as exc:
        if log is not None:
            log(f"not using the cached list for a conditional fetch: {exc}")
        return None


def expiry_warning(expires: datetime | None, *, now: datetime, warn_days: int, name: str) -> str:
    """A warning when the list expires within ``warn_days`` days of ``now``, else ``""`` (pure)."""
    # Seconds, not timedelta(days=…): a huge warn-expiry-days must not overflow.
    if expires is None or warn_days <= 0 or (expires - now).total_seconds() >= warn_days * 86400:
        return ""
    left = expires - now
    return (
        f"{name} expires in {left.days} day(s) {left.seconds // 3600} hour(s), on "
        f"{expires:%Y-%m-%d %H:%M}Z (warn-expiry-days is {warn_days}): the publisher must "
        "publish a fresh list before then, or every install stops"
    )


def judge_remaining(trusted: TrustedList, *, now: datetime, min_days: float) -> None:
    """Refuse a list that expires within ``min_days`` days of ``now`` (pure; for monitoring).

    Raises:
        FreshnessError: the list expires sooner, or has no expiry (a legacy list).
    """
    expires = trusted.hashlist.header.expires
    if expires is None:
        raise FreshnessError(
            f"{trusted.url} has no expiry, so --min-remaining {min_days:g} cannot be met",
            hint="publish a format 1 list (with `# expires:`)",
        )
    if (expires - now).total_seconds() < min_days * 86400:
        left = (expires - now).total_seconds() / 86400
        raise FreshnessError(
            f"{trusted.url} expires in {left:.1f} day(s), on {expires:%Y-%m-%d %H:%M}Z: "
            f"less than --min-remaining {min_days:g}",
            hint="the publisher must publish a fresh list (safepip publish) before it expires",
        )


def load_trusted_list(
    cfg: Config,
    *,
    now: datetime,
    state: TrustState | None,
    log: Callable[[str], None] | None = None,
    cache: ListCache | None = None,
    fallback: bool = False,
) -> TrustedList:
    """Fetch, verify, parse and judge the configured list; nothing is written.

    The signature is checked over the exact bytes fetched, and those same bytes are what is
    parsed (while gpg checks them; nothing parsed is used unless the signature holds): a file
    changing on disk afterwards changes nothing. The serial is
    judged against ``state`` read-only; :meth:`TrustedList.commit` records it (and keeps a copy in
    ``cache``) once the command succeeded. ``state`` is ``None`` only where the caller must not
    record (never to skip the rollback check: then ``min-serial`` still applies). With
    ``fallback``, a list whose server cannot be reached is taken from ``cache`` instead, and
    verified exactly as a fetched one (a warning says so). ``log`` sees each gpg command line.

    Raises:
        ConfigError: missing pins or unreadable key files (exit 2).
        FetchError, SignatureError, ListFormatError, FreshnessError, StateError: the list is not
            trustworthy or not available (exit 3).
    """
    cfg.require_trust()
    identity = list_identity(cfg)
    warnings: list[str] = []
    remote_cache = cache if cache is not None and is_remote(identity) else None
    stored = _stored_copy(remote_cache, identity, cfg, log) if remote_cache else None
    try:
        pair = _fetch_pair(cfg, stored, log)
    except FetchError as exc:
        cached = (
            remote_cache.load(identity, max_bytes=cfg.max_list_bytes)
            if fallback and remote_cache is not None
            else None
        )
        if cached is None:
            raise
        pair = _Pair(
            cached.data, cached.signature, cached.list_validators, cached.signature_validators
        )
        warnings.append(
            f"using the cached list from {cached.stored:%Y-%m-%d %H:%M}Z (verified again now): "
            f"{str(exc).splitlines()[0]}"
        )
    data, signature = pair.data, pair.signature
    # gpg checks the bytes while they are parsed (on the other core); a bad signature is still
    # the reason given for a list that is also malformed, and nothing parsed is used before
    # the signature holds.
    with gpg.verifying(
        data,
        signature,
        key_files=cfg.key_files,
        trusted=cfg.trusted_keys,
        threshold=cfg.threshold,
        source=cfg.signature_source(),
        log=log,
    ) as signed:
        parsed = hashlist.parse(
            data, require_freshness=cfg.require_freshness, max_bytes=cfg.max_list_bytes
        )
    verification = signed.verification
    hashlist.judge_header(
        parsed.header, now=now, max_validity_days=cfg.max_validity_days, legacy=parsed.legacy
    )
    pending = PendingRecord(
        state=state,
        cache=cache,
        list_id=identity,
        serial=parsed.header.serial,
        sha256=parsed.sha256,
        min_serial=cfg.min_serial,
        fingerprints=tuple(cfg.trusted_keys),
        data=data,
        signature=signature,
        now=now,
        list_validators=pair.list_validators,
        signature_validators=pair.signature_validators,
        unchanged=pair.unchanged,
    )
    serial = parsed.header.serial
    if serial is None:
        if cfg.min_serial > 0:
            raise FreshnessError(
                f"{identity} has no serial, but min-serial is {cfg.min_serial}",
                hint="a legacy list cannot prove it is not a rollback; publish a format 1 list",
            )
        warning = "legacy list without serial or expiry: rollback and freeze protection is off"
        return TrustedList(identity, parsed, verification, (*warnings, warning), pending)
    # One history per list location, whatever the pins: adding a key (a rotation, a higher
    # threshold) or another subset of signers must not open a fresh serial history.
    if state is not None:
        state.check(identity, serial, parsed.sha256, min_serial=cfg.min_serial)
    else:
        judge_serial(
            serial=serial,
            sha256=parsed.sha256,
            previous=None,
            min_serial=cfg.min_serial,
            list_name=identity,
        )
    soon = expiry_warning(
        parsed.header.expires, now=now, warn_days=cfg.warn_expiry_days, name=identity
    )
    if soon:
        warnings.append(soon)
    return TrustedList(identity, parsed, verification, tuple(warnings), pending)


class Notes(Protocol):
    """Where the list's warnings go (the CLI's :class:`~safepip._output.Output`)."""

    def warn(self, message: str) -> None: ...
    def debug(self, message: str) -> None: ...


def announce(trusted: TrustedList, notes: Notes) -> None:
    """The list's warnings, and (with -v) the signatures that were ignored and why."""
    for warning in trusted.warnings:
        notes.warn(warning)
    for ignored in trusted.verification.ignored:
        notes.debug(f"ignored a signature by {ignored.key}: {ignored.reason}")


def commit(trusted: TrustedList, notes: Notes) -> None:
    """The command succeeded: record the list's serial (and cache it). A refusal never gets here.

    Raises:
        FreshnessError, StateError: see :meth:`TrustedList.commit`.
    """
    for warning in trusted.commit():
        notes.warn(warning)


#: A wheel larger than this is refused while downloading (the largest common wheels are ~1 GB).
MAX_WHEEL_BYTES: Final = 2 * 1024 * 1024 * 1024
#: Default total deadline for all downloads of one run, in seconds (``--timeout``).
DOWNLOAD_DEADLINE: Final = 900.0


@dataclass(frozen=True)
class Artifact:
    """One vetted wheel to install: bound to the list by filename and hash."""

    name: str
    version: str
    filename: str
    sha256: str
    url: str
    extras: frozenset[str] = frozenset()

    def to_json(self) -> dict[str, str]:
        return {
            "name": self.name,
            "version": self.version,
            "filename": self.filename,
            "sha256": self.sha256,
            "url": self.url,
        }


def is_locked(lines: Sequence[RequirementLine]) -> bool:
    """True when every line is pinned with ``==`` and carries hashes: no resolver is needed."""
    return bool(lines) and all(line.pinned_version is not None and line.hashes for line in lines)


def plan_locked(
    lines: Sequence[RequirementLine], listed: hashlist.HashList, target: TargetEnvironment
) -> tuple[list[tuple[hashlist.Entry, frozenset[str]]], list[Rejection]]:
    """Choose the listed wheel for each applicable line of a fully locked file (pure).

    Every line is judged (marker or not); only lines whose marker holds for ``target`` are
    installed, each as the hashed wheel ``target`` prefers most: the lock file's hashes hold for
    every interpreter, never only for the one running safepip. Returns (entry, extras) pairs and
    the rejections.
    """
    from safepip.interpreter import best_wheel  # noqa: PLC0415  (lazy: see the imports)

    rejections: list[Rejection] = []
    chosen: dict[str, tuple[hashlist.Entry, frozenset[str]]] = {}
    for line in lines:
        problems = policy.judge_lock_line(line, listed)
        rejections.extend(problems)
        if problems or not line.applies(target.markers):
            continue
        candidates = {
            e.filename: e for h in line.hashes if (e := listed.by_sha256(h)) and e.kind == "wheel"
        }
        best = best_wheel(sorted(candidates), target)
        entry = candidates[best] if best is not None else None
        if entry is None:
            rejections.append(
                Rejection(
                    "not-in-list",
                    line.name,
                    f"none of the hashed wheels of {line.name} {line.pinned_version} "
                    f"fits {target.python}",
                    line.location,
                )
            )
        elif line.name in chosen and chosen[line.name][0] != entry:
            rejections.append(
                Rejection("unsupported", line.name, f"{line.name} is pinned twice", line.location)
            )
        else:
            extras = frozenset(line.requirement.extras)
            previous = chosen.get(line.name, (entry, frozenset[str]()))[1]
            chosen[line.name] = (entry, extras | previous)
    return list(chosen.values()), rejections


def locate(entries: Sequence[hashlist.Entry], links: Links) -> dict[str, str]:
    """``filename → URL`` of each entry, from the first of ``links``' sources that offers it
    (pages read in parallel, each once).

    Only the links of listed filenames are judged: such a link must follow the fetch rules
    (no ``file://`` from a network page, no ``http://`` off loopback, ``https://`` only from an
    ``https://`` page) or the run is refused; an href that is not a URL at all is skipped, with
    a note to the log. A Ctrl-C stops every page fetch at once (see :mod:`safepip.parallel`).

    Raises:
        FetchError: a page cannot be fetched or read, a listed file's link breaks the fetch
            rules, or no source offers a listed file.
    """
    from safepip import parallel  # noqa: PLC0415  (lazy: see the imports)

    def url(entry: hashlist.Entry, cancel: threading.Event) -> str:
        return links.url(entry, cancel)

    found = parallel.run_all(url, list(entries), name="safepip-index")
    return {e.filename: u for e, u in zip(entries, found, strict=True)}


#: METADATA read from each wheel as it arrived in the staging folder (``filename →`` its
#: metadata, or the ``metadata-mismatch`` rejection), filled by the workers that fetched the
#: wheels: one key per wheel, and a dict assignment is atomic.
Reads = dict[str, "WheelMetadata | Rejection"]


def download_all(
    artifacts: Sequence[Artifact],
    folder: Path,
    *,
    cafile: str | None,
    timeout: float,
    advance: Callable[[int], None],
    proxies: fetch.Proxies | None = None,
    min_free_bytes: int | None = None,
    cache: WheelCache | None = None,
    reads: Reads | None = None,
    links: Links | None = None,
    urls: dict[str, str] | None = None,
) -> list[Rejection]:
    """Download every artifact into ``folder`` in parallel, hashing while streaming.

    An artifact without a URL is looked up in ``links`` by the worker that downloads it, so
    downloads start while other pages are still read (:func:`locate` reads them all first);
    ``urls`` receives where each artifact was taken from.

    With ``cache``, a wheel found there (re-hashed as it is copied in) is not downloaded, and a
    wheel downloaded with the list's hash is kept there for the next run. With ``reads``, the
    worker that got a wheel with the list's hash also reads its METADATA into it
    (:func:`read_wheel`), while the other downloads go on.

    ``timeout`` bounds all the downloads together. No download may leave less than
    ``min_free_bytes`` free on ``folder``'s file system (default:
    :func:`fetch.free_space_reserve` of its size): the list carries no sizes, and an index can
    answer a small wheel with an endless body. A file whose sha256 is not the list's is deleted
    and reported (``hash-mismatch``).

    Raises:
        FetchError: a download failed (status, size, free space, deadline, network), or the
            cache folder is unsafe; the others are cancelled and every file is removed.
        KeyboardInterrupt: from the calling thread; every download stops within a fraction of a
            second and every file is removed before it propagates.
    """
    from safepip import parallel  # noqa: PLC0415  (lazy: see the imports)

    deadline = time.monotonic() + timeout

    def one(artifact: Artifact, cancel: threading.Event) -> Rejection | None:
        path = folder / artifact.filename
        if cache is not None and cache.copy_to(artifact.sha256, path):
            advance(1)
            if urls is not None:
                urls[artifact.filename] = cache.path(artifact.sha256).as_uri()
            if reads is not None:
                reads[artifact.filename] = read_wheel(path)
            return None
        url = artifact.url or (links.url(artifact, cancel) if links is not None else "")
        if urls is not None:
            urls[artifact.filename] = url
        with caching(cache, artifact.sha256, reserve=min_free_bytes) as entry:
            digest = fetch.download(
                url,
                path,
                max_bytes=MAX_WHEEL_BYTES,
                timeout=max(0.001, deadline - time.monotonic()),
                cafile=cafile,
                proxies=proxies,
                cancel=cancel,
                min_free_bytes=min_free_bytes,
                copy=entry.write if entry is not None else None,
                make_room=cache.make_room if cache is not None else None,
            )
            if entry is not None:
                entry.commit(digest)  # kept only if digest is its name; pruned once, below
        advance(1)
        if digest == artifact.sha256:
            if reads is not None:
                reads[artifact.filename] = read_wheel(path)
            return None
        path.unlink()
        return Rejection(
            "hash-mismatch",
            artifact.filename,
            f"the index served other bytes (sha256 {digest[:12]}…, the list says "
            f"{artifact.sha256[:12]}…)",
        )

    try:
        results = parallel.run_all(one, artifacts, name="safepip-download")
    except BaseException:
        # Nothing half-downloaded, nor any wheel of an aborted run, stays behind.
        for path in folder.iterdir():
            with contextlib.suppress(OSError):
                path.unlink()
        raise
    finally:
        if cache is not None and artifacts:
            prune(cache)
    return [problem for problem in results if problem is not None]


def from_cache(
    entries: Sequence[hashlist.Entry],
    folder: Path,
    cache: WheelCache | None,
    *,
    reads: Reads | None = None,
) -> dict[str, str]:
    """Copy each entry the cache holds into ``folder`` (made ``0700`` if missing), re-hashed on
    the way; return ``filename → cache URI`` of those copied. A poisoned entry is removed and
    left out: it is downloaded again. With ``reads``, each wheel copied has its METADATA read
    into it (:func:`read_wheel`).

    The copies run in parallel: hashing and copying release the GIL on their 1 MiB chunks, so
    one wheel's METADATA is parsed while others are copied.

    Raises:
        FetchError: the cache is unsafe (symlink, owner, permissions).
        KeyboardInterrupt: from the calling thread, after the copies under way ended.
    """
    if cache is None:
        return {}
    from safepip import parallel  # noqa: PLC0415  (lazy: see the imports)

    folder.mkdir(mode=0o700, exist_ok=True)

    def one(entry: hashlist.Entry, _: threading.Event) -> bool:
        path = folder / entry.filename
        if not cache.copy_to(entry.sha256, path):
            return False
        if reads is not None:
            reads[entry.filename] = read_wheel(path)
        return True

    # A copy is CPU work (a hash), not a wait on the network: one worker per core is enough.
    workers = max(2, min(4, os.cpu_count() or 1))
    copied = parallel.run_all(one, list(entries), workers=workers, name="safepip-cache")
    return {
        e.filename: cache.path(e.sha256).as_uri()
        for e, hit in zip(entries, copied, strict=True)
        if hit
    }


def fetch_vetted(
    entries: Sequence[hashlist.Entry],
    folder: Path,
    *,
    cfg: Config,
    cache: WheelCache | None,
    timeout: float,
    advance: Callable[[int], None],
    log: Callable[[str], None] | None = None,
) -> list[Rejection]:
    """Every listed wheel of ``entries`` into ``folder`` (``0700``): from the cache (re-hashed),
    else located on the index and downloaded (hash-checked while streaming, then cached).

    Raises:
        FetchError: as :func:`locate` and :func:`download_all`; the cache is unsafe.
    """
    unique = list({e.filename: e for e in entries}.values())
    cached = from_cache(unique, folder, cache)
    folder.mkdir(mode=0o700, exist_ok=True)
    advance(len(cached))
    missing = [e for e in unique if e.filename not in cached]
    if not missing:
        return []
    from safepip import sources  # noqa: PLC0415  (lazy: see the imports)

    links = sources.Links(
        [sources.Source(cfg.index())],
        base_dir=cfg.base_dir,
        cafile=cfg.cert,
        proxies=cfg.proxies,
        timeout=lambda: LIST_DEADLINE,
        log=log,
    )
    urls = locate(missing, links)
    artifacts = [
        Artifact(e.name, e.version, e.filename, e.sha256, urls[e.filename]) for e in missing
    ]
    return download_all(
        artifacts,
        folder,
        cafile=cfg.cert,
        timeout=timeout,
        advance=advance,
        proxies=cfg.proxies,
        cache=cache,
    )


def caching(
    cache: WheelCache | None, sha256: str, *, reserve: int | None = None
) -> contextlib.AbstractContextManager[NewEntry | None]:
    """The cache entry a download of ``sha256`` is copied into as it streams
    (:meth:`WheelCache.entry`, keeping the download's free-space ``reserve``), or ``None``
    without a cache.

    Raises:
        FetchError: the cache folder is unsafe.
    """
    return cache.entry(sha256, reserve=reserve) if cache is not None else contextlib.nullcontext()


def prune(cache: WheelCache) -> None:
    """Bring ``cache`` within its cap once, after a batch of downloads (:func:`caching`):
    pruning after each store read the whole cache once per wheel, in every download worker
    (~0.6 s of CPU for 55 wheels). An unprunable cache costs disk space, never this run's
    result."""
    with contextlib.suppress(OSError, FetchError):
        cache.prune()


def read_wheel(path: Path) -> WheelMetadata | Rejection:
    """The METADATA of the hash-checked wheel at ``path``, checked against its filename, or the
    ``metadata-mismatch`` rejection saying why not (:func:`safepip.wheel.read_metadata`)."""
    from safepip.wheel import WheelError, read_metadata  # noqa: PLC0415  (lazy: see the imports)

    try:
        return read_metadata(path)
    except WheelError as exc:
        return Rejection("metadata-mismatch", path.name, str(exc))


def check_wheels(
    artifacts: Sequence[Artifact],
    folder: Path,
    *,
    closure: bool,
    environment: Mapping[str, str],
    reads: Mapping[str, WheelMetadata | Rejection] | None = None,
) -> list[Rejection]:
    """METADATA name and version against each filename, then (``closure``) the dependencies,
    with markers judged in the target's ``environment``.

    ``reads`` holds what the download or cache workers already read (:data:`Reads`); a wheel
    not in it is read now. Either way the verdicts come in the order of ``artifacts``.
    """
    rejections: list[Rejection] = []
    metadata: dict[str, WheelMetadata] = {}
    for artifact in artifacts:
        path = folder / artifact.filename
        if not path.exists():
            continue  # already refused on its hash
        read = reads.get(artifact.filename) if reads is not None else None
        if read is None:
            read = read_wheel(path)
        if isinstance(read, Rejection):
            rejections.append(read)
        else:
            metadata[artifact.name] = read
    if closure and not rejections:
        extras = {a.name: a.extras for a in artifacts}
        rejections.extend(policy.judge_closure(metadata, extras, environment))
    return rejections


def requirements_text(artifacts: Sequence[Artifact]) -> str:
    """The generated requirements file handed to pip: ``name==version --hash=sha256:…``."""
    return "".join(f"{a.name}=={a.version} --hash=sha256:{a.sha256}\n" for a in artifacts)


def judge_names(
    names: Sequence[tuple[str, str | None]], cfg: Config, listed: hashlist.HashList | None
) -> tuple[list[Rejection], list[str]]:
    """The typosquat gate for ``(canonical name, location)`` pairs, per ``cfg.typosquat``.

    Names on the signed list and in ``allow-names`` are never flagged. Returns the rejections
    (mode ``block``) or warnings (mode ``warn``).

    Raises:
        ConfigError: the ``popular-names`` file cannot be read.
    """
    if cfg.typosquat == "off":
        return [], []
    known = set(cfg.allow_names) | (set(listed.names()) if listed is not None else set())
    unknown = [(n, where) for n, where in names if n not in known]
    if not unknown:
        return [], []
    # Lazy, and only past the exit above: a lock file of listed names never loads the index.
    from safepip.typosquat import TyposquatIndex  # noqa: PLC0415

    reference = (
        TyposquatIndex.from_file(cfg.popular_names)
        if cfg.popular_names is not None
        else TyposquatIndex.bundled()
    )
    rejections: list[Rejection] = []
    warnings: list[str] = []
    for name, where in unknown:
        verdict = reference.check(name, known=known)
        if verdict.verdict != "typosquat":
            continue
        message = f"did you mean {verdict.similar_to}? {verdict.reason}"
        if cfg.typosquat == "block":
            rejections.append(Rejection("typosquat", name, message, where))
        else:
            warnings.append(f"{where + ': ' if where else ''}{name}: typosquat: {message}")
    return rejections, warnings


def name_lookalikes(
    rejections: Sequence[Rejection], cfg: Config, listed: hashlist.HashList
) -> tuple[list[Rejection], list[str]]:
    """``rejections`` with each missing dependency that is a lookalike re-labelled ``typosquat``.

    A transitive name is judged after resolution: one on the list is vetted, and one that is not
    is refused anyway, but ``urlib3`` reads better as "did you mean urllib3?" than as a missing
    dependency. Returns the rejections and, in mode ``warn``, the warnings.

    Raises:
        ConfigError: the ``popular-names`` file cannot be read.
    """
    missing = [(r.subject, r.location) for r in rejections if r.code == "dependency-missing"]
    typos, warnings = judge_names(missing, cfg, listed)
    lookalike = {t.subject: t for t in typos}
    relabelled = [
        Rejection(
            "typosquat", r.subject, f"{lookalike[r.subject].message} ({r.message})", r.location
        )
        if r.code == "dependency-missing" and r.subject in lookalike
        else r
        for r in rejections
    ]
    return relabelled, warnings
