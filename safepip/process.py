"""Child processes that end with safepip: each in a session of its own, stopped as a whole.

pip and the byte-compiling interpreter start children of their own (build backends, worker
pools). An interrupt or a timeout must not leave any of them running, so each child leads a new
session and the whole session is signalled.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Final

__all__ = ["Finished", "Running", "run", "start"]

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
    cwd: str | None = None,
) -> Finished:
    """Run ``argv`` to completion in a new session, feeding it ``stdin`` (else /dev/null).

    On a timeout the session is killed; on an interrupt (any exception while waiting) it gets
    SIGINT, then SIGKILL after :data:`GRACE_SECONDS`, and the exception passes on.

    ``cwd`` (default: this process's) is the child's working folder.

    Raises:
        OSError: ``argv[0]`` cannot be started.
        subprocess.TimeoutExpired: ``timeout`` seconds passed; the session has been killed.
    """
    running = start(argv, env=env, stdin=stdin is not None, merge_stderr=merge_stderr, cwd=cwd)
    return running.wait(stdin, timeout=timeout)


class Running:
    """A child :func:`start` started and nobody has waited for yet."""

    def __init__(self, process: subprocess.Popen[str]) -> None:
        self._process = process

    def wait(self, stdin: str | None = None, *, timeout: float | None = None) -> Finished:
        """Feed the child ``stdin``, wait for it to end, and return its exit code and output.

        On a timeout the session is killed; on an interrupt (any exception while waiting) it
        gets SIGINT, then SIGKILL after :data:`GRACE_SECONDS`, and the exception passes on.

        Raises:
            subprocess.TimeoutExpired: ``timeout`` seconds passed; the session has been killed.
        """
        process = self._process
        try:
            stdout, stderr = process.communicate(stdin, timeout=timeout)
        except subprocess.TimeoutExpired:
            _stop(process, graceful=False)
            raise
        except BaseException:
            _stop(process, graceful=True)
            raise
        return Finished(process.returncode, stdout or "", stderr or "")

    def stop(self) -> None:
        """End the session unless the child was waited for: one started for an answer nobody
        takes any more (a refused run) must not outlive it."""
        if self._process.returncode is None:
            _stop(self._process, graceful=False)


def start(
    argv: Sequence[str],
    *,
    env: Mapping[str, str],
    stdin: bool = False,
    merge_stderr: bool = False,
    cwd: str | None = None,
) -> Running:
    """Start ``argv`` in a new session and return at once; :meth:`Running.wait` collects it.

    ``stdin``: the child reads a pipe that :meth:`Running.wait` writes (else /dev/null). The
    caller must wait for or :meth:`~Running.stop` what it started.

    Raises:
        OSError: ``argv[0]`` cannot be started.
    """
    process = subprocess.Popen(
        list(argv),
        stdin=subprocess.PIPE if stdin else subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT if merge_stderr else subprocess.PIPE,
        env=dict(env),
        encoding="utf-8",
        errors="replace",
        start_new_session=os.name == "posix",
        cwd=cwd,
    )
    return Running(process)


def _stop(process: subprocess.Popen[str], *, graceful: bool) -> None:
    """End ``process`` and everything in its session, then reap it.

    Gracefully: SIGINT first, and a grace period for the child to end. Whatever is still in the
    session then (a background grandchild ignores SIGINT and may not hold our pipes) is killed.
    A group id is not reused while the group has members, so signalling it after the leader
    was reaped reaches only what is left of it.
    """
    if graceful:
        _signal_group(process, signal.SIGINT)
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.communicate(timeout=GRACE_SECONDS)
    _signal_group(process, signal.SIGKILL if os.name == "posix" else signal.SIGTERM)
    if process.returncode is None:
        process.communicate()


def _signal_group(process: subprocess.Popen[str], signum: int) -> None:
    try:
        if os.name == "posix":
            os.killpg(process.pid, signum)
        else:  # pragma: no cover - Windows has no process groups to signal
            process.kill()
    except ProcessLookupError:
        pass
