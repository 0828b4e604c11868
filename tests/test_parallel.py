"""safepip.parallel: side by side, and stopped as a whole by a failure or a real Ctrl-C."""

from __future__ import annotations

import _thread
import threading
import time

import pytest

from safepip.parallel import GRACE_SECONDS, run_all


def test_results_in_the_order_of_the_items() -> None:
    def call(item: int, cancel: threading.Event) -> int:
        time.sleep(0.01 * (5 - item))
        return item * item

    assert run_all(call, list(range(6)), workers=3) == [0, 1, 4, 9, 16, 25]
    assert run_all(call, []) == []


def test_first_failure_cancels_the_others_and_is_raised() -> None:
    started: list[int] = []
    stopped: list[int] = []

    def call(item: int, cancel: threading.Event) -> int:
        started.append(item)
        if item == 0:
            raise ValueError("item 0 failed")
        if cancel.wait(30):
            stopped.append(item)
        return item

    start = time.monotonic()
    with pytest.raises(ValueError, match="item 0 failed"):
        run_all(call, list(range(20)), workers=4)
    assert time.monotonic() - start < GRACE_SECONDS
    # No call starts after the failure; those already running saw the cancel and ended.
    assert len(started) <= 4 and sorted(stopped) == sorted(set(started) - {0})


def test_ctrl_c_in_the_calling_thread_cancels_every_call() -> None:
    running = threading.Barrier(3)
    seen: list[bool] = []

    def call(item: int, cancel: threading.Event) -> None:
        running.wait(5)
        if item == 0:
            _thread.interrupt_main()  # as a real SIGINT: the handler runs in the main thread
        seen.append(cancel.wait(30))

    start = time.monotonic()
    with pytest.raises(KeyboardInterrupt):
        run_all(call, [0, 1, 2], workers=3)
    assert time.monotonic() - start < 1.0
    assert seen == [True, True, True]
    assert not [t for t in threading.enumerate() if t.name.startswith("safepip-worker")]
