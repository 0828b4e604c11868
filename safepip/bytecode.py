"""Byte-compilation of the distributions pip just installed, on every core.

pip byte-compiles what it installs one file at a time: on a typical web application's closure
that is about half of its install time. safepip therefore runs pip with ``--no-compile``
(:func:`safepip.pip.install`) and compiles here instead, in parallel, to pip's end state:

- the same ``.pyc`` files: ``compileall.compile_file(path, force=True)`` run by the *target*
  interpreter (``.pyc`` files are version-specific), with its default optimisation level and
  invalidation mode and warnings ignored, for every installed ``.py`` file, from the same path
  string pip would pass; a file that does not compile (Python 2 syntax, say) is skipped silently;
- recorded as pip records them: a row ``path,,`` in the distribution's ``RECORD`` (path relative
  to the folder holding the ``.dist-info``), rows sorted, so ``pip uninstall`` removes them.

The work runs in the target interpreter as ``python -I -W ignore -c <_bytecode_script.py>`` (not
``-S``: a venv's ``sys.prefix``, hence its site-packages, is set up by ``site``), with the
environment pip itself gets (:func:`safepip.pip.scrubbed_environment`: ``SOURCE_DATE_EPOCH``, which
selects hash-based ``.pyc`` files, reaches it as it reaches pip). Distributions are named by the
``.dist-info`` folder of the vetted wheel pip installed, so exactly those are compiled.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from safepip import process
from safepip.errors import BytecodeError
from safepip.pip import scrubbed_environment
from safepip.wheel import WheelError, dist_info_folder

__all__ = ["Compiled", "compile_installed"]

_SCRIPT = "_bytecode_script.py"


@dataclass(frozen=True)
class Compiled:
    """What :func:`compile_installed` did: distributions, ``.py`` files seen, ``.pyc`` written."""

    distributions: int
    sources: int
    compiled: int


def compile_installed(
    wheels: Sequence[Path],
    *,
    python_target: str | None,
    target_dir: Path | None,
    environ: Mapping[str, str],
    log: Callable[[str], None] | None = None,
) -> Compiled:
    """Byte-compile the installed distributions of ``wheels`` and record the ``.pyc`` files.

    ``wheels`` are the files pip just installed (their ``.dist-info`` folder names the installed
    distribution); ``python_target`` the interpreter they were installed for (default: safepip's);
    ``target_dir`` the ``--target`` folder, if any (else the interpreter's site-packages).

    Raises:
        BytecodeError: a wheel cannot be read, or the compile run failed or crashed (the message
            says the packages are installed: they work without ``.pyc`` files).
    """
    if not wheels:
        return Compiled(0, 0, 0)
    try:
        folders = [dist_info_folder(wheel) for wheel in wheels]
    except WheelError as exc:
        raise _failure(str(exc)) from exc
    request = {
        "dist_infos": folders,
        "dirs": None if target_dir is None else [str(Path(target_dir).absolute())],
    }
    python = str(Path(python_target).absolute()) if python_target is not None else sys.executable
    script = resources.files("safepip").joinpath(_SCRIPT).read_text(encoding="utf-8")
    argv = [python, "-I", "-W", "ignore", "-c", script]
    if log is not None:
        log(f"{python} -I -W ignore -c <safepip/{_SCRIPT}>: {len(folders)} distribution(s)")
    returncode, stdout, stderr = _run(argv, json.dumps(request), scrubbed_environment(environ))
    if log is not None and stderr.strip():
        log(stderr.rstrip("\n"))
    if returncode != 0:
        lines = [line.strip() for line in stderr.splitlines() if line.strip()]
        raise _failure(lines[-1] if lines else f"exit status {returncode}")
    try:
        summary = json.loads(stdout)
        return Compiled(summary["distributions"], summary["sources"], summary["compiled"])
    except (ValueError, KeyError, TypeError) as exc:
        raise _failure(f"unreadable summary {stdout[:200]!r}") from exc


def _failure(reason: str) -> BytecodeError:
    return BytecodeError(
        "the vetted packages are installed, but byte-compiling them failed: "
        + " ".join(reason.split())[:300]
    )


def _run(argv: Sequence[str], stdin: str, env: Mapping[str, str]) -> tuple[int, str, str]:
    """Run ``argv`` in a session of its own; on an interrupt, end it and its workers.

    Raises:
        BytecodeError: the interpreter cannot be started.
    """
    try:
        finished = process.run(argv, env=env, stdin=stdin)
    except OSError as exc:
        raise _failure(f"cannot run {argv[0]}: {exc.strerror or exc}") from exc
    return finished.returncode, finished.stdout, finished.stderr
