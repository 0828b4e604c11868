"""safepip.process: children run in a session of their own and never outlive a timeout or an
interrupt, grandchildren included."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path
from types import FrameType

import pytest

from safepip import process


def alive(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie waiting to be reaped counts as gone)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return False
    return "\nState:\tZ" not in status


def wait_for_pid(path: Path) -> int:
    for _ in range(200):
        if path.exists() and path.read_text().strip():
            return int(path.read_text())
        time.sleep(0.01)
    raise AssertionError(f"{path} was never written")


def gone(pid: int) -> bool:
    for _ in range(200):
        if not alive(pid):
            return True
        time.sleep(0.01)
    return False


# A child that starts a grandchild in the background and records its pid, then waits forever.
SPAWNER = "sleep 60 & echo $! > {pidfile}; wait"


def test_output_exit_code_and_stdin() -> None:
    code = "import sys; data = sys.stdin.read(); print(data.upper()); sys.exit(3)"
    finished = process.run(
        [sys.executable, "-c", code + "; print('err', file=sys.stderr)"], env={}, stdin="abc"
    )
    assert finished.returncode == 3
    assert finished.stdout == "ABC\n"
    assert finished.stderr == ""  # the sys.exit comes first
    merged = process.run(
        [sys.executable, "-c", "import sys; print('out'); print('err', file=sys.stderr)"],
        env={},
        merge_stderr=True,
    )
    assert sorted(merged.stdout.split()) == ["err", "out"] and merged.stderr == ""  # buffering


def test_a_missing_program_is_an_oserror(tmp_path: Path) -> None:
    with pytest.raises(OSError):
        process.run([str(tmp_path / "no-such-program")], env={})


def test_timeout_kills_the_whole_session(tmp_path: Path) -> None:
    pidfile = tmp_path / "grandchild"
    started = time.monotonic()
    with pytest.raises(subprocess.TimeoutExpired):
        process.run(["/bin/sh", "-c", SPAWNER.format(pidfile=pidfile)], env={}, timeout=1)
    # Not the grandchild's 60 s: its end, not its own, let run() return.
    assert time.monotonic() - started < 10
    grandchild = wait_for_pid(pidfile)
    assert gone(grandchild), "the grandchild outlived the timeout"


def test_an_interrupt_stops_the_session_and_passes_on(tmp_path: Path) -> None:
    pidfile = tmp_path / "grandchild"

    def interrupt(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGALRM, interrupt)
    signal.alarm(1)
    started = time.monotonic()
    try:
        with pytest.raises(KeyboardInterrupt):
            process.run(["/bin/sh", "-c", SPAWNER.format(pidfile=pidfile)], env={})
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)
    assert time.monotonic() - started < 1 + process.GRACE_SECONDS + 3
    grandchild = wait_for_pid(pidfile)
    assert gone(grandchild), "the grandchild outlived the interrupt"


def test_an_interrupt_also_ends_a_detached_grandchild_that_ignores_sigint(tmp_path: Path) -> None:
    """SIGINT alone would leave it: it holds none of our pipes and ignores the signal."""
    pidfile = tmp_path / "grandchild"
    detached = f"(trap '' INT; exec sleep 60) >/dev/null 2>&1 </dev/null & echo $! > {pidfile}"

    def interrupt(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGALRM, interrupt)
    signal.alarm(1)
    try:
        with pytest.raises(KeyboardInterrupt):
            # The child itself waits on a pipe-holding sleep, so the interrupt finds it running.
            process.run(["/bin/sh", "-c", f"{detached}; sleep 30"], env={})
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)
    assert gone(wait_for_pid(pidfile)), "the detached grandchild outlived the interrupt"


def test_a_started_child_runs_while_the_caller_works_and_is_waited_for_later() -> None:
    running = process.start(
        [sys.executable, "-c", "import sys; print(sys.stdin.read()[::-1])"], env={}, stdin=True
    )
    finished = running.wait("abc")
    assert (finished.returncode, finished.stdout) == (0, "cba\n")
    running.stop()  # waited for: nothing left to end


def test_stopping_a_child_nobody_waited_for_ends_its_whole_session(tmp_path: Path) -> None:
    pidfile = tmp_path / "grandchild"
    running = process.start(["sh", "-c", SPAWNER.format(pidfile=pidfile)], env={})
    grandchild = wait_for_pid(pidfile)
    started = time.monotonic()
    running.stop()
    assert time.monotonic() - started < 1, "no grace period: nobody wants its answer"
    assert gone(grandchild)
