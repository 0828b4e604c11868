"""Child processes that end with safepip: each in a session of its own, stopped as a whole.

pip and the byte-compiling interpreter start children of their own (build backends, worker
pools). An interrupt or a timeout must not leave any of them running, so each child leads a new
session and the whole session is signalled.
"""

from __future__ import annotations

import os
import signal
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Final

__all__ = ["Finished", "run"]

#: After SIGINT on an interrupt, how long the session may take to end before it is killed.
GRACE_SECONDS: Final = 5.0


@dataclass(frozen=True)
class Finished:
    """A child's exit code and output (``stderr`` is ``""`` when it was merged into ``stdout``)."""

    returncode: int
    stdout: str
    stderr: str


def run(
    argv: Sequence[str],
    *,
    env: Mapping[str, str],
    stdin: str | None = None,
    timeout: float | None = None,
    merge_stderr: bool = False,
) -> Finished:
    """Run ``argv`` to completion in a new session, feeding it ``stdin`` (else /dev/null).

    On a timeout the session is killed; on an interrupt (any exception while waiting) it gets
    SIGINT, then SIGKILL after :data:`GRACE_SECONDS`, and the exception passes on.

    Raises:
        OSError: ``argv[0]`` cannot be started.
        subprocess.TimeoutExpired: ``timeout`` seconds passed; the session has been killed.
    """
    process = subprocess.Popen(
        list(argv),
        stdin=subprocess.PIPE if stdin is not None else subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT if merge_stderr else subprocess.PIPE,
        env=dict(env),
        encoding="utf-8",
        errors="replace",
        start_new_session=os.name == "posix",
    )
    try:
        stdout, stderr = process.communicate(stdin, timeout=timeout)
    except subprocess.TimeoutExpired:
        _stop(process, graceful=False)
        raise
    except BaseException:
        _stop(process, graceful=True)
        raise
    return Finished(process.returncode, stdout or "", stderr or "")


def _stop(process: subprocess.Popen[str], *, graceful: bool) -> None:
    """End ``process`` and everything in its session, then reap it."""
    if graceful:
        _signal_group(process, signal.SIGINT)
        try:
            process.communicate(timeout=GRACE_SECONDS)
        except subprocess.TimeoutExpired:
            pass
        else:
            return
    _signal_group(process, signal.SIGKILL if os.name == "posix" else signal.SIGTERM)
    process.communicate()


def _signal_group(process: subprocess.Popen[str], signum: int) -> None:
    try:
        if os.name == "posix":
            os.killpg(process.pid, signum)
        else:  # pragma: no cover - Windows has no process groups to signal
            process.kill()
    except ProcessLookupError:
        pass
