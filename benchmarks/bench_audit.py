"""Time "installed means vetted" (an unchanged rerun) and ``safepip audit``, cold and warm.

What it measures
    The wheels of ``--wheels DIR`` (default: bench_install.py's 55-wheel web-app closure,
    /tmp/bench-install-wheels-cp311, downloaded by that benchmark) are published under a
    throwaway key and served on 127.0.0.1. Each round makes a fresh venv (``--without-pip``:
    safepip installs with its own pip, and audit then judges every distribution, none excluded)
    and times:

    fresh    ``safepip install --python VENV -r locked.txt`` into the empty venv, wheel cache warm
             (filled by an untimed first install into a throwaway venv): the smaller, stricter
             denominator; ``fresh-cold`` is the same with ``--no-cache-dir`` (every wheel
             downloaded), for reference;
    rerun    the same command again into the now unchanged venv: every distribution is compared
             with its vetted wheel and kept; pip does not run;
    audit-cold  ``safepip audit --python VENV`` with an empty wheel cache (every wheel
             located and downloaded);
    audit-warm  the same again, three times: every wheel from the cache (re-hashed), the list
             from the server on 127.0.0.1.

    Then, untimed, the promise: a file of one distribution edited together with its RECORD row
    makes ``audit`` exit 1 naming it ``modified``; ``install`` reinstalls exactly that one and a
    second ``audit`` exits 0.

How to run
    ``.venv/bin/python benchmarks/bench_audit.py [--rounds 3] [--wheels DIR]``
    Needs gpg and gpgconf on PATH. Leaves nothing behind.

Targets
    rerun / fresh (median of per-round ratios) under 0.10; audit-warm under 1 s.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import shutil
import statistics
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from _common import LoopbackServer, clean_env, print_table, run, signing_key, workspace
from _common import write_config as write_safepip_config
from bench_install import DEFAULT_CACHE, publish, write_lock

RERUN_TARGET = 0.10
AUDIT_WARM_TARGET = 1.0
#: Warm audits per round (cheap, and the one number most exposed to a busy machine).
WARM_REPEATS = 3


def make_venv(path: Path) -> Path:
    run([sys.executable, "-m", "venv", "--without-pip", str(path)], env=clean_env())
    return path / "bin" / "python"


def tamper(venv: Path) -> str:
    """Edit one installed module and its RECORD row so RECORD still matches; return its path."""
    site = next(venv.glob("lib/python*/site-packages"))
    record = next(site.glob("idna-*.dist-info/RECORD"))
    target = site / "idna" / "core.py"
    data = target.read_bytes() + b"\nimport os  # tampered\n"
    target.write_bytes(data)
    encoded = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    rows = [
        f"idna/core.py,sha256={encoded},{len(data)}" if row.startswith("idna/core.py,") else row
        for row in record.read_text().splitlines()
    ]
    record.write_text("\n".join(rows) + "\n")
    return str(target.resolve())


def promise(
    venv: Path,
    python: Path,
    cache: str,
    *,
    audit: Callable[..., tuple[float, int, str]],
    install: Callable[..., float],
) -> None:
    """A file edited with its RECORD row: audit finds it, install restores only that one."""
    path = tamper(venv)
    _, code, out = audit(python, cache, check=False)
    found = [(f["code"], f["path"]) for f in json.loads(out)["rejected"]]
    assert code == 1 and found == [("modified", path)], found
    install(python)
    _, code, out = audit(python, cache)
    assert code == 0, out
    print(
        f"tampered {path} (RECORD edited too): audit exit 1 'modified'; install restored it; "
        "audit then exit 0",
        flush=True,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--wheels", type=Path, default=DEFAULT_CACHE)
    args = parser.parse_args()
    wheels = sorted(args.wheels.glob("*.whl"))
    if not wheels:
        raise SystemExit(f"no wheels in {args.wheels}: run benchmarks/bench_install.py first")
    print(f"{len(wheels)} wheels, {sum(w.stat().st_size for w in wheels) / 1e6:.1f} MB")
    names = ["fresh-cold", "fresh", "rerun", "audit-cold", "audit-warm"]
    samples: dict[str, list[float]] = {name: [] for name in names}
    with workspace("audit") as root, signing_key(root) as (ring, key):
        site = publish(root, args.wheels, key, ring.home)
        client = root / "client"
        client.mkdir()
        lock = client / "locked.txt"
        write_lock(wheels, lock)
        with LoopbackServer(site) as server:
            config = write_safepip_config(
                client / "safepip.toml", list_url=server.url + "sha256sums.txt", key=key
            )
            base = [sys.executable, "-m", "safepip"]
            common = ["-q", "--config", str(config)]

            def env(cache: str) -> dict[str, str]:
                return clean_env(
                    XDG_STATE_HOME=str(root / "state"), XDG_CACHE_HOME=str(root / cache)
                )

            def install(python: Path, cache: str = "cache", *extra: str) -> float:
                argv = [*base, "install", "--python", str(python), *common, *extra]
                seconds, _ = run([*argv, "-r", str(lock)], env=env(cache), cwd=client)
                return seconds

            def audit(python: Path, cache: str, check: bool = True) -> tuple[float, int, str]:
                argv = [*base, "audit", "--python", str(python), *common, "--format", "json"]
                if check:
                    seconds, result = run(argv, env=env(cache), cwd=client)
                    return seconds, result.returncode, result.stdout.decode()
                found = subprocess.run(
                    argv, env=env(cache), cwd=client, capture_output=True, text=True, check=False
                )
                return 0.0, found.returncode, found.stdout

            install(make_venv(root / "warmup"))  # fills the wheel cache; untimed
            shutil.rmtree(root / "warmup")
            for number in range(args.rounds):
                venv = root / f"venv-{number}"
                python = make_venv(venv)
                samples["fresh-cold"].append(
                    install(make_venv(root / "cold"), "cache", "--no-cache-dir")
                )
                shutil.rmtree(root / "cold")
                samples["fresh"].append(install(python))
                samples["rerun"].append(install(python))
                shutil.rmtree(root / f"audit-cache-{number}", ignore_errors=True)
                seconds, code, out = audit(python, f"audit-cache-{number}")
                assert code == 0, out
                samples["audit-cold"].append(seconds)
                for _ in range(WARM_REPEATS):
                    seconds, code, out = audit(python, f"audit-cache-{number}")
                    assert code == 0, out
                    samples["audit-warm"].append(seconds)
                print(
                    f"round {number + 1}/{args.rounds}: "
                    + ", ".join(f"{n} {samples[n][-1]:.2f}s" for n in names),
                    flush=True,
                )
                last = (venv, python, f"audit-cache-{number}")
            if any(w.name.startswith("idna-") for w in wheels):
                promise(*last, audit=audit, install=install)
            assert not server.errors, server.errors
    report(samples, names, len(wheels))


def report(samples: dict[str, list[float]], names: list[str], count: int) -> None:
    """The table, the rerun ratio and the warm audit against their targets."""
    print_table(
        f"{count} wheels into a fresh venv, then again; audit of that venv",
        [(name, samples[name]) for name in names],
        unit="s",
    )
    ratios = [r / f for r, f in zip(samples["rerun"], samples["fresh"], strict=True)]
    ratio = statistics.median(ratios)
    print(
        f"\nrerun / fresh (warm cache), median of per-round ratios: {ratio:.3f} "
        f"(rounds: {', '.join(f'{r:.3f}' for r in ratios)}); target < {RERUN_TARGET}: "
        f"{'MET' if ratio < RERUN_TARGET else 'MISSED'}"
    )
    warm = statistics.median(samples["audit-warm"])
    print(
        f"audit warm, median: {warm:.2f} s; target < {AUDIT_WARM_TARGET} s: "
        f"{'MET' if warm < AUDIT_WARM_TARGET else 'MISSED'}"
    )


if __name__ == "__main__":
    main()
