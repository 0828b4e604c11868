"""Resolution over vetted metadata only: which listed wheels a set of requirements needs.

This replaces a pip ``--dry-run`` resolver pass, which read METADATA from whatever bytes the index
served and could follow a direct-URL dependency into an sdist's build backend before safepip
judged anything. Here the candidates are the list's own wheels (never the index's pages), and a
candidate's dependencies are read from the METADATA of that wheel after safepip downloaded it and
checked its sha256 against the list. The search itself is resolvelib's, the library pip's own
resolver is built on; this module is the provider that tells it what exists.

Decision logic only: the caller hands in ``metadata`` (the vetted METADATA of a listed wheel) and
``prefetch`` (a hint that some wheels will likely be needed, so their downloads can start early).
Either may raise :class:`Refused`, which ends the resolution with that rejection.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, Protocol

from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion, Version
from resolvelib import AbstractProvider, BaseReporter, Resolver
from resolvelib.resolvers import ResolutionImpossible, ResolutionTooDeep

from safepip.hashlist import Entry
from safepip.interpreter import TargetEnvironment, best_wheel
from safepip.policy import Rejection
from safepip.requirements import RequirementLine
from safepip.wheel import WheelMetadata

#: resolvelib's bound on resolution rounds (pip uses 200,000; vetted lists are far smaller).
MAX_ROUNDS: Final = 20_000


class Catalog(Protocol):
    """What the resolver asks of a list: every entry of one project (a :class:`HashList` is
    one; so is a build-dependency pool, or an index read page by page)."""

    def for_project(self, name: str) -> tuple[Entry, ...]: ...


@dataclass(frozen=True)
class Entries:
    """A :class:`Catalog` over the ``entries`` given (an empty pool, say)."""

    entries: tuple[Entry, ...] = ()

    def for_project(self, name: str) -> tuple[Entry, ...]:
        wanted = canonicalize_name(name)
        return tuple(e for e in self.entries if e.name == wanted)


class Refused(Exception):
    """Resolution cannot go on without trusting something it must not: ``rejection`` says what."""

    def __init__(self, rejection: Rejection) -> None:
        super().__init__(rejection.message)
        self.rejection = rejection


@dataclass(frozen=True)
class Need:
    """A requirement on a project: canonical ``name``, ``specifier``, ``extras``; ``origin``
    names who asked (``file:line``, or ``alpha 1.0``) for messages."""

    name: str
    specifier: SpecifierSet
    extras: frozenset[str]
    origin: str

    def describe(self) -> str:
        extras = f"[{','.join(sorted(self.extras))}]" if self.extras else ""
        return f"{self.name}{extras}{self.specifier}"


@dataclass(frozen=True)
class Candidate:
    """One listed wheel of ``name`` at ``version``, the best fit for the target among that
    version's wheels; with ``extras``, the same wheel asked for with those extras."""

    name: str
    version: Version
    entry: Entry
    extras: frozenset[str] = frozenset()


@dataclass(frozen=True)
class Resolution:
    """What to install: each chosen listed wheel with the extras asked of it."""

    chosen: tuple[tuple[Entry, frozenset[str]], ...]


def _identify(name: str, extras: frozenset[str]) -> str:
    return f"{name}[{','.join(sorted(extras))}]" if extras else name


@dataclass
class _Provider(AbstractProvider[Need, Candidate, str]):
    listed: Catalog
    target: TargetEnvironment
    metadata: Callable[[Entry], WheelMetadata]
    prefetch: Callable[[Sequence[Entry]], None]
    pre: bool
    #: Constraints (``-c``): they narrow a project's versions without asking for it.
    constraints: Mapping[str, SpecifierSet] = field(default_factory=dict)
    #: False with ``--no-deps``: only what was asked for, no dependency.
    deps: bool = True
    #: Why a listed version was passed over, by project: told when nothing else fits.
    skipped: dict[str, list[str]] = field(default_factory=dict)
    _versions: dict[str, list[tuple[Version, Entry]]] = field(default_factory=dict)

    # --- what exists ------------------------------------------------------------------------

    def versions(self, name: str) -> list[tuple[Version, Entry]]:
        """Each listed version of ``name`` that has a wheel fitting the target, newest first,
        with that wheel (the one the target prefers most)."""
        if name not in self._versions:
            by_version: dict[Version, list[Entry]] = {}
            for entry in self.listed.for_project(name):
                if entry.kind != "wheel":
                    continue
                try:
                    version = Version(entry.version)
                except InvalidVersion:
                    continue
                by_version.setdefault(version, []).append(entry)
            found: list[tuple[Version, Entry]] = []
            for version in sorted(by_version, reverse=True):
                entries = {e.filename: e for e in by_version[version]}
                best = best_wheel(sorted(entries), self.target)
                if best is None:
                    self.skipped.setdefault(name, []).append(
                        f"{version}: no wheel for this interpreter"
                    )
                else:
                    found.append((version, entries[best]))
            self._versions[name] = found
        return self._versions[name]

    def allowed(self, name: str, needs: Sequence[Need]) -> list[tuple[Version, Entry]]:
        """The versions every need admits, newest first (PEP 440 pre-release rules)."""
        specifier = SpecifierSet(str(self.constraints.get(name, "")))
        for need in needs:
            specifier &= need.specifier
        available = self.versions(name)
        versions = [v for v, _ in available]
        keep = set(specifier.filter(versions, prereleases=True if self.pre else None))
        return [(v, e) for v, e in available if v in keep]

    # --- resolvelib's interface -------------------------------------------------------------

    def identify(self, requirement_or_candidate: Need | Candidate) -> str:
        return _identify(requirement_or_candidate.name, requirement_or_candidate.extras)

    def get_preference(
        self,
        identifier: str,
        resolutions: Mapping[str, Candidate],
        candidates: Mapping[str, Iterator[Candidate]],
        information: Mapping[str, Iterator[Any]],
        backtrack_causes: Sequence[Any],
    ) -> Any:
        # Exact pins first (they cannot move), then the rest by name for a stable order. The
        # candidate iterators are left alone: walking them would download wheels.
        pinned = any(
            spec.operator in ("==", "===")
            for info in information[identifier]
            for spec in info.requirement.specifier
        )
        return (not pinned, identifier)

    def find_matches(
        self,
        identifier: str,
        requirements: Mapping[str, Iterator[Need]],
        incompatibilities: Mapping[str, Iterator[Candidate]],
    ) -> Callable[[], Iterator[Candidate]]:
        needs = list(requirements[identifier])
        name = needs[0].name
        extras = needs[0].extras
        excluded = {c.version for c in incompatibilities[identifier]}
        allowed = [(v, e) for v, e in self.allowed(name, needs) if v not in excluded]

        def candidates() -> Iterator[Candidate]:
            # Lazy: resolvelib asks for the next candidate only when the previous one failed, and
            # judging Requires-Python needs the wheel itself.
            for version, entry in allowed:
                requires_python = self.metadata(entry).requires_python
                if not self.target.accepts_python(requires_python):
                    self.skipped.setdefault(name, []).append(
                        f"{version}: Requires-Python {requires_python}"
                    )
                    continue
                yield Candidate(name, version, entry, extras)

        return candidates

    def is_satisfied_by(self, requirement: Need, candidate: Candidate) -> bool:
        return requirement.specifier.contains(candidate.version, prereleases=True)

    def get_dependencies(self, candidate: Candidate) -> Iterable[Need]:
        if not self.deps:
            return []
        metadata = self.metadata(candidate.entry)
        origin = f"{candidate.name} {candidate.version}"
        needs: list[Need] = []
        if candidate.extras:
            # name[extra] is the wheel of name itself plus what the extras add.
            needs.append(
                Need(candidate.name, SpecifierSet(f"=={candidate.version}"), frozenset(), origin)
            )
        for requirement in metadata.requires_dist:
            if requirement.url:
                raise Refused(
                    Rejection(
                        "unsupported",
                        candidate.entry.filename,
                        f"declares the direct-URL dependency `{requirement}`: safepip never "
                        "follows one (it would fetch and build what no list vouches for)",
                    )
                )
            if _applies(requirement, candidate.extras, self.target.markers):
                needs.append(_need(requirement, origin))
        self.prefetch(self._likely([n for n in needs if n.name != candidate.name]))
        return needs

    def _likely(self, needs: Sequence[Need]) -> list[Entry]:
        """The wheel each need will most likely resolve to: its newest admitted version."""
        likely = []
        for need in needs:
            allowed = self.allowed(need.name, [need])
            if allowed:
                likely.append(allowed[0][1])
        return likely


def _applies(
    requirement: Requirement, extras: frozenset[str], environment: Mapping[str, str]
) -> bool:
    """Whether a Requires-Dist line holds for the target, with the extras asked of the wheel.

    Without extras only lines whose marker holds for ``extra == ""`` count; with extras, the
    lines an extra adds (the base lines come through the ``name==version`` need).
    """
    marker = requirement.marker
    if not extras:
        return marker is None or marker.evaluate({**environment, "extra": ""})
    if marker is None:
        return False
    return any(marker.evaluate({**environment, "extra": extra}) for extra in sorted(extras)) and (
        not marker.evaluate({**environment, "extra": ""})
    )


def _need(requirement: Requirement, origin: str) -> Need:
    return Need(
        canonicalize_name(requirement.name),
        requirement.specifier,
        frozenset(canonicalize_name(e) for e in requirement.extras),
        origin,
    )


def requested(lines: Sequence[RequirementLine], target: TargetEnvironment) -> list[Need]:
    """The needs of requirement lines whose marker holds for ``target`` (pure)."""
    needs = []
    for line in lines:
        if line.applies(target.markers):
            needs.append(_need(line.requirement, line.location))
    return needs


def resolve(
    needs: Sequence[Need],
    listed: Catalog,
    target: TargetEnvironment,
    *,
    metadata: Callable[[Entry], WheelMetadata],
    prefetch: Callable[[Sequence[Entry]], None],
    pre: bool = False,
    constraints: Mapping[str, SpecifierSet] | None = None,
    deps: bool = True,
) -> tuple[Resolution | None, list[Rejection]]:
    """Choose one listed wheel per project so that every need and dependency is met.

    Candidates are the listed wheels that fit ``target``, newest first (pip's order); a version
    whose ``Requires-Python`` excludes the target is passed over; ``constraints`` narrow the
    versions of the projects they name (``-c``); ``pre`` admits pre-releases (``--pre``);
    without ``deps`` no dependency is followed (``--no-deps``). Returns the resolution, or
    ``None`` and every rejection that explains why there is none.

    Raises:
        Refused: ``metadata`` or ``prefetch`` refused a wheel, or a vetted wheel declares a
            direct-URL dependency.
    """
    provider = _Provider(listed, target, metadata, prefetch, pre, dict(constraints or {}), deps)
    prefetch(provider._likely(needs))
    resolver: Resolver[Need, Candidate, str] = Resolver(provider, BaseReporter())
    try:
        result = resolver.resolve(needs, max_rounds=MAX_ROUNDS)
    except ResolutionImpossible as exc:
        return None, _explain(list(exc.causes), provider)
    except ResolutionTooDeep:
        return None, [
            Rejection(
                "dependency-missing",
                "*",
                f"no resolution found within {MAX_ROUNDS} rounds; pin versions in a lock file",
            )
        ]
    chosen: dict[str, tuple[Entry, frozenset[str]]] = {}
    for candidate in result.mapping.values():
        entry, extras = chosen.get(candidate.name, (candidate.entry, frozenset()))
        chosen[candidate.name] = (entry, extras | candidate.extras)
    return Resolution(tuple(chosen[name] for name in sorted(chosen))), []


def _explain(causes: Sequence[Any], provider: _Provider) -> list[Rejection]:
    """One rejection per project that nothing listed can satisfy, naming who needs what."""
    by_name: dict[str, list[Any]] = {}
    for cause in causes:
        by_name.setdefault(cause.requirement.name, []).append(cause)
    rejections = []
    for name, found in sorted(by_name.items()):
        wanted = "; ".join(
            sorted(
                {f"{c.requirement.describe()} (needed by {c.requirement.origin})" for c in found}
            )
        )
        if not any(e.kind == "wheel" for e in provider.listed.for_project(name)):
            code, message = "dependency-missing", f"{wanted}: no wheel of {name} is on the list"
        else:
            listed = ", ".join(str(v) for v, _ in provider.versions(name)) or "none"
            why = "; ".join(provider.skipped.get(name, ()))
            code = "dependency-missing" if all(c.parent for c in found) else "not-in-list"
            message = f"{wanted}: no listed wheel fits (listed for this interpreter: {listed})"
            if name in provider.constraints:
                message += f"; constrained to {name}{provider.constraints[name]} (-c)"
            if why:
                message += f"; passed over: {why}"
        location = next((c.requirement.origin for c in found if c.parent is None), None)
        rejections.append(Rejection(code, name, message, location))
    return rejections
