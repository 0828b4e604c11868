"""Time ``safepip install --installer uv`` against plain pip and bare uv on the 55-wheel closure.

What it measures
    The closure and the loopback index of ``bench_install.py`` (55 wheels, 39 MB, downloaded
    once into ``--cache``, published under a throwaway key, served on 127.0.0.1 by a real nginx
    (``tests/nginx.py``; ``--server python`` for tests/server.py, whose small listen backlog
    makes uv's 50 parallel connections retry with back-off: 6-48 s a run), and
    ``locked.txt`` pinning every wheel with its sha256. Each round (``--rounds``, default 3)
    makes a fresh venv per variant (``python -m venv``, untimed) and times, in an order that
    rotates from round to round:

    pip                 ``venv/bin/python -m pip install --isolated --no-cache-dir
                        --require-hashes --index-url …/simple/ -r locked.txt`` (byte-compiles)
    pip --no-compile    the same with ``--no-compile``
    uv                  bare ``uv pip install --no-config --require-hashes --no-deps --index-url
                        …/simple/ --python venv/bin/python --compile-bytecode -r locked.txt``
                        with an empty ``--cache-dir`` of its own (cold), every ``UV_*`` variable
                        removed: pip's end state (byte-compiled), the same work. ``--no-deps``
                        because safepip does not resolve a full lock either (it checks the
                        closure from the METADATA of the wheels it downloaded): without it, uv
                        resolves against the static index, which has no PEP 658 metadata and
                        no range requests, so it downloads every wheel twice (165 requests,
                        10.8 s on this machine: ``--uv-resolves`` times that instead)
    uv --no-compile     the same without ``--compile-bytecode`` (uv's default)
    safepip uv          ``python -m safepip install --installer uv --python venv/bin/python
                        -r locked.txt`` (fetch and verify the list, download and hash every
                        wheel, uv installs offline with --require-hashes, safepip byte-compiles)
    safepip uv --no-compile   the same with ``--no-compile``

    and prints the median of per-round ratios: safepip uv / pip (target <= 0.5), safepip uv
    --no-compile / pip (target <= 0.25), safepip uv / uv and safepip uv --no-compile / uv
    --no-compile (target <= 1.2 each). After each run the venv must hold the 55 projects at the
    locked versions.

    ``--warm`` adds, per round, a second install of each uv variant into another fresh venv on
    the same machine: bare uv with the cache its cold run filled, safepip with the
    ``XDG_CACHE_HOME`` its cold run used, and counts the wheel requests the server saw during
    each warm run (target: safepip warm <= 1.3x uv warm, zero wheel requests; safepip's
    wheels then come from its content-addressed cache, re-hashed on every read).

How to run
    ``.venv/bin/python benchmarks/bench_install_uv.py [--rounds 3] [--cache DIR] [--warm]``
    Needs uv in this environment (``pip install -e '.[dev]'`` brings it), gpg and gpgconf on
    PATH, and PyPI only for the first download of the closure. Leaves nothing behind but the
    wheel cache.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
from collections.abc import Callable
from pathlib import Path

from _common import LoopbackServer, clean_env, print_table, run, signing_key, workspace
from _common import write_config as write_client_config
from bench_install import (
    DEFAULT_CACHE,
    check_installed,
    ensure_cache,
    make_venv,
    publish,
    write_lock,
)

from safepip import uv as safepip_uv
from tests.nginx import Nginx

TARGETS = {
    "safepip uv / pip": 0.5,
    "safepip uv --no-compile / pip": 0.25,
    "safepip uv / uv": 1.2,
    "safepip uv --no-compile / uv --no-compile": 1.2,
}
Variant = Callable[[Path, Path], tuple[list[str], dict[str, str]]]


def requests(server: Nginx | LoopbackServer) -> list[str]:
    """The paths the server was asked for, in order."""
    if isinstance(server, Nginx):
        return [path for path, _, _, _ in server.requests()]
    return server.requests


def uv_env() -> dict[str, str]:
    """Bare uv's environment: no ``UV_*`` variable of this machine changes what it does."""
    return {k: v for k, v in clean_env().items() if not k.upper().startswith("UV_")}


def main() -> None:  # noqa: PLR0915 (one linear script: set-up, rounds, report)
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--cache", type=Path, default=DEFAULT_CACHE)
    parser.add_argument("--warm", action="store_true", help="also time a second, warm install")
    parser.add_argument("--uv-resolves", action="store_true", help="bare uv without --no-deps")
    parser.add_argument("--server", choices=("nginx", "python"), default="nginx")
    args = parser.parse_args()

    uv_binary = safepip_uv.find_uv()
    wheels = ensure_cache(args.cache)
    size = sum(w.stat().st_size for w in wheels)
    print(f"{len(wheels)} wheels, {size / 1e6:.1f} MB, from {args.cache}; uv at {uv_binary}")
    print(f"load average before: {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs")

    with workspace("install-uv") as root, signing_key(root) as (ring, key):
        site = publish(root, args.cache, key, ring.home)
        client = root / "client"
        client.mkdir()
        lock = client / "locked.txt"
        pins = write_lock(wheels, lock)
        with Nginx(site) if args.server == "nginx" else LoopbackServer(site) as server:
            config = write_client_config(
                client / "safepip.toml", list_url=server.url + "sha256sums.txt", key=key
            )
            index = server.url + "simple/"

            def pip(python: Path, _: Path, *extra: str) -> tuple[list[str], dict[str, str]]:
                argv = [str(python), "-m", "pip", "install", "--isolated", "--no-cache-dir"]
                argv += ["--require-hashes", *extra, "--index-url", index, "-r", str(lock)]
                return argv, clean_env()

            def bare_uv(python: Path, cache: Path, *extra: str) -> tuple[list[str], dict[str, str]]:
                argv = [uv_binary, "pip", "install", "--no-config", "--require-hashes"]
                argv += [] if args.uv_resolves else ["--no-deps"]
                argv += ["--index-url", index, "--python", str(python)]
                argv += ["--cache-dir", str(cache / "uv"), *extra, "-r", str(lock)]
                return argv, uv_env()

            def safepip(python: Path, cache: Path, *extra: str) -> tuple[list[str], dict[str, str]]:
                argv = [sys.executable, "-m", "safepip", "install", "--installer", "uv"]
                argv += ["--python", str(python), "-q", "--config", str(config)]
                argv += [*extra, "-r", str(lock)]
                env = clean_env(XDG_STATE_HOME=str(root / "state"), XDG_CACHE_HOME=str(cache))
                return argv, env

            variants: dict[str, Variant] = {
                "pip": pip,
                "pip --no-compile": lambda p, c: pip(p, c, "--no-compile"),
                "uv": lambda p, c: bare_uv(p, c, "--compile-bytecode"),
                "uv --no-compile": bare_uv,
                "safepip uv": safepip,
                "safepip uv --no-compile": lambda p, c: safepip(p, c, "--no-compile"),
            }
            warm_names = ["uv", "uv --no-compile", "safepip uv", "safepip uv --no-compile"]
            names = list(variants)
            samples: dict[str, list[float]] = {name: [] for name in names}
            warm: dict[str, list[float]] = {name: [] for name in warm_names}
            warm_requests: dict[str, list[int]] = {name: [] for name in warm_names}
            for number in range(args.rounds):
                order = names[number % len(names) :] + names[: number % len(names)]
                timings = []
                for i, name in enumerate(order):
                    venv = make_venv(root / f"venv-{i}")
                    cache = root / f"cache-{i}"
                    argv, env = variants[name](venv, cache)
                    seconds, _ = run(argv, env=env, cwd=client)
                    check_installed(venv, pins)
                    samples[name].append(seconds)
                    timings.append(f"{name} {seconds:.2f}s")
                    if args.warm and name in warm:
                        again = make_venv(root / f"venv-{i}-warm")
                        before = len(requests(server))
                        argv, env = variants[name](again, cache)
                        seconds, _ = run(argv, env=env, cwd=client)
                        check_installed(again, pins)
                        fetched = [r for r in requests(server)[before:] if r.endswith(".whl")]
                        warm[name].append(seconds)
                        warm_requests[name].append(len(fetched))
                        timings.append(f"{name} warm {seconds:.2f}s ({len(fetched)} wheels)")
                        shutil.rmtree(root / f"venv-{i}-warm")
                    shutil.rmtree(root / f"venv-{i}")
                    shutil.rmtree(cache, ignore_errors=True)
                print(f"round {number + 1}/{args.rounds}: " + ", ".join(timings), flush=True)
            assert not getattr(server, "errors", []), server

    report(samples, warm, warm_requests, len(wheels), warm_wanted=args.warm)


def report(
    samples: dict[str, list[float]],
    warm: dict[str, list[float]],
    warm_requests: dict[str, list[int]],
    wheels: int,
    *,
    warm_wanted: bool,
) -> None:
    """The tables and the ratios, each a median of per-round ratios."""
    print_table(
        f"cold install of {wheels} locked wheels into a fresh venv (index on 127.0.0.1)",
        list(samples.items()),
        unit="s",
    )
    for label, target in TARGETS.items():
        top, bottom = label.split(" / ")
        ratios = [a / b for a, b in zip(samples[top], samples[bottom], strict=True)]
        ratio = statistics.median(ratios)
        print(
            f"{label}: {ratio:.2f} (rounds: {', '.join(f'{r:.2f}' for r in ratios)}); "
            f"target <= {target}: {'MET' if ratio <= target else 'MISSED'}"
        )
    if warm_wanted:
        print_table("warm: a second install into another fresh venv", list(warm.items()), "s")
        for name, counts in warm_requests.items():
            print(f"{name} warm: wheel requests at the server per run: {counts}")
        for top, bottom in (("safepip uv", "uv"), ("safepip uv --no-compile", "uv --no-compile")):
            ratios = [a / b for a, b in zip(warm[top], warm[bottom], strict=True)]
            ratio = statistics.median(ratios)
            print(
                f"warm {top} / {bottom}: {ratio:.2f}; target <= 1.3 with zero wheel requests: "
                f"{'MET' if ratio <= 1.3 and not any(warm_requests[top]) else 'MISSED'}"
            )
    print(f"load average after: {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs")


if __name__ == "__main__":
    main()
