"""Helpers shared by the benchmarks: a scratch folder, a throwaway signing key, timing, tables.

Not a benchmark itself. Every ``bench_*.py`` script imports it (``python benchmarks/bench_X.py``
puts this folder on ``sys.path``); it adds the repository root too, so that the test suite's real
gpg keyring (``tests/keys.py``) and loopback HTTP server (``tests/server.py``) are reused.

Cleanliness: :func:`workspace` removes its folder on exit, :func:`signing_key` stops the
gpg-agent of its temporary GNUPGHOME, and :class:`LoopbackServer` joins its threads; nothing
outlives a run, even on Ctrl-C.
"""

from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from tests.keys import Key, Keyring  # noqa: E402
from tests.server import LoopbackServer  # noqa: E402


def _compile_safepip() -> None:
    """Byte-compile the checkout's ``safepip`` package, as pip does when it installs a wheel.

    With ``PYTHONDONTWRITEBYTECODE`` set (this machine sets it) an edited module would otherwise
    be compiled again by every timed run: tens of milliseconds that no installed safepip pays.
    """
    import compileall

    compileall.compile_dir(REPO / "safepip", quiet=1)


_compile_safepip()

__all__ = [
    "REPO",
    "Key",
    "Keyring",
    "LoopbackServer",
    "clean_env",
    "median",
    "print_table",
    "repeat",
    "run",
    "signing_key",
    "workspace",
    "write_config",
]


def clean_env(**extra: str) -> dict[str, str]:
    """``os.environ`` without ``PIP_*`` variables, with ``PIP_CONFIG_FILE=os.devnull``.

    This machine's global pip configuration adds find-links and extra index URLs; plain pip must
    see none of it, or it would not do the same work as safepip (which scrubs them itself).
    """
    env = {k: v for k, v in os.environ.items() if not k.startswith("PIP_")}
    env["PIP_CONFIG_FILE"] = os.devnull
    env.update(extra)
    return env


def run(
    argv: Sequence[str],
    *,
    env: Mapping[str, str],
    cwd: Path | None = None,
    timeout: float = 900,
) -> tuple[float, subprocess.CompletedProcess[bytes]]:
    """Run ``argv``, fail loudly on a non-zero exit, return (wall seconds, the result)."""
    start = time.perf_counter()
    result = subprocess.run(
        list(argv), env=dict(env), cwd=cwd, capture_output=True, timeout=timeout, check=False
    )
    elapsed = time.perf_counter() - start
    if result.returncode != 0:
        raise RuntimeError(
            f"{' '.join(argv)} exited {result.returncode}:\n"
            f"{result.stdout.decode(errors='replace')[-2000:]}"
            f"{result.stderr.decode(errors='replace')[-4000:]}"
        )
    return elapsed, result


def repeat(function: Callable[[], float | None], times: int, *, warmup: int = 1) -> list[float]:
    """Seconds of each of ``times`` calls after ``warmup`` untimed ones.

    ``function`` may return its own measurement (seconds), e.g. when setup must stay untimed;
    when it returns ``None`` the whole call is timed.
    """
    for _ in range(warmup):
        function()
    samples = []
    for _ in range(times):
        start = time.perf_counter()
        measured = function()
        samples.append(measured if measured is not None else time.perf_counter() - start)
    return samples


def median(samples: Sequence[float]) -> float:
    return statistics.median(samples)


def print_table(title: str, rows: Sequence[tuple[str, Sequence[float]]], unit: str = "ms") -> None:
    """One row per measurement: median, min, max and run count, in ``unit`` (ms or s)."""
    scale = 1000.0 if unit == "ms" else 1.0
    width = max(len(label) for label, _ in rows)
    print(f"\n{title}")
    print(f"  {'':<{width}}  {'median':>9}  {'min':>9}  {'max':>9}  runs")
    for label, samples in rows:
        print(
            f"  {label:<{width}}  {median(samples) * scale:>7.1f}{unit:>2}"
            f"  {min(samples) * scale:>7.1f}{unit:>2}  {max(samples) * scale:>7.1f}{unit:>2}"
            f"  {len(samples):>4}"
        )


@contextmanager
def workspace(prefix: str) -> Iterator[Path]:
    """A private scratch folder under the system temp dir, removed on exit."""
    # Not "safepip-*": the test suite watches that pattern for leaked staging folders.
    root = Path(tempfile.mkdtemp(prefix=f"bench-{prefix}-"))
    try:
        yield root
    finally:
        shutil.rmtree(root, ignore_errors=True)


@contextmanager
def signing_key(root: Path, name: str = "bench") -> Iterator[tuple[Keyring, Key]]:
    """A fresh ed25519 signing key in ``root/gnupg``; the agent is stopped on exit."""
    ring = Keyring(root / "gnupg")
    try:
        key = ring.generate(name)
        yield ring, key
    finally:
        ring.close()


def write_config(
    path: Path, *, list_url: str, key: Key, extra: Mapping[str, object] | None = None
) -> Path:
    """A client ``safepip.toml`` pinning ``key`` for the list at ``list_url``."""
    lines = [
        f'list = "{list_url}"',
        f'trusted-keys = ["{key.fingerprint}"]',
        f'key-files = ["{key.public_file}"]',
    ]
    for name, value in (extra or {}).items():
        rendered = f'"{value}"' if isinstance(value, str) else str(value).lower()
        lines.append(f"{name} = {rendered}")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path
