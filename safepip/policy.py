"""Problems found while vetting, as data: every one is reported, and any one refuses (exit 1)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final

if TYPE_CHECKING:
    from safepip.hashlist import HashList
    from safepip.requirements import RequirementLine
    from safepip.wheel import WheelMetadata

#: The stable ``code`` values of DESIGN.md §4, shown in text output and in JSON ``rejected``.
REJECTION_CODES: Final = frozenset(
    {
        "not-in-list",
        "hash-not-in-list",
        "hash-binding",
        "hash-mismatch",
        "metadata-mismatch",
        "not-pinned",
        "no-hash",
        "unsupported",
        "typosquat",
        "dependency-missing",
        "sdist",
    }
)


@dataclass(frozen=True)
class Rejection:
    """One reason to refuse.

    ``subject`` names what is refused (an artifact filename or a project name); ``location`` is
    ``file:line`` when the problem comes from a requirements file, else ``None``.
    """

    code: str
    subject: str
    message: str
    location: str | None = None

    def __post_init__(self) -> None:
        if self.code not in REJECTION_CODES:
            raise ValueError(f"unknown rejection code {self.code!r}")


def judge_lock_line(line: RequirementLine, listed: HashList) -> list[Rejection]:
    """Every reason a lock-file line is not vetted (pure): pinned, hashed, each hash bound.

    Bound means: the hash is on the list, and the listed file it belongs to is a wheel of this
    line's project at exactly this line's pinned version. Markers are not evaluated: a branch for
    another platform must be just as vetted, or a lock file could hide an unlisted pin there.
    The listed sdist of that same version may stand beside a bound wheel (pip-compile, uv and
    PEP 751 lock files name every file of a version): the list vouches for it, and safepip
    never installs it; a line whose only listed file is the sdist is refused (``sdist``).
    """
    from packaging.version import Version  # noqa: PLC0415  (lazy: `verify` needs no packaging)

    where, name = line.location, line.name
    rejections: list[Rejection] = []
    pinned = line.pinned_version
    if pinned is None:
        rejections.append(
            Rejection("not-pinned", name, f"{line.requirement} is not pinned with ==", where)
        )
    if not line.hashes:
        rejections.append(Rejection("no-hash", name, "no --hash=sha256:… option", where))
    if not listed.for_project(name):
        rejections.append(Rejection("not-in-list", name, f"{name} is not on the list", where))
        return rejections
    sdists: list[Rejection] = []
    wheels = 0
    for digest in line.hashes:
        entry = listed.by_sha256(digest)
        short = f"sha256:{digest[:12]}…"
        if entry is None:
            rejections.append(
                Rejection("hash-not-in-list", name, f"{short} is not on the list", where)
            )
        elif entry.name != name or (pinned is not None and Version(entry.version) != pinned):
            rejections.append(
                Rejection("hash-binding", name, f"{short} belongs to {entry.filename}", where)
            )
        elif entry.kind == "sdist":
            sdists.append(Rejection("sdist", name, f"{short} is the sdist {entry.filename}", where))
        else:
            wheels += 1
    return rejections + (sdists if not wheels else [])


def judge_request(
    lines: Sequence[RequirementLine], listed: HashList, *, locked: bool
) -> list[Rejection]:
    """Everything that can be judged before any request reaches the index (pure).

    A fully ``locked`` file: every line bound by its hashes. Otherwise: pip's hash-checking mode
    (one hashed line makes every line need ``==`` and hashes), every hash given still judged,
    and each requested project must have a listed wheel.
    """
    rejections: list[Rejection] = []
    if locked:
        for line in lines:
            rejections.extend(judge_lock_line(line, listed))
        return rejections
    rejections.extend(judge_hash_mode(lines))
    for line in lines:
        if line.hashes:  # a hash given is a hash judged, whatever the other lines say
            rejections.extend(judge_lock_line(line, listed))
    rejections.extend(judge_requested(lines, listed))
    return rejections


def judge_hash_mode(lines: Sequence[RequirementLine]) -> list[Rejection]:
    """Once one line carries ``--hash``, every line must be pinned and hashed (pure).

    That is pip's hash-checking mode: a file that hashes some lines and leaves others loose is
    refused, never resolved with its hashes dropped.
    """
    if not any(line.hashes for line in lines):
        return []
    rejections = []
    for line in lines:
        if line.pinned_version is None:
            rejections.append(
                Rejection(
                    "not-pinned",
                    line.name,
                    f"{line.requirement} is not pinned with ==, and other lines carry --hash "
                    "(hash-checking mode needs every line pinned and hashed)",
                    line.location,
                )
            )
        elif not line.hashes:
            rejections.append(
                Rejection(
                    "no-hash",
                    line.name,
                    "no --hash=sha256:… option, and other lines carry one (hash-checking mode "
                    "needs every line pinned and hashed)",
                    line.location,
                )
            )
    return rejections


def judge_requested(lines: Sequence[RequirementLine], listed: HashList) -> list[Rejection]:
    """Refuse requested projects the list has no wheel for, before any index request (pure)."""
    rejections: list[Rejection] = []
    for line in lines:
        entries = listed.for_project(line.name)
        if not entries:
            message = f"{line.name} is not on the list"
            rejections.append(Rejection("not-in-list", line.name, message, line.location))
        elif all(entry.kind == "sdist" for entry in entries):
            message = f"{line.name} has no vetted wheel, only an sdist (safepip never builds)"
            rejections.append(Rejection("sdist", line.name, message, line.location))
    return rejections


def judge_closure(
    wheels: Mapping[str, WheelMetadata],
    extras: Mapping[str, frozenset[str]],
    environment: Mapping[str, str],
) -> list[Rejection]:
    """Refuse any dependency of the vetted wheels that the vetted set does not satisfy (pure).

    ``wheels`` maps canonical name → METADATA of the wheel to install; ``extras`` the extras
    requested for each name (extras pull in dependencies too); ``environment`` is the marker
    environment of the target interpreter.
    """
    from packaging.utils import canonicalize_name  # noqa: PLC0415  (lazy: as judge_lock_line)

    rejections: list[Rejection] = []
    for name, metadata in sorted(wheels.items()):
        wanted = extras.get(name, frozenset())
        for requirement in metadata.requires_dist:
            if requirement.url:
                # Never followed (pip runs with --no-deps), but a signed wheel that points at
                # bytes no list vouches for is not one to install either.
                rejections.append(
                    Rejection(
                        "unsupported",
                        name,
                        f"{name} {metadata.version} declares the direct-URL dependency "
                        f"`{requirement}`: safepip never follows one",
                    )
                )
                continue
            if requirement.marker is not None and not any(
                requirement.marker.evaluate({**environment, "extra": extra})
                for extra in (*sorted(wanted), "")
            ):
                continue
            dependency = canonicalize_name(requirement.name)
            present = wheels.get(dependency)
            if present is None:
                rejections.append(
                    Rejection(
                        "dependency-missing",
                        dependency,
                        f"{name} {metadata.version} needs {requirement}, which is not in the "
                        "vetted set",
                    )
                )
            elif not requirement.specifier.contains(present.version, prereleases=True):
                rejections.append(
                    Rejection(
                        "dependency-missing",
                        dependency,
                        f"{name} {metadata.version} needs {requirement}, but {dependency} "
                        f"{present.version} is the vetted version",
                    )
                )
    return rejections
