"""Calls run side by side in threads, and stopped as a whole by a failure or a Ctrl-C.

``concurrent.futures`` does not fit: leaving its ``with`` block joins every worker, so a Ctrl-C
waits for each download's own deadline (up to ``--timeout``), and its threads are joined again
at interpreter exit. Here every call gets a shared cancel event and must return soon after it
is set (:mod:`safepip.fetch` looks at it every :data:`~safepip.fetch.CANCEL_SLICE` seconds); the
calling thread waits in short steps, so ``KeyboardInterrupt`` reaches it at once.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable, Sequence
from typing import Final, TypeVar

__all__ = ["GRACE_SECONDS", "run_all"]

_T = TypeVar("_T")
_R = TypeVar("_R")

#: After a failure or an interrupt, how long the calls still running may take to stop.
GRACE_SECONDS: Final = 2.0
_POLL: Final = 0.1


def run_all(
    call: Callable[[_T, threading.Event], _R],
    items: Sequence[_T],
    *,
    workers: int = 8,
    name: str = "safepip-worker",
) -> list[_R]:
    """``[call(item, cancel) for item in items]``, at most ``workers`` at a time, in order.

    On the first exception, raised by a call or in the calling thread while it waits
    (``KeyboardInterrupt``), ``cancel`` is set, no further call starts, the calls still running
    are waited for (at most :data:`GRACE_SECONDS`), and that exception is raised. The threads
    are daemons: one stuck where no cancel reaches it (a hung DNS lookup) cannot hold the exit.
    """
    if not items:
        return []
    cancel = threading.Event()
    todo: queue.SimpleQueue[int] = queue.SimpleQueue()
    for index in range(len(items)):
        todo.put(index)
    done: queue.SimpleQueue[tuple[int, _R | None, BaseException | None]] = queue.SimpleQueue()

    def work() -> None:
        while not cancel.is_set():
            try:
                index = todo.get_nowait()
            except queue.Empty:
                return
            try:
                done.put((index, call(items[index], cancel), None))
            except BaseException as exc:  # handed to the calling thread, raised there
                cancel.set()  # at once: no worker may start another call meanwhile
                done.put((index, None, exc))

    threads = [
        threading.Thread(target=work, name=f"{name}-{n}", daemon=True)
        for n in range(max(1, min(workers, len(items))))
    ]
    results: dict[int, _R] = {}
    try:
        for thread in threads:
            thread.start()
        while len(results) < len(items):
            try:
                index, result, exc = done.get(timeout=_POLL)
            except queue.Empty:
                continue
            if exc is not None:
                raise exc
            results[index] = result  # type: ignore[assignment]  # None only with an exception
    except BaseException:
        cancel.set()
        _join(threads)
        raise
    _join(threads)
    return [results[index] for index in range(len(items))]


def _join(threads: Sequence[threading.Thread]) -> None:
    deadline = time.monotonic() + GRACE_SECONDS
    for thread in threads:
        if thread.ident is not None:  # started
            thread.join(max(0.0, deadline - time.monotonic()))
