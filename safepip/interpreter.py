"""The interpreter that receives an install: which wheel tags it takes and how it judges markers.

safepip resolves and chooses wheels itself (no pip resolver pass), so it needs, for the target
interpreter of ``--python``, what pip would compute there: the ordered list of supported wheel
tags and the PEP 508 marker environment. For safepip's own interpreter they are computed here;
for another one the target itself computes them, with ``packaging`` (safepip's own copy, pure
Python) put on its path, run as ``python -I -S``: no ``site``, so none of the target's ``.pth``
files or ``sitecustomize`` runs.
"""

from __future__ import annotations

import functools
import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import packaging
from packaging import tags
from packaging.markers import default_environment
from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.version import Version

from safepip.errors import UsageError

#: How long the target may take to describe itself.
_PROBE_TIMEOUT: Final = 60.0

# Run by the target: its tags (most preferred first) and marker environment, as JSON.
_PROBE: Final = (
    "import json, sys; sys.path.insert(0, sys.argv[1]);"
    "from packaging import tags, markers;"
    "print(json.dumps({'tags': [str(t) for t in tags.sys_tags()],"
    " 'markers': markers.default_environment()}))"
)


@dataclass(frozen=True)
class TargetEnvironment:
    """What decides, for one interpreter, which wheel fits and which dependency applies.

    ``tags`` are the supported wheel tags, most preferred first (as ``packaging.tags.sys_tags``
    orders them); ``markers`` the PEP 508 environment; ``python`` names the interpreter.
    """

    python: str
    tags: tuple[str, ...]
    markers: Mapping[str, str]

    def tag_rank(self) -> dict[str, int]:
        """``tag → rank`` (0 is best) for choosing among the wheels of one version."""
        return {tag: rank for rank, tag in enumerate(self.tags)}

    def python_version(self) -> Version:
        """The full Python version, for ``Requires-Python``."""
        return Version(self.markers["python_full_version"])

    def accepts_python(self, requires_python: str | None) -> bool:
        """Whether ``Requires-Python`` admits this interpreter (an unparsable value does not)."""
        if not requires_python:
            return True
        try:
            return SpecifierSet(requires_python).contains(self.python_version(), prereleases=True)
        except InvalidSpecifier:
            return False


def running() -> TargetEnvironment:
    """The environment of the interpreter running safepip."""
    return TargetEnvironment(
        sys.executable,
        tuple(str(t) for t in tags.sys_tags()),
        {key: str(value) for key, value in default_environment().items()},
    )


@functools.lru_cache(maxsize=8)
def describe(python: str | None) -> TargetEnvironment:
    """The environment of ``python`` (``None``: the running interpreter).

    Raises:
        UsageError: ``python`` cannot be run, or does not answer with its tags and markers.
    """
    if python is None or _same_file(python, sys.executable):
        return running()
    library = Path(packaging.__file__).parent
    with tempfile.TemporaryDirectory(prefix="safepip-probe-") as scratch:
        # Only `packaging` is put on the target's path, not safepip's whole site-packages.
        (Path(scratch) / "packaging").symlink_to(library, target_is_directory=True)
        try:
            result = subprocess.run(
                [python, "-I", "-S", "-c", _PROBE, scratch],
                capture_output=True,
                text=True,
                timeout=_PROBE_TIMEOUT,
                check=False,
                env=_probe_environment(),
            )
        except (OSError, subprocess.SubprocessError) as exc:
            raise UsageError(
                f"--python {python}: cannot run it ({exc})",
                hint="pass the path of a Python interpreter, for example .venv/bin/python",
            ) from exc
    try:
        answer = json.loads(result.stdout)
        found = tuple(str(t) for t in answer["tags"])
        markers = {str(k): str(v) for k, v in answer["markers"].items()}
    except (ValueError, KeyError, TypeError, AttributeError):
        detail = (result.stderr.strip().splitlines() or ["no answer"])[-1]
        raise UsageError(
            f"--python {python}: it did not describe its wheel tags ({detail})",
            hint="pass a CPython or PyPy 3.8 or newer",
        ) from None
    return TargetEnvironment(python, found, markers)


def _same_file(a: str, b: str) -> bool:
    # A venv's python is a link to its base interpreter; tags and markers depend on the binary
    # alone, so every venv of the interpreter running safepip shares its environment.
    try:
        return Path(a).resolve() == Path(b).resolve()
    except OSError:
        return False


def _probe_environment() -> dict[str, str]:
    # -I already ignores PYTHON* variables; nothing else of ours is needed by the probe.
    return {k: v for k, v in os.environ.items() if not k.upper().startswith("PYTHON")}


def best_wheel(filenames: Sequence[str], target: TargetEnvironment) -> str | None:
    """The filename whose tags ``target`` prefers most, as pip chooses; ``None`` if none fits."""
    from packaging.utils import parse_wheel_filename  # noqa: PLC0415

    rank = target.tag_rank()
    best: tuple[int, str] | None = None
    for filename in filenames:
        _, _, _, wheel_tags = parse_wheel_filename(filename)
        ranks = [rank[str(t)] for t in wheel_tags if str(t) in rank]
        if ranks and (best is None or min(ranks) < best[0]):
            best = (min(ranks), filename)
    return best[1] if best else None
