"""Time ``safepip check`` of a 300-line lock file, and show where its time goes.

What it measures
    A signed format 1 list of 300 wheels (the 300 most popular PyPI names from safepip's bundled
    snapshot, ``NAME-1.0.0-py3-none-any.whl``, random sha256), signed by a throwaway ed25519 key
    in a temporary GNUPGHOME and served over HTTP on 127.0.0.1 (tests/server.py); a lock file
    with one ``name==1.0.0 --hash=sha256:…`` line per listed wheel.

    * ``python -m safepip check --config safepip.toml locked.txt`` as a subprocess, median of
      ``--runs`` (default 15), with ``typosquat = "off"``, ``"block"`` (the default) and, for
      insight, ``"block"`` with the list read as a local path (the offline pre-commit case);
    * ``python -c pass`` (the interpreter's own floor);
    * in process: loading the bundled typosquat index and checking the 300 names, which is what
      the check would cost if the names were not on the list (listed names are exempt, so with
      a passing lock file ``block`` never loads the index);
    * ``python -X importtime -m safepip check …``: the top imports by cumulative microseconds;
    * with ``--profile``: ``python -m cProfile -s cumulative -m safepip check …``, top lines.

How to run
    ``/work/.venv-dev/bin/python benchmarks/bench_check.py [--runs 15] [--top 15] [--profile]``
    Needs gpg and gpgconf on PATH; no network beyond 127.0.0.1. Leaves nothing behind.

Targets
    ``safepip check`` under 200 ms; the typosquat check adds under 20 ms (block minus off).
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from datetime import datetime, timedelta, timezone
from importlib import resources
from pathlib import Path

from _common import (
    Key,
    LoopbackServer,
    clean_env,
    median,
    print_table,
    repeat,
    run,
    signing_key,
    workspace,
    write_config,
)

from safepip import gpg, hashlist
from safepip.typosquat import TyposquatIndex, bundled_rankings

TARGET_CHECK_SECONDS = 0.200
TARGET_TYPOSQUAT_SECONDS = 0.020
LOCK_LINES = 300


def popular_names(count: int) -> list[str]:
    path = Path(str(resources.files("safepip").joinpath("data").joinpath("popular-names.txt")))
    names = [
        line.strip()
        for line in path.read_text(encoding="utf-8").splitlines()
        if line.strip() and not line.startswith("#")
    ]
    return names[:count]


def importtime_top(stderr: str, top: int) -> tuple[list[tuple[int, int, str]], int]:
    """(cumulative us, self us, module as indented by Python) of the ``top`` slowest imports."""
    rows = []
    total_self = 0
    for line in stderr.splitlines():
        if not line.startswith("import time:") or "self [us]" in line:
            continue
        self_us, cumulative, module = line.removeprefix("import time:").split("|", 2)
        total_self += int(self_us)
        rows.append((int(cumulative), int(self_us), module.rstrip()))
    rows.sort(reverse=True)
    return rows[:top], total_self


Sample = list[float]
BUNDLED = Path(str(resources.files("safepip").joinpath("data").joinpath("popular-names.txt")))


def build_list() -> tuple[bytes, str]:
    """The list of 300 popular names as wheels, and a lock file pinning every one of them."""
    rng = random.Random(2)  # noqa: S311 (synthetic, reproducible hashes: not crypto)
    files = {
        f"{name.replace('-', '_')}-1.0.0-py3-none-any.whl": rng.randbytes(32).hex()
        for name in popular_names(LOCK_LINES)
    }
    now = datetime.now(tz=timezone.utc).replace(microsecond=0)
    data = hashlist.serialise(files, serial=1, issued=now, expires=now + timedelta(days=30))
    lock = "".join(
        f"{e.name}=={e.version} --hash=sha256:{e.sha256}\n" for e in hashlist.parse(data).wheels()
    )
    assert len(lock.splitlines()) == LOCK_LINES
    return data, lock


def measure_checks(
    client: Path, lock: Path, key: Key, *, sources: dict[str, str], env: dict[str, str], runs: int
) -> tuple[list[tuple[str, Sample]], list[str]]:
    """``safepip check`` per variant, then ``python -c pass``; also the ``block`` argv."""
    variants = {
        'typosquat = "off"': (sources["http"], "off"),
        'typosquat = "block"': (sources["http"], "block"),
        'typosquat = "block", local list': (sources["local"], "block"),
    }
    python = sys.executable
    results: list[tuple[str, Sample]] = []
    block_argv: list[str] = []
    for number, (label, (source, mode)) in enumerate(variants.items()):
        cfg = client / f"safepip-{number}.toml"
        write_config(cfg, list_url=source, key=key, extra={"typosquat": mode})
        argv = [python, "-m", "safepip", "check", "--config", str(cfg), str(lock)]
        _, first = run(argv, env=env, cwd=client)
        assert f"ok: {LOCK_LINES} requirement(s)" in first.stdout.decode(), first.stdout
        samples = repeat(lambda argv=argv: run(argv, env=env, cwd=client)[0], runs)
        results.append((f"safepip check, {label}", samples))
        block_argv = block_argv or (argv if mode == "block" else [])
    results.append(
        ("python -c pass", repeat(lambda: run([python, "-c", "pass"], env=env)[0], runs))
    )
    return results, block_argv


def typosquat_in_process(names: list[str]) -> float:
    """Seconds to load the bundled index from its files and check ``names``."""
    start = time.perf_counter()
    index = TyposquatIndex.from_rankings(bundled_rankings())
    for name in names:
        index.check(name)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--top", type=int, default=15, help="imports to show from -X importtime")
    parser.add_argument("--profile", action="store_true", help="also show a cProfile of check")
    args = parser.parse_args()

    data, lock_text = build_list()
    with workspace("check") as root, signing_key(root) as (ring, key):
        site = root / "site"
        site.mkdir()
        (site / "sha256sums.txt").write_bytes(data)
        (site / "sha256sums.txt.asc").write_bytes(
            gpg.sign(data, fingerprint=key.fingerprint, gnupghome=ring.home)
        )
        client = root / "client"
        client.mkdir()
        lock = client / "locked.txt"
        lock.write_text(lock_text, encoding="utf-8")
        env = clean_env(XDG_STATE_HOME=str(root / "state"))
        with LoopbackServer(site) as server:
            sources = {"http": server.url + "sha256sums.txt", "local": str(site / "sha256sums.txt")}
            results, argv = measure_checks(
                client, lock, key, sources=sources, env=env, runs=args.runs
            )
            _, imports = run([argv[0], "-X", "importtime", *argv[1:]], env=env, cwd=client)
            profile = (
                run([argv[0], "-m", "cProfile", "-s", "cumulative", *argv[1:]], env=env)[1]
                if args.profile
                else None
            )
    names = [line.split("==")[0] for line in lock_text.splitlines()]
    typosquat_cost = repeat(lambda: typosquat_in_process(names), args.runs)

    print_table(
        f"safepip check of a {LOCK_LINES}-line lock file (subprocess; list over HTTP unless said)",
        results,
    )
    print_table(
        "in process, for insight",
        [(f"typosquat: load bundled index + check {LOCK_LINES} names", typosquat_cost)],
    )
    top, total_self = importtime_top(imports.stderr.decode(errors="replace"), args.top)
    print(
        f"\npython -X importtime -m safepip check … (one run, typosquat block): "
        f"{total_self / 1000:.1f} ms of imports in all; top {len(top)} by cumulative:"
    )
    print(f"  {'cumul us':>9}  {'self us':>8}  module")
    for cumulative, self_us, module in top:
        print(f"  {cumulative:>9}  {self_us:>8}  {module}")
    if profile is not None:
        lines = profile.stdout.decode(errors="replace").splitlines()
        start = next(i for i, line in enumerate(lines) if "ncalls" in line)
        print("\npython -m cProfile -s cumulative -m safepip check … (top 30):")
        print("\n".join(lines[start : start + 31]))

    off, block = median(results[0][1]), median(results[1][1])
    print(
        f"\ncheck (block, HTTP): {block * 1000:.0f} ms; target < {TARGET_CHECK_SECONDS * 1000:.0f}"
        f" ms: {'MET' if block < TARGET_CHECK_SECONDS else 'MISSED'}"
    )
    print(
        f"typosquat cost (block - off): {(block - off) * 1000:+.1f} ms; target < "
        f"{TARGET_TYPOSQUAT_SECONDS * 1000:.0f} ms: "
        f"{'MET' if block - off < TARGET_TYPOSQUAT_SECONDS else 'MISSED'}"
    )


if __name__ == "__main__":
    main()
