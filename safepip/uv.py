"""The uv subprocess: install the vetted wheels with uv instead of pip (``installer = "uv"``).

This is the only module of safepip that runs uv. uv does exactly what pip does in
:func:`safepip.pip.install` (DESIGN.md §5, step 7), and nothing more:

- ``--no-config``: no ``uv.toml`` / ``pyproject.toml`` of the user, the project or the system;
- every ``UV_*`` variable removed (``UV_INDEX_URL``, ``UV_CACHE_DIR``, ``UV_NO_VERIFY_HASHES``,
  ``UV_INSECURE_HOST``, …), and so are ``VIRTUAL_ENV`` / ``CONDA_PREFIX`` (the interpreter is
  always named with ``--python``) and everything :func:`safepip.pip.scrubbed_environment` drops;
- ``--offline --no-index --find-links <safepip's folder> --no-deps --no-build``: the only bytes
  uv can see are the wheels safepip downloaded and hashed;
- ``--require-hashes`` with the generated ``name==version --hash=sha256:…`` file: uv hashes each
  wheel again as pip does, the second, independent check;
- ``--cache-dir`` a private, empty folder (``mkdtemp``, mode 0700) beside safepip's wheel
  folder, removed afterwards: uv reads no cache a previous run (or another user) could have
  filled. Not ``--no-cache``: uv then unpacks into the system's temporary folder and copies from
  there, three to ten times slower (measured: 1.1-3.8 s against 0.38 s for the 55-wheel set);
  the private folder sits on the staging folder's file system, so uv hard-links from it;
- ``--reinstall``: an installed copy of the same version is replaced by the vetted wheel, as
  ``pip --force-reinstall`` does;
- ``--target``: into safepip's empty staging folder, as for pip; the ``.lock`` file uv leaves
  there is removed, so it is not merged into the user's folder;
- no ``--compile-bytecode``: :mod:`safepip.bytecode` writes and records the same ``.pyc`` files
  afterwards, exactly as after pip (uv's own step compiles every file of ``site-packages``,
  records none of them in ``RECORD`` and runs the interpreter with ``site``).

uv is the binary of the optional extra ``safepip[uv]`` (the ``uv`` package in safepip's own
environment), never one found on ``PATH``: which uv runs is decided where safepip is installed.
Resolution stays safepip's own (:mod:`safepip.resolve`): uv is handed a fully pinned, hashed set.
"""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Final

from safepip import process
from safepip.errors import PipError, UsageError
from safepip.pip import checked_interpreter, scrubbed_environment

__all__ = ["find_uv", "install", "uv_environment"]

#: Variables that choose uv's environment, besides every ``UV_*`` one.
_DROPPED_NAMES: Final = frozenset({"VIRTUAL_ENV", "CONDA_PREFIX", "CONDA_DEFAULT_ENV"})
#: pip's own variables that :func:`scrubbed_environment` sets; meaningless to uv, left out.
_PIP_ONLY: Final = ("PIP_CONFIG_FILE", "PIP_DISABLE_PIP_VERSION_CHECK", "PIP_NO_INPUT")
_MAX_MESSAGE: Final = 300
_HINT_MISSING: Final = (
    "install the optional extra: `pip install 'safepip[uv]'`, or use installer = pip"
)


def uv_environment(environ: Mapping[str, str]) -> dict[str, str]:
    """A copy of ``environ`` in which nothing configures uv, pip or the Python they run.

    What :func:`safepip.pip.scrubbed_environment` removes, plus every ``UV_*`` variable (in any
    case), ``VIRTUAL_ENV``, ``CONDA_PREFIX`` and ``CONDA_DEFAULT_ENV``; then ``UV_NO_CONFIG=1``
    (belt and braces beside ``--no-config``), ``UV_NO_PROGRESS=1`` and ``PYTHONNOUSERSITE=1``.
    """
    kept = {
        name: value
        for name, value in scrubbed_environment(environ).items()
        if not name.upper().startswith("UV_")
        and name.upper() not in _DROPPED_NAMES
        and name not in _PIP_ONLY
    }
    kept.update({"UV_NO_CONFIG": "1", "UV_NO_PROGRESS": "1"})
    return kept


def find_uv() -> str:
    """The uv binary of the ``uv`` package installed beside safepip (the ``safepip[uv]`` extra).

    Raises:
        UsageError: the extra is not installed, or its binary is missing.
    """
    try:
        from uv import find_uv_bin  # noqa: PLC0415  (optional extra; only with installer = uv)
    except ImportError as exc:
        raise UsageError(
            f"installer is uv, but uv is not installed in safepip's environment ({sys.prefix})",
            hint=_HINT_MISSING,
        ) from exc
    try:
        return str(find_uv_bin())
    except FileNotFoundError as exc:
        raise UsageError(
            "installer is uv, but the uv package has no uv binary", hint=_HINT_MISSING
        ) from exc


def install(
    wheel_dir: Path,
    requirements_file: Path,
    *,
    python_target: str | None,
    target_dir: Path | None,
    environ: Mapping[str, str],
    log: Callable[[str], None] | None = None,
    uv_binary: str | None = None,
    options: Sequence[str] = (),
    compile: bool = False,
    cache_dir: Path | None = None,
) -> None:
    """Install exactly the wheels pinned (with hashes) in ``requirements_file`` from ``wheel_dir``.

    The same contract as :func:`safepip.pip.install`: no index, no network, no dependencies,
    hashes required (uv re-hashes every wheel), wheels only, no cache but a private empty one
    made beside ``wheel_dir`` and removed, every wheel reinstalled, no byte-compilation;
    ``target_dir`` is an empty staging folder. ``uv_binary`` defaults to
    :func:`find_uv`. ``options`` and ``compile`` are :func:`safepip.pip.install`'s: pip's
    ``--user``/``--prefix``/``--root`` and its own byte-compiling, which this installer does not
    take (:func:`safepip.install.installer` refuses them first). ``cache_dir``: where uv's
    private cache is made (it must not exist yet), left for the caller to remove (uv unpacks
    every wheel there: removing it takes a while, which the caller can overlap with other work).

    Raises:
        UsageError: uv is not installed, or ``python_target`` is not an executable file.
        PipError: uv failed; the message summarises uv's error (``-v`` shows all of it).
    """
    if options or compile:
        raise UsageError(
            "installer uv does not take pip's placement options or its byte-compiling",
            hint="use --installer pip for --user, --prefix and --root",
        )
    binary = uv_binary if uv_binary is not None else find_uv()
    python = checked_interpreter(python_target) if python_target is not None else sys.executable
    if not python:
        raise PipError(
            "cannot tell which Python runs safepip (sys.executable is empty)",
            hint="run safepip from a regular Python installation or virtual environment",
        )
    argv = [
        binary,
        "pip",
        "install",
        "--no-config",
        "--offline",
        "--no-index",
        "--find-links",
        str(Path(wheel_dir).absolute()),
        "--no-deps",
        "--no-build",
        "--require-hashes",
        "--reinstall",
        "--no-python-downloads",
        "--color",
        "never",
        "--python",
        python,
    ]
    if target_dir is not None:
        argv += ["--target", str(Path(target_dir).absolute())]
    argv += ["-r", str(Path(requirements_file).absolute())]
    if cache_dir is None:
        cache = Path(tempfile.mkdtemp(prefix="uv-cache-", dir=Path(wheel_dir).absolute().parent))
    else:
        cache = cache_dir.absolute()
        cache.mkdir(mode=0o700)  # new and empty: nothing in it was put there by others
    try:
        returncode, output = _run(
            [*argv, "--cache-dir", str(cache)], env=uv_environment(environ), log=log
        )
    finally:
        if cache_dir is None:
            shutil.rmtree(cache, ignore_errors=True)
    if returncode != 0:
        raise PipError(
            f"uv failed to install the vetted wheels: {_summary(output)}",
            hint=_failure_hint(output),
        )
    if target_dir is not None:
        # uv locks the folder it installs into with this empty file and leaves it there; in the
        # staging folder it would be merged into the user's --target folder as a stray file.
        lock = Path(target_dir) / ".lock"
        if lock.is_file() and not lock.is_symlink():
            lock.unlink()


def _run(
    argv: Sequence[str], *, env: Mapping[str, str], log: Callable[[str], None] | None
) -> tuple[int, str]:
    """Run ``argv`` in a session of its own; return its exit code and combined output.

    Raises:
        UsageError: the uv binary cannot be started.
    """
    if log is not None:
        log(shlex.join(argv))
    try:
        finished = process.run(argv, env=env, merge_stderr=True)
    except OSError as exc:
        raise UsageError(
            f"cannot run uv ({argv[0]}): {exc.strerror or exc}", hint=_HINT_MISSING
        ) from exc
    except subprocess.TimeoutExpired as exc:  # pragma: no cover - no timeout is set
        raise PipError("uv did not finish") from exc
    if log is not None and finished.stdout:
        log(finished.stdout.rstrip("\n"))
    return finished.returncode, finished.stdout


def _summary(output: str) -> str:
    """uv's failure in one line: its ``error:`` line, or the hash that did not match."""
    lines = [line.strip() for line in output.splitlines() if line.strip()]
    at = next((i for i, line in enumerate(lines) if "Hash mismatch for" in line), None)
    if at is not None:
        what = lines[at].split("Hash mismatch for", 1)[1].strip().strip(":").strip("`")
        found = re.findall(r"sha256:([0-9a-f]{64})", " ".join(lines[at : at + 6]))
        detail = f" (expected sha256 {found[0]}, got {found[1]})" if len(found) >= 2 else ""
        return _one_line(f"uv's re-hash does not match the vetted hash: {what}{detail}")
    errors = [line.removeprefix("error:").strip() for line in lines if line.startswith("error:")]
    causes = [
        line.split(":", 1)[1].strip() for line in lines if line.startswith(("cause:", "Caused by:"))
    ]
    if errors:
        return _one_line(": ".join([errors[0], *causes[-1:]]))
    return _one_line(lines[-1] if lines else "uv exited without a message")


def _failure_hint(output: str) -> str | None:
    if "Hash mismatch" in output:
        return "a vetted wheel changed after safepip hashed it; run again, and check the disk"
    if "externally managed" in output.lower():
        return "install into a virtual environment (--python .venv/bin/python)"
    return None


def _one_line(text: str) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= _MAX_MESSAGE else flat[: _MAX_MESSAGE - 1] + "…"
