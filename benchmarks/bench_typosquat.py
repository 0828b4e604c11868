"""Time the typosquat check: load the bundled index, then check 1,000 names; median of 7 runs.

Usage: ``python benchmarks/bench_typosquat.py``. The names are real PyPI projects outside the
popular list (tests/data), so each one goes through every family: the slow path.
"""

from __future__ import annotations

import statistics
import time
from pathlib import Path

from safepip.typosquat import TyposquatIndex, bundled_rankings

RUNS = 7
SAMPLE = (
    Path(__file__).resolve().parent.parent / "tests" / "data" / "pypi-names-outside-popular.txt"
)


def one_run(names: list[str]) -> float:
    """Milliseconds to load a fresh index from the bundled files and check ``names``."""
    start = time.perf_counter()
    index = TyposquatIndex.from_rankings(bundled_rankings())
    for name in names:
        index.check(name)
    return (time.perf_counter() - start) * 1000


def main() -> None:
    lines = SAMPLE.read_text(encoding="utf-8").splitlines()
    names = [ln for ln in lines if ln and not ln.startswith("#")][:1000]
    times = [one_run(names) for _ in range(RUNS)]
    print(
        f"load + {len(names)} checks: median {statistics.median(times):.1f} ms "
        f"(min {min(times):.1f}, max {max(times):.1f}, {RUNS} runs)"
    )


if __name__ == "__main__":
    main()
