"""requirements/bootstrap.txt stays in step with pyproject.toml, offline.

The file installs safepip's own dependencies with ``pip install --require-hashes`` (the examples
in ``examples/`` do this before safepip can vet anything); ``scripts/update_bootstrap.py``
regenerates it from PyPI. These checks need no network: every runtime dependency of
``pyproject.toml`` is pinned with ``==`` to a version its specifier admits, under the same
marker; every other line is a documented dependency of a pinned project (TRANSITIVE); every line
carries a sha256. ``test_examples.py::test_dockerfile_run_steps`` installs the file for real.
"""

from __future__ import annotations

import re
import sys
from importlib import metadata
from pathlib import Path

import pytest
from packaging.markers import Marker
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

ROOT = Path(__file__).resolve().parent.parent
BOOTSTRAP = ROOT / "requirements" / "bootstrap.txt"

#: Dependencies of the pinned projects, as their wheels' METADATA declares them (Requires-Dist
#: without extras). Update together with the file when scripts/update_bootstrap.py changes it.
TRANSITIVE: dict[str, set[str]] = {
    "rich": {"markdown-it-py", "pygments"},
    "markdown-it-py": {"mdurl"},
}
_HASH = re.compile(r"--hash=sha256:([0-9a-f]{64})")


def _pyproject() -> dict[str, Requirement]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    requirements = [Requirement(line) for line in project["dependencies"]]
    return {canonicalize_name(r.name): r for r in requirements}


def _logical_lines(text: str) -> list[tuple[int, str]]:
    """(first line number, text) of each requirement, continuations joined, comments dropped."""
    lines: list[tuple[int, str]] = []
    buffer, start = "", 0
    for number, raw in enumerate(text.splitlines(), start=1):
        content = raw.split(" #", 1)[0].strip() if not raw.lstrip().startswith("#") else ""
        if not buffer:
            start = number
        if content.endswith("\\"):
            buffer += content[:-1] + " "
            continue
        buffer += content
        if buffer.strip():
            lines.append((start, " ".join(buffer.split())))
        buffer = ""
    assert not buffer.strip(), "the file ends inside a continued line"
    return lines


def _pins() -> dict[str, tuple[Requirement, list[str], int]]:
    """Canonical name → (requirement, sha256 hashes, line number)."""
    pins: dict[str, tuple[Requirement, list[str], int]] = {}
    for number, line in _logical_lines(BOOTSTRAP.read_text(encoding="utf-8")):
        spec = _HASH.sub("", line).strip()
        assert not spec.startswith("-"), f"bootstrap.txt:{number}: option line {line!r}"
        assert "--" not in spec, f"bootstrap.txt:{number}: unexpected option in {line!r}"
        requirement = Requirement(spec)
        name = canonicalize_name(requirement.name)
        assert name not in pins, f"bootstrap.txt:{number}: {name} pinned twice"
        pins[name] = (requirement, _HASH.findall(line), number)
    return pins


def test_file_is_ascii_lf_and_generated() -> None:
    data = BOOTSTRAP.read_bytes()
    assert data.isascii() and b"\r" not in data and data.endswith(b"\n")
    assert "scripts/update_bootstrap.py" in data.decode()


def test_every_line_is_pinned_exactly_and_hashed() -> None:
    for name, (requirement, hashes, number) in _pins().items():
        (specifier, *others) = list(requirement.specifier)
        assert not others and specifier.operator == "==", f"bootstrap.txt:{number}: {name} not =="
        assert "*" not in specifier.version, f"bootstrap.txt:{number}: wildcard pin"
        assert not requirement.extras and requirement.url is None, f"bootstrap.txt:{number}"
        assert hashes, f"bootstrap.txt:{number}: {name} has no --hash=sha256:"
        assert len(set(hashes)) == len(hashes), f"bootstrap.txt:{number}: repeated hash"


def test_pyproject_dependencies_are_pinned_within_their_specifiers() -> None:
    pins = _pins()
    for name, wanted in _pyproject().items():
        assert name in pins, f"{name} (pyproject.toml) is missing from bootstrap.txt"
        requirement, _, number = pins[name]
        version = Version(next(iter(requirement.specifier)).version)
        assert wanted.specifier.contains(version, prereleases=True), (
            f"bootstrap.txt:{number}: {name}=={version} does not satisfy {wanted}"
        )
        assert str(requirement.marker or "") == str(wanted.marker or ""), (
            f"bootstrap.txt:{number}: {name} marker {requirement.marker} != {wanted.marker}"
        )


def test_nothing_but_pyproject_and_documented_transitive_dependencies() -> None:
    direct = set(_pyproject())
    transitive = {dep for parent, deps in TRANSITIVE.items() for dep in deps}
    assert set(TRANSITIVE) <= direct | transitive, "TRANSITIVE names a project nobody pins"
    assert set(_pins()) == direct | transitive


def test_markers_hold_somewhere_supported() -> None:
    """A marker that never holds on a supported Python would make its pin dead weight."""
    for name, (requirement, _, number) in _pins().items():
        if requirement.marker is None:
            continue
        assert any(
            Marker(str(requirement.marker)).evaluate({"python_version": v})
            for v in ("3.10", "3.11", "3.12", "3.13", "3.14")
        ), f"bootstrap.txt:{number}: {name} marker never holds"


def test_transitive_list_matches_installed_metadata() -> None:
    """Where this environment has a pinned project at the pinned version, its own METADATA
    names no dependency that bootstrap.txt lacks (TRANSITIVE is checked against reality)."""
    pins = _pins()
    checked = 0
    for name, (requirement, _, number) in pins.items():
        pinned = next(iter(requirement.specifier)).version
        try:
            distribution = metadata.distribution(name)
        except metadata.PackageNotFoundError:
            continue
        if Version(distribution.version) != Version(pinned):
            continue
        checked += 1
        for line in distribution.requires or []:
            dependency = Requirement(line)
            environment = {"extra": ""}
            if dependency.marker is not None and not dependency.marker.evaluate(environment):
                continue
            dep = canonicalize_name(dependency.name)
            assert dep in pins, f"bootstrap.txt:{number}: {name}=={pinned} needs {dependency}"
            assert dep in TRANSITIVE.get(name, set()) | set(_pyproject()), (
                f"{name} needs {dep}: add it to TRANSITIVE"
            )
    if checked == 0:
        pytest.skip("no pinned project is installed here at its pinned version")
