"""The pipeline shared by ``verify``, ``check``, ``install`` and ``lock``.

This module sequences the steps of DESIGN.md §5; the decisions themselves live in the pure
modules (:mod:`hashlist`, :mod:`policy`, :mod:`typosquat`) and the IO behind :mod:`fetch`,
:mod:`gpg`, :mod:`state` and :mod:`pip`.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Final

from packaging import tags
from packaging.utils import parse_wheel_filename

from safepip import fetch, gpg, hashlist, policy
from safepip.config import Config
from safepip.errors import FetchError, FreshnessError
from safepip.policy import Rejection
from safepip.requirements import RequirementLine
from safepip.state import TrustState, judge_serial

# `check` and `verify` never download: what only `install` and `lock` need (a thread pool, the
# index page parser, wheel reading, pip) is imported where it is used, keeping their start fast.
if TYPE_CHECKING:
    from safepip.pip import ResolvedArtifact
    from safepip.wheel import WheelMetadata

#: The whole fetch of the list, and of its signature, must finish within this many seconds.
LIST_DEADLINE: Final = 60.0
#: A project page larger than this is refused.
MAX_PAGE_BYTES: Final = 16 * 1024 * 1024


@dataclass(frozen=True)
class TrustedList:
    """A list whose signature, format and freshness were all accepted.

    ``url`` identifies the list (an absolute path for local lists); ``warnings`` are things the
    user must hear about even though the list was accepted (a legacy list, for one).
    """

    url: str
    hashlist: hashlist.HashList
    verification: gpg.Verification
    warnings: tuple[str, ...] = ()

    def describe(self) -> str:
        """One line naming the list: serial, signers and expiry."""
        header = self.hashlist.header
        signers = ", ".join(s[-16:] for s in self.verification.signers)
        serial = "legacy list" if self.hashlist.legacy else f"serial {header.serial}"
        expires = f", expires {header.expires:%Y-%m-%d %H:%M}Z" if header.expires else ""
        return f"{self.url} ({serial}, signed by {signers}{expires})"


def list_identity(cfg: Config) -> str:
    """The stable identity of the configured list: its URL, or its absolute path."""
    source = cfg.list_source()
    if "://" in source:
        return source
    return str((cfg.base_dir / source).resolve())


def load_trusted_list(
    cfg: Config,
    *,
    now: datetime,
    state: TrustState | None,
    log: Callable[[str], None] | None = None,
) -> TrustedList:
    """Fetch, verify, parse and judge the configured list; record its serial in ``state``.

    The signature is checked over the exact bytes fetched, before they are parsed, and those same
    bytes are what is parsed: a file changing on disk afterwards changes nothing. ``state`` is
    ``None`` only where the caller must not record (never to skip the rollback check: then
    ``min-serial`` still applies). ``log`` sees each gpg command line.

    Raises:
        ConfigError: missing pins or unreadable key files (exit 2).
        FetchError, SignatureError, ListFormatError, FreshnessError, StateError: the list is not
            trustworthy or not available (exit 3).
    """
    cfg.require_trust()
    identity = list_identity(cfg)
    data = fetch.fetch_bytes(
        cfg.list_source(),
        base_dir=cfg.base_dir,
        max_bytes=cfg.max_list_bytes,
        timeout=LIST_DEADLINE,
        cafile=cfg.cert,
        proxies=cfg.proxies,
    )
    signature = fetch.fetch_bytes(
        cfg.signature_source(),
        base_dir=cfg.base_dir,
        max_bytes=cfg.max_list_bytes,
        timeout=LIST_DEADLINE,
        cafile=cfg.cert,
        proxies=cfg.proxies,
    )
    verification = gpg.verify(
        data,
        signature,
        key_files=cfg.key_files,
        trusted=cfg.trusted_keys,
        threshold=cfg.threshold,
        source=cfg.signature_source(),
        log=log,
    )
    parsed = hashlist.parse(
        data, require_freshness=cfg.require_freshness, max_bytes=cfg.max_list_bytes
    )
    hashlist.judge_header(
        parsed.header, now=now, max_validity_days=cfg.max_validity_days, legacy=parsed.legacy
    )
    serial = parsed.header.serial
    if serial is None:
        if cfg.min_serial > 0:
            raise FreshnessError(
                f"{identity} has no serial, but min-serial is {cfg.min_serial}",
                hint="a legacy list cannot prove it is not a rollback; publish a format 1 list",
            )
        warning = "legacy list without serial or expiry: rollback and freeze protection is off"
        return TrustedList(identity, parsed, verification, (warning,))
    # The state is keyed by the pinned key set, not by who signed this time: with a threshold
    # below the number of pins, another subset of signers must not open a fresh serial history.
    if state is not None:
        state.accept(identity, cfg.trusted_keys, serial, parsed.sha256, min_serial=cfg.min_serial)
    else:
        judge_serial(
            serial=serial,
            sha256=parsed.sha256,
            previous=None,
            min_serial=cfg.min_serial,
            list_name=identity,
        )
    return TrustedList(identity, parsed, verification)


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


def _best_wheel(entries: Sequence[hashlist.Entry]) -> hashlist.Entry | None:
    """The entry whose tags this interpreter prefers most, as pip would choose."""
    priority = {tag: rank for rank, tag in enumerate(tags.sys_tags())}
    best: tuple[int, hashlist.Entry] | None = None
    for entry in entries:
        _, _, _, wheel_tags = parse_wheel_filename(entry.filename)
        ranks = [priority[t] for t in wheel_tags if t in priority]
        if ranks and (best is None or min(ranks) < best[0]):
            best = (min(ranks), entry)
    return best[1] if best else None


def plan_locked(
    lines: Sequence[RequirementLine], listed: hashlist.HashList
) -> tuple[list[tuple[hashlist.Entry, frozenset[str]]], list[Rejection]]:
    """Choose the listed wheel for each applicable line of a fully locked file (pure).

    Every line is judged (marker or not); only lines whose marker holds here are installed.
    Returns (entry, extras) pairs and the rejections.
    """
    rejections: list[Rejection] = []
    chosen: dict[str, tuple[hashlist.Entry, frozenset[str]]] = {}
    for line in lines:
        problems = policy.judge_lock_line(line, listed)
        rejections.extend(problems)
        marker = line.requirement.marker
        if problems or (marker is not None and not marker.evaluate({"extra": ""})):
            continue
        candidates = [listed.by_sha256(h) for h in line.hashes]
        entry = _best_wheel([c for c in candidates if c is not None])
        if entry is None:
            rejections.append(
                Rejection(
                    "not-in-list",
                    line.name,
                    f"none of the hashed wheels of {line.name} {line.pinned_version} "
                    "fits this interpreter",
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


def locate(
    entries: Sequence[hashlist.Entry],
    *,
    index_url: str,
    cafile: str | None,
    base_dir: Path,
    proxies: fetch.Proxies | None = None,
    log: Callable[[str], None] | None = None,
) -> dict[str, str]:
    """``filename → URL`` of each entry, read from the index's project pages (in parallel).

    Only the links of listed filenames are judged: such a link must follow the fetch rules
    (no ``file://`` from a network page, no ``http://`` off loopback, ``https://`` only from an
    ``https://`` page) or the run is refused; an href that is not a URL at all is skipped, with
    a note to ``log``. A Ctrl-C stops every page fetch at once (see :mod:`safepip.parallel`).

    Raises:
        FetchError: a page cannot be fetched or read, a listed file's link breaks the fetch
            rules, or a page does not offer a listed file.
    """
    from safepip import index, parallel  # noqa: PLC0415  (lazy: see the imports)

    projects = sorted({entry.name for entry in entries})
    wanted = {entry.filename for entry in entries}

    def page(name: str, cancel: threading.Event) -> tuple[str, index.ProjectPage]:
        url = fetch.join_url(index_url, f"{name}/")
        text = fetch.fetch_bytes(
            url,
            base_dir=base_dir,
            max_bytes=MAX_PAGE_BYTES,
            timeout=LIST_DEADLINE,
            cafile=cafile,
            proxies=proxies,
            cancel=cancel,
        ).decode("utf-8", errors="replace")
        return url, index.parse_page(text, url)

    links: dict[str, str] = {}
    for url, found in parallel.run_all(page, projects, name="safepip-index"):
        for href in found.skipped:
            if log is not None:
                log(f"{url}: skipped a link that is not a URL: {href[:200]!r}")
        for filename, link in found.links.items():
            if filename in wanted and filename not in links:
                links[filename] = fetch.join_url(url, link)
    missing = [e.filename for e in entries if e.filename not in links]
    if missing:
        raise FetchError(
            f"the index {index_url} does not offer {missing[0]}"
            + (f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""),
            hint="the index and the list disagree; ask the publisher to republish both",
        )
    return {e.filename: links[e.filename] for e in entries}


def download_all(
    artifacts: Sequence[Artifact],
    folder: Path,
    *,
    cafile: str | None,
    timeout: float,
    advance: Callable[[int], None],
    proxies: fetch.Proxies | None = None,
    min_free_bytes: int | None = None,
) -> list[Rejection]:
    """Download every artifact into ``folder`` in parallel, hashing while streaming.

    ``timeout`` bounds all the downloads together. No download may leave less than
    ``min_free_bytes`` free on ``folder``'s file system (default:
    :func:`fetch.free_space_reserve` of its size): the list carries no sizes, and an index can
    answer a small wheel with an endless body. A file whose sha256 is not the list's is deleted
    and reported (``hash-mismatch``).

    Raises:
        FetchError: a download failed (status, size, free space, deadline, network); the others
            are cancelled and every file is removed.
        KeyboardInterrupt: from the calling thread; every download stops within a fraction of a
            second and every file is removed before it propagates.
    """
    from safepip import parallel  # noqa: PLC0415  (lazy: see the imports)

    deadline = time.monotonic() + timeout

    def one(artifact: Artifact, cancel: threading.Event) -> Rejection | None:
        path = folder / artifact.filename
        digest = fetch.download(
            artifact.url,
            path,
            max_bytes=MAX_WHEEL_BYTES,
            timeout=max(0.001, deadline - time.monotonic()),
            cafile=cafile,
            proxies=proxies,
            cancel=cancel,
            min_free_bytes=min_free_bytes,
        )
        advance(1)
        if digest == artifact.sha256:
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
    return [problem for problem in results if problem is not None]


def check_wheels(artifacts: Sequence[Artifact], folder: Path, *, closure: bool) -> list[Rejection]:
    """METADATA name and version against each filename, then (``closure``) the dependencies."""
    from safepip.wheel import WheelError, read_metadata  # noqa: PLC0415  (lazy: see the imports)

    rejections: list[Rejection] = []
    metadata: dict[str, WheelMetadata] = {}
    for artifact in artifacts:
        path = folder / artifact.filename
        if not path.exists():
            continue  # already refused on its hash
        try:
            metadata[artifact.name] = read_metadata(path)
        except WheelError as exc:
            rejections.append(Rejection("metadata-mismatch", artifact.filename, str(exc)))
    if closure and not rejections:
        extras = {a.name: a.extras for a in artifacts}
        rejections.extend(policy.judge_closure(metadata, extras, {}))
    return rejections


def requirements_text(artifacts: Sequence[Artifact]) -> str:
    """The generated requirements file handed to pip: ``name==version --hash=sha256:…``."""
    return "".join(f"{a.name}=={a.version} --hash=sha256:{a.sha256}\n" for a in artifacts)


def resolved_artifacts(
    resolved: Sequence[ResolvedArtifact], listed: hashlist.HashList
) -> tuple[list[Artifact], list[Rejection]]:
    """Bind pip's resolution to the list: every artifact a listed wheel, by filename (pure)."""
    artifacts: list[Artifact] = []
    rejections: list[Rejection] = []
    for item in resolved:
        problem = policy.judge_artifact(item.filename, listed)
        entry = listed.get(item.filename)
        if problem is not None or entry is None:
            rejections.append(problem or Rejection("not-in-list", item.name, item.filename))
            continue
        if item.sha256 is not None and item.sha256 != entry.sha256:
            rejections.append(
                Rejection(
                    "hash-mismatch",
                    item.filename,
                    "the index announces another sha256 than the list for this file",
                )
            )
            continue
        artifacts.append(
            Artifact(entry.name, entry.version, entry.filename, entry.sha256, item.url)
        )
    return artifacts, rejections


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
