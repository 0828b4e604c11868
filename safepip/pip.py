"""The pip subprocess: resolve what would be installed, then install vetted wheels.

This is the only module of safepip that runs pip, and it never imports pip: pip runs as
``python -I -m pip --isolated …`` (DESIGN.md §5, steps 5 and 7) with argv lists, no shell, and an
environment from :func:`scrubbed_environment`, so that nothing on the machine can change what pip
installs or where it looks (THREATS.md class F):

- ``python -I`` ignores every ``PYTHON*`` variable, the user site and the current directory;
- ``--isolated`` makes pip ignore ``PIP_*`` variables and the *user* config file;
- ``PIP_CONFIG_FILE=os.devnull`` makes pip skip *every* config file, including the global
  (``/etc/pip.conf``) and site (``<prefix>/pip.conf``) ones that ``--isolated`` still reads;
- the scrubbed environment drops ``PIP_*``, ``_PIP_*`` and ``PYTHON*`` variables as well, because
  with ``--python TARGET`` pip re-runs itself under TARGET *without* ``-I`` or ``--isolated`` on
  the interpreter: only the environment protects that second process.

pip runs in a session of its own, so that a timeout or an interrupt ends pip *and* the process
it starts under ``--python``: a run leaves no process behind.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Final

from safepip import process
from safepip.errors import PipError, UsageError

__all__ = [
    "MINIMUM_PIP",
    "checked_interpreter",
    "install",
    "pip_version",
    "scrubbed_environment",
]

#: The oldest pip safepip supports: ``--python`` needs 22.3 and report format 1 needs 23.0.
MINIMUM_PIP: Final = (23, 0)

#: What safepip sets for pip, after every inherited ``PIP_*`` variable was removed.
_OURS: Final = {
    "PIP_CONFIG_FILE": os.devnull,
    "PIP_DISABLE_PIP_VERSION_CHECK": "1",
    "PIP_NO_INPUT": "1",
    "PYTHONNOUSERSITE": "1",
}
#: Prefixes (compared in upper case) of variables that configure pip or the Python it runs under.
#: ``_PIP_RUNNING_IN_SUBPROCESS`` would make ``--python`` install into safepip's own environment;
#: ``PYTHON*`` reaches the interpreter that ``--python`` starts without ``-I``.
_DROPPED_PREFIXES: Final = ("PIP_", "_PIP_", "PYTHON")
#: Other variables that change what pip trusts or which interpreter runs. ``REQUESTS_CA_BUNDLE``
#: and ``CURL_CA_BUNDLE`` would silently override ``--cert`` in pip's HTTP client: the CA bundle
#: is safepip's ``cert`` setting and nothing else. ``__PYVENV_LAUNCHER__`` (macOS) changes what an
#: interpreter believes its own executable, hence its environment, to be.
_DROPPED_NAMES: Final = frozenset(
    {
        "REQUESTS_CA_BUNDLE",
        "CURL_CA_BUNDLE",
        "__PYVENV_LAUNCHER__",
        # pip only ever installs from safepip's own folder (--no-index): it has nothing to fetch,
        # so nothing to send through a proxy either.
        "HTTP_PROXY",
        "HTTPS_PROXY",
        "ALL_PROXY",
        "NO_PROXY",
    }
)

_MAX_MESSAGE: Final = 300
#: How long an interrupted pip gets to stop on its own before it is killed.
_VERSION_TIMEOUT: Final = 60.0

_HINT_OLD_PIP: Final = (
    "safepip needs pip {minimum} or newer in its own environment: "
    "`{python} -m pip install --upgrade pip`"
)


def scrubbed_environment(environ: Mapping[str, str]) -> dict[str, str]:
    """A copy of ``environ`` in which nothing configures pip or the Python it runs under.

    Every ``PIP_*`` / ``_PIP_*`` / ``PYTHON*`` variable (in any case), ``REQUESTS_CA_BUNDLE``,
    ``CURL_CA_BUNDLE``, ``__PYVENV_LAUNCHER__`` and the proxy variables are removed; then
    safepip's own are set:
    ``PIP_CONFIG_FILE=os.devnull`` (no pip config file at any level is read),
    ``PIP_DISABLE_PIP_VERSION_CHECK=1``, ``PIP_NO_INPUT=1`` and ``PYTHONNOUSERSITE=1``.
    Everything else (``PATH``, ``HOME``, locale, ``SSL_CERT_FILE``) is kept.
    """
    kept = {
        name: value
        for name, value in environ.items()
        if not name.upper().startswith(_DROPPED_PREFIXES) and name.upper() not in _DROPPED_NAMES
    }
    kept.update(_OURS)
    return kept


def pip_version(
    python: str = sys.executable, *, environ: Mapping[str, str] | None = None
) -> tuple[int, ...]:
    """The release of the pip that ``python -I -m pip`` runs, such as ``(23, 2, 1)``.

    safepip always runs the pip of its own interpreter (``sys.executable``), also for
    ``--python``: that is the default. ``environ`` (default: this process's) is scrubbed first.

    Raises:
        PipError: ``python`` has no usable pip.
    """
    env = scrubbed_environment(os.environ if environ is None else environ)
    argv = [python, "-I", "-m", "pip", "--version"]
    returncode, output = _run(argv, env=env, timeout=_VERSION_TIMEOUT, log=None)
    match = re.search(r"^pip (\d+(?:\.\d+)*)", output, re.MULTILINE)
    if returncode != 0 or match is None:
        raise PipError(
            f"cannot run pip with {python}: {_summary(output)}",
            hint=_HINT_OLD_PIP.format(minimum=_dotted(MINIMUM_PIP), python=python),
        )
    return tuple(int(part) for part in match.group(1).split("."))


def install(
    wheel_dir: Path,
    requirements_file: Path,
    *,
    python_target: str | None,
    target_dir: Path | None,
    environ: Mapping[str, str],
    log: Callable[[str], None] | None = None,
    options: Sequence[str] = (),
    compile: bool = False,
) -> None:
    """Install exactly the wheels pinned (with hashes) in ``requirements_file`` from ``wheel_dir``.

    No index, no dependencies, hashes required (pip re-hashes every wheel: the second, independent
    check), wheels only, no cache, and ``--force-reinstall`` so that an installed copy of the same
    version is replaced by the vetted wheel rather than accepted unverified. ``target_dir`` is
    an empty staging folder (``pip --target`` into it); never the user's ``--target`` folder,
    where pip would delete or keep whole top-level entries: :mod:`safepip.target` merges the
    staging folder into it. No byte-compilation: :mod:`safepip.bytecode` does it afterwards,
    on every core; except with ``compile``, for an install whose layout only pip knows
    (``options``: ``--user``, ``--prefix``, ``--root``, ``--break-system-packages``, passed on).

    Raises:
        UsageError: ``python_target`` is not an executable file.
        PipError: pip failed; the message summarises pip's error (``-v`` shows all of it).
    """
    argv = [
        *_pip_prefix(python_target),
        "install",
        "--no-index",
        "--find-links",
        str(Path(wheel_dir).absolute()),
        "--no-deps",
        "--require-hashes",
        "--only-binary",
        ":all:",
        "--no-cache-dir",
        "--force-reinstall",
        # pip compiles one file at a time, about half of its install time; safepip.bytecode
        # writes and records the same .pyc files afterwards, in parallel.
        "--compile" if compile else "--no-compile",
        *options,
    ]
    if target_dir is not None:
        argv += ["--target", str(Path(target_dir).absolute())]
    argv += ["-r", str(Path(requirements_file).absolute())]
    env = scrubbed_environment(environ)
    if "--user" in options:
        # pip refuses --user where the user site is disabled, which PYTHONNOUSERSITE does.
        env.pop("PYTHONNOUSERSITE", None)
    returncode, output = _run(argv, env=env, timeout=None, log=log)
    if returncode != 0:
        raise PipError(
            f"pip failed to install the vetted wheels: {_summary(output)}",
            hint=_failure_hint(output),
        )


def _pip_prefix(python_target: str | None) -> list[str]:
    """``python -I -m pip --isolated [--python TARGET]``, with TARGET checked first."""
    if not sys.executable:
        raise PipError(
            "cannot tell which Python runs safepip (sys.executable is empty)",
            hint="run safepip from a regular Python installation or virtual environment",
        )
    prefix = [
        sys.executable,
        "-I",
        "-m",
        "pip",
        "--isolated",
        "--disable-pip-version-check",
        "--no-input",
    ]
    if python_target is not None:
        prefix += ["--python", checked_interpreter(python_target)]
    return prefix


def checked_interpreter(python: str) -> str:
    """The absolute path of ``python`` (symlinks kept: a venv's python is one), if executable."""
    path = Path(python).absolute()
    if path.is_dir():
        raise UsageError(
            f"--python {python}: is a directory, not an interpreter",
            hint=f"pass the interpreter itself, for example {Path(python) / 'bin' / 'python'}",
        )
    if not path.is_file():
        raise UsageError(
            f"--python {python}: no such file",
            hint="pass the path of a Python interpreter, for example .venv/bin/python",
        )
    if not os.access(path, os.X_OK):
        raise UsageError(
            f"--python {python}: is not executable",
            hint="pass the path of a Python interpreter, for example .venv/bin/python",
        )
    return str(path)


def _run(
    argv: Sequence[str],
    *,
    env: Mapping[str, str],
    timeout: float | None,
    log: Callable[[str], None] | None,
) -> tuple[int, str]:
    """Run ``argv``; return its exit code and combined output. Ends the whole session on exit.

    Raises:
        PipError: pip cannot be started, or did not finish within ``timeout`` seconds.
    """
    if log is not None:
        log(_redacted(shlex.join(argv)))
    try:
        finished = process.run(argv, env=env, timeout=timeout, merge_stderr=True)
    except OSError as exc:
        raise PipError(f"cannot run {argv[0]}: {exc.strerror or exc}") from exc
    except subprocess.TimeoutExpired as exc:
        raise PipError(
            f"pip did not finish within {timeout:g} s",
            hint="check that the index answers, or raise the timeout",
        ) from exc
    if log is not None and finished.stdout:
        log(finished.stdout.rstrip("\n"))
    return finished.returncode, finished.stdout


def _redacted(text: str) -> str:
    """``https://user:secret@host/…`` → ``https://****@host/…`` in a command line for the log."""
    return re.sub(r"(?<=://)[^/@\s]+@", "****@", text)


def _summary(output: str) -> str:
    """pip's failure in one line, naming the requirement when pip did."""
    lines = [line.rstrip() for line in output.splitlines() if line.strip()]
    errors = [line.removeprefix("ERROR:").strip() for line in lines if line.startswith("ERROR:")]
    if any("DO NOT MATCH THE HASHES" in error for error in errors):
        return _hash_summary(lines)
    useful = [
        error
        for error in errors
        if error and error != "Exception:" and not error.startswith("ResolutionImpossible")
    ]
    if useful:
        summary = useful[0]
    elif lines:
        summary = lines[-1].strip()
    else:
        summary = "pip exited without a message"
    return _one_line(summary)


def _hash_summary(lines: Sequence[str]) -> str:
    """``beta==2.1 (expected sha256 …, got …)`` for each mismatch pip listed."""
    found: list[str] = []
    for index, line in enumerate(lines):
        match = re.match(r"\s+(\S+) from \S+", line)
        if match is None:
            continue
        following = " ".join(lines[index + 1 : index + 3])
        expected = re.search(r"Expected sha256 ([0-9a-f]+)", following)
        got = re.search(r"Got\s+([0-9a-f]+)", following)
        detail = (
            f" (expected sha256 {expected.group(1)}, got {got.group(1)})"
            if expected and got
            else ""
        )
        found.append(f"{match.group(1)}{detail}")
    what = "; ".join(found) if found else "a wheel"
    return _one_line(f"pip's re-hash does not match the vetted hash: {what}")


def _failure_hint(output: str) -> str | None:
    if re.search(r"no such option: --(python|report|dry-run)", output):
        return _HINT_OLD_PIP.format(minimum=_dotted(MINIMUM_PIP), python=sys.executable)
    if re.search(r"No module named pip\b", output):
        return _HINT_OLD_PIP.format(minimum=_dotted(MINIMUM_PIP), python=sys.executable)
    if "DO NOT MATCH THE HASHES" in output:
        return "a vetted wheel changed after safepip hashed it; run again, and check the disk"
    return None


def _one_line(text: str) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= _MAX_MESSAGE else flat[: _MAX_MESSAGE - 1] + "…"


def _dotted(version: tuple[int, ...]) -> str:
    return ".".join(str(part) for part in version)
