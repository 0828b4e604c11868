"""The in-process resolver over vetted metadata (pure: METADATA is handed in as data).

The end-to-end proofs (a hostile mirror, a direct-URL dependency, a marker-writing build backend)
are in tests/test_resolve_e2e.py; these pin the decisions: what a candidate is, in which order
versions are tried, markers, extras, Requires-Python, pre-releases and the explanations.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta, timezone

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

from safepip import hashlist, interpreter
from safepip.hashlist import Entry
from safepip.policy import Rejection
from safepip.requirements import RequirementLine
from safepip.resolve import Refused, requested, resolve
from safepip.wheel import WheelMetadata

NOW = datetime(2026, 11, 30, tzinfo=timezone.utc)

#: filename → (Requires-Dist lines, Requires-Python)
Wheels = Mapping[str, tuple[Sequence[str], str | None]]


def listed(wheels: Wheels) -> hashlist.HashList:
    files = {name: hashlib.sha256(name.encode()).hexdigest() for name in wheels}
    data = hashlist.serialise(files, serial=1, issued=NOW, expires=NOW + timedelta(days=1))
    return hashlist.parse(data)


class Metadata:
    """The ``metadata`` callback: METADATA from a table; remembers what was asked."""

    def __init__(self, wheels: Wheels) -> None:
        self.wheels = wheels
        self.read: list[str] = []
        self.prefetched: list[str] = []

    def __call__(self, entry: Entry) -> WheelMetadata:
        self.read.append(entry.filename)
        requires, requires_python = self.wheels[entry.filename]
        return WheelMetadata(
            entry.name,
            Version(entry.version),
            tuple(Requirement(r) for r in requires),
            requires_python,
            (),
        )

    def prefetch(self, entries: Sequence[Entry]) -> None:
        self.prefetched.extend(e.filename for e in entries)


def lines(*specs: str) -> list[RequirementLine]:
    return [
        RequirementLine(Requirement(s), canonicalize_name(Requirement(s).name), (), f"r.txt:{i}")
        for i, s in enumerate(specs, 1)
    ]


def run(
    wheels: Wheels, *specs: str, target: interpreter.TargetEnvironment | None = None
) -> tuple[list[str], list[Rejection], Metadata]:
    target = target or interpreter.running()
    metadata = Metadata(wheels)
    resolution, rejections = resolve(
        requested(lines(*specs), target),
        listed(wheels),
        target,
        metadata=metadata,
        prefetch=metadata.prefetch,
    )
    chosen = [e.filename for e, _ in resolution.chosen] if resolution else []
    return chosen, rejections, metadata


def test_newest_listed_version_and_its_dependencies() -> None:
    chosen, rejections, _ = run(
        {
            "alpha-1.0-py3-none-any.whl": (["beta>=2"], None),
            "alpha-1.1-py3-none-any.whl": (["beta>=2"], None),
            "beta-1.0-py3-none-any.whl": ([], None),
            "beta-2.0-py3-none-any.whl": ([], None),
        },
        "alpha",
    )
    assert rejections == []
    assert chosen == ["alpha-1.1-py3-none-any.whl", "beta-2.0-py3-none-any.whl"]


def test_backtracks_to_an_older_version_when_the_newest_conflicts() -> None:
    chosen, rejections, _ = run(
        {
            "alpha-2.0-py3-none-any.whl": (["beta>=3"], None),
            "alpha-1.0-py3-none-any.whl": (["beta>=2"], None),
            "beta-2.0-py3-none-any.whl": ([], None),
        },
        "alpha",
    )
    assert rejections == []
    assert chosen == ["alpha-1.0-py3-none-any.whl", "beta-2.0-py3-none-any.whl"]


def test_requires_python_passes_a_version_over() -> None:
    chosen, rejections, _ = run(
        {
            "alpha-2.0-py3-none-any.whl": ([], ">=4"),
            "alpha-1.0-py3-none-any.whl": ([], ">=3.8"),
        },
        "alpha",
    )
    assert rejections == []
    assert chosen == ["alpha-1.0-py3-none-any.whl"]


def test_nothing_fits_says_why_each_version_was_passed_over() -> None:
    chosen, rejections, _ = run({"alpha-2.0-py3-none-any.whl": ([], ">=4")}, "alpha")
    assert chosen == []
    [rejection] = rejections
    assert (rejection.code, rejection.subject, rejection.location) == (
        "not-in-list",
        "alpha",
        "r.txt:1",
    )
    assert "Requires-Python >=4" in rejection.message


def test_markers_are_judged_for_the_target() -> None:
    wheels = {
        "alpha-1.0-py3-none-any.whl": (
            ['beta; sys_platform == "win32"', 'gamma; python_version >= "3"'],
            None,
        ),
        "gamma-1.0-py3-none-any.whl": ([], None),
    }
    chosen, rejections, _ = run(wheels, "alpha")
    assert rejections == []
    assert chosen == ["alpha-1.0-py3-none-any.whl", "gamma-1.0-py3-none-any.whl"]
    # The same wheels for a Windows target need beta, which is not listed.
    here = interpreter.running()
    windows = interpreter.TargetEnvironment(
        "C:/python.exe", here.tags, {**here.markers, "sys_platform": "win32"}
    )
    _, rejections, _ = run(wheels, "alpha", target=windows)
    assert [(r.code, r.subject) for r in rejections] == [("dependency-missing", "beta")]
    assert "needed by alpha 1.0" in rejections[0].message
    assert "no wheel of beta is on the list" in rejections[0].message


def test_extras_add_their_dependencies_only_when_asked() -> None:
    wheels = {
        "delta-1.0-py3-none-any.whl": (['gamma; extra == "fast"'], None),
        "gamma-1.0-py3-none-any.whl": ([], None),
    }
    assert run(wheels, "delta")[0] == ["delta-1.0-py3-none-any.whl"]
    chosen, rejections, metadata = run(wheels, "delta[fast]")
    assert rejections == []
    assert chosen == ["delta-1.0-py3-none-any.whl", "gamma-1.0-py3-none-any.whl"]
    assert metadata.read.count("delta-1.0-py3-none-any.whl") >= 1


def test_pre_releases_only_when_named_or_nothing_else() -> None:
    wheels = {
        "alpha-1.0-py3-none-any.whl": ([], None),
        "alpha-2.0b1-py3-none-any.whl": ([], None),
    }
    assert run(wheels, "alpha")[0] == ["alpha-1.0-py3-none-any.whl"]
    assert run(wheels, "alpha>=2.0b1")[0] == ["alpha-2.0b1-py3-none-any.whl"]
    assert run({"alpha-2.0b1-py3-none-any.whl": ([], None)}, "alpha")[0] == [
        "alpha-2.0b1-py3-none-any.whl"
    ]


def test_only_wheels_for_the_target_are_candidates() -> None:
    wheels = {
        "alpha-2.0-cp27-cp27m-win32.whl": ([], None),
        "alpha-1.0-py3-none-any.whl": ([], None),
    }
    chosen, _, metadata = run(wheels, "alpha")
    assert chosen == ["alpha-1.0-py3-none-any.whl"]
    assert "alpha-2.0-cp27-cp27m-win32.whl" not in metadata.read + metadata.prefetched


def test_a_direct_url_dependency_is_refused_before_anything_follows_it() -> None:
    wheels = {"alpha-1.0-py3-none-any.whl": (["evil @ https://attacker.example/evil.tar.gz"], None)}
    with pytest.raises(Refused) as info:
        run(wheels, "alpha")
    rejection = info.value.rejection
    assert (rejection.code, rejection.subject) == ("unsupported", "alpha-1.0-py3-none-any.whl")
    assert "evil @ https://attacker.example/evil.tar.gz" in rejection.message


def test_conflicting_requests_name_both_sides() -> None:
    wheels = {
        "alpha-1.0-py3-none-any.whl": (["beta<2"], None),
        "beta-2.0-py3-none-any.whl": ([], None),
    }
    chosen, rejections, _ = run(wheels, "alpha", "beta>=2")
    assert chosen == []
    assert {r.subject for r in rejections} == {"beta"}
    assert "needed by alpha 1.0" in rejections[0].message
    assert "needed by r.txt:2" in rejections[0].message


def test_likely_wheels_are_prefetched_and_unlikely_ones_never_read() -> None:
    wheels = {
        "alpha-1.0-py3-none-any.whl": (["beta"], None),
        "beta-1.0-py3-none-any.whl": ([], None),
        "beta-2.0-py3-none-any.whl": ([], None),
    }
    chosen, _, metadata = run(wheels, "alpha")
    assert chosen == ["alpha-1.0-py3-none-any.whl", "beta-2.0-py3-none-any.whl"]
    assert "beta-2.0-py3-none-any.whl" in metadata.prefetched
    assert "beta-1.0-py3-none-any.whl" not in metadata.read
