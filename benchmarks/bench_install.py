"""Time ``safepip install -r locked.txt`` against plain pip on a real 55-wheel web-app closure.

What it measures
    The dependency closure of a typical web application (flask, sqlalchemy, alembic, requests,
    boto3, pydantic, fastapi, uvicorn[standard], celery, redis, jinja2, gunicorn, httpx,
    psycopg2-binary: 55 wheels, 39 MB, pure Python or cp311 manylinux x86_64) is downloaded once
    from PyPI into a cache folder (``--cache``, reused when present), published with
    ``safepip publish`` under a throwaway ed25519 key (temporary GNUPGHOME) and served over HTTP
    on 127.0.0.1 (tests/server.py). ``locked.txt`` pins every wheel: ``name==version
    --hash=sha256:…``.

    Each round (``--rounds``, default 5) makes fresh venvs with ``python -m venv`` (with pip;
    untimed) and then times, in a rotating order so that no variant always goes first:

    (a) ``venv/bin/python -m pip install --isolated --no-cache-dir --require-hashes
        --index-url http://127.0.0.1:PORT/simple/ -r locked.txt``
    (b) ``python -m safepip install --python venv/bin/python -q --config safepip.toml
        -r locked.txt`` (safepip run from this interpreter, the dev venv)
    (c) (a) with ``--no-compile``: how much of pip's time is byte-compilation.

    With ``--loose`` the request is the 14 project names above, unpinned (``loose.txt``), so
    the resolver path is timed instead of the lock file: (a) plain pip resolving them against
    the loopback index, (b) ``safepip install -r loose.txt`` of this checkout (in-process
    resolution over vetted metadata), and, with ``--baseline DIR``, (d) the same command run
    from another checkout of safepip (``PYTHONPATH=DIR``; e.g. ``git worktree add /tmp/base
    e21933d`` for the pip ``--dry-run`` resolver that this one replaced).

    Every pip call runs with ``PIP_*`` variables removed and ``PIP_CONFIG_FILE=os.devnull``;
    safepip's trust state goes to the scratch folder. After each run the venv must hold the 55
    projects at the locked versions.

How to run
    ``.venv/bin/python benchmarks/bench_install.py [--rounds 5] [--cache DIR]
    [--loose [--baseline DIR]]``
    The first run needs PyPI (``pip download``); later runs are offline but for 127.0.0.1.
    Needs gpg and gpgconf on PATH. Leaves nothing behind but the wheel cache.

Targets
    median of the per-round ratios safepip / pip (a) at most 1.05.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shutil
import statistics
import sys
from pathlib import Path

from _common import (
    Key,
    LoopbackServer,
    clean_env,
    median,
    print_table,
    run,
    signing_key,
    workspace,
    write_config,
)
from packaging import tags
from packaging.utils import parse_wheel_filename

TARGET_RATIO = 1.05
# Under /tmp on purpose: a cache that survives runs, not a secret (S108).
DEFAULT_CACHE = Path("/tmp/bench-install-wheels-cp311")  # noqa: S108
PROJECTS = (
    "flask",
    "sqlalchemy",
    "alembic",
    "requests",
    "boto3",
    "pydantic",
    "fastapi",
    "uvicorn[standard]",
    "celery",
    "redis",
    "jinja2",
    "gunicorn",
    "httpx",
    "psycopg2-binary",
)
MIN_WHEELS, MAX_WHEELS = 40, 60
PROBE = (
    "import importlib.metadata as m, json;"
    "print(json.dumps(sorted([d.metadata['Name'].lower().replace('_', '-').replace('.', '-'),"
    " d.version] for d in m.distributions())))"
)


def ensure_cache(cache: Path) -> list[Path]:
    """The cached wheels, downloaded from PyPI first if the cache is missing or empty."""
    wheels = sorted(cache.glob("*.whl"))
    if not wheels:
        cache.mkdir(parents=True, exist_ok=True)
        print(f"downloading the closure of {len(PROJECTS)} projects into {cache} …")
        argv = [sys.executable, "-m", "pip", "download", "--disable-pip-version-check"]
        argv += ["--only-binary", ":all:", "--index-url", "https://pypi.org/simple"]
        run([*argv, "-d", str(cache), *PROJECTS], env=clean_env(), timeout=1800)
        wheels = sorted(cache.glob("*.whl"))
    supported = set(tags.sys_tags())
    for wheel in wheels:
        if not set(parse_wheel_filename(wheel.name)[3]) & supported:
            raise SystemExit(f"{wheel.name} does not fit this interpreter; remove {cache}")
    if not MIN_WHEELS <= len(wheels) <= MAX_WHEELS:
        raise SystemExit(f"{cache} holds {len(wheels)} wheels, not {MIN_WHEELS}-{MAX_WHEELS}")
    return wheels


def write_lock(wheels: list[Path], path: Path) -> dict[str, str]:
    """``locked.txt`` pinning every wheel with its sha256; returns ``name → version``."""
    pins = {}
    lines = []
    for wheel in wheels:
        name, version, _, _ = parse_wheel_filename(wheel.name)
        digest = hashlib.sha256(wheel.read_bytes()).hexdigest()
        lines.append(f"{name}=={version} --hash=sha256:{digest}")
        pins[str(name)] = str(version)
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return pins


def publish(root: Path, cache: Path, key: Key, gnupghome: Path) -> Path:
    out = root / "site"
    argv = [sys.executable, "-m", "safepip", "publish", str(cache), "--out", str(out)]
    argv += ["--key", key.fingerprint, "--no-config", "--trusted-key", key.fingerprint]
    argv += ["--key-file", str(key.public_file), "-q"]
    run(argv, env=clean_env(GNUPGHOME=str(gnupghome), XDG_STATE_HOME=str(root / "state")))
    return out


def make_venv(path: Path) -> Path:
    run([sys.executable, "-m", "venv", str(path)], env=clean_env())
    return path / "bin" / "python"


def check_installed(python: Path, pins: dict[str, str]) -> None:
    _, result = run([str(python), "-I", "-c", PROBE], env=clean_env())
    installed = dict(json.loads(result.stdout))
    wrong = {n: v for n, v in pins.items() if installed.get(n) != v}
    if wrong:
        raise RuntimeError(f"{python}: not installed as locked: {sorted(wrong)[:5]}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--cache", type=Path, default=DEFAULT_CACHE)
    parser.add_argument("--loose", action="store_true", help="time the resolver path")
    parser.add_argument("--baseline", type=Path, help="another safepip checkout to compare")
    args = parser.parse_args()

    wheels = ensure_cache(args.cache)
    size = sum(w.stat().st_size for w in wheels)
    print(f"{len(wheels)} wheels, {size / 1e6:.1f} MB, from {args.cache}")

    with workspace("install") as root, signing_key(root) as (ring, key):
        site = publish(root, args.cache, key, ring.home)
        client = root / "client"
        client.mkdir()
        lock = client / "locked.txt"
        pins = write_lock(wheels, lock)
        if args.loose:
            lock = client / "loose.txt"
            lock.write_text("".join(f"{p}\n" for p in PROJECTS), encoding="utf-8")
        with LoopbackServer(site) as server:
            config = write_config(
                client / "safepip.toml", list_url=server.url + "sha256sums.txt", key=key
            )
            index = server.url + "simple/"
            pip_env = clean_env()
            safepip_env = clean_env(XDG_STATE_HOME=str(root / "state"))

            hashes = [] if args.loose else ["--require-hashes"]

            def pip_install(python: Path, *extra: str) -> tuple[list[str], dict[str, str]]:
                argv = [str(python), "-m", "pip", "install", "--isolated", "--no-cache-dir"]
                argv += [*hashes, *extra, "--index-url", index, "-r", str(lock)]
                return argv, pip_env

            def safepip_install(
                python: Path, checkout: Path | None = None
            ) -> tuple[list[str], dict[str, str]]:
                argv = [sys.executable, "-m", "safepip", "install", "--python", str(python)]
                argv += ["-q", "--config", str(config), "-r", str(lock)]
                if checkout is None:
                    # Like for like with pip --no-cache-dir (bench_audit.py times the cache).
                    return [*argv, "--no-cache-dir"], safepip_env
                return argv, {**safepip_env, "PYTHONPATH": str(checkout.resolve())}

            variants = {
                "pip": pip_install,
                "safepip": safepip_install,
                "pip --no-compile": lambda python: pip_install(python, "--no-compile"),
            }
            if args.baseline is not None:
                variants["safepip baseline"] = lambda python: safepip_install(python, args.baseline)
            names = list(variants)
            samples: dict[str, list[float]] = {name: [] for name in names}
            for number in range(args.rounds):
                order = names[number % len(names) :] + names[: number % len(names)]
                venvs = {name: make_venv(root / f"venv-{i}") for i, name in enumerate(names)}
                timings = []
                for name in order:
                    argv, env = variants[name](venvs[name])
                    seconds, _ = run(argv, env=env, cwd=client)
                    check_installed(venvs[name], pins)
                    samples[name].append(seconds)
                    timings.append(f"{name} {seconds:.2f}s")
                print(f"round {number + 1}/{args.rounds}: " + ", ".join(timings), flush=True)
                for i in range(len(names)):
                    shutil.rmtree(root / f"venv-{i}")
            assert not server.errors, server.errors

    report(samples, names, wheels, args)


def report(
    samples: dict[str, list[float]], names: list[str], wheels: list[Path], args: argparse.Namespace
) -> None:
    """The table and the ratios, each a median of per-round ratios."""
    what = "loosely requested" if args.loose else "locked"
    print_table(
        f"install {len(wheels)} {what} wheels into a fresh venv (index on 127.0.0.1)",
        [(name, samples[name]) for name in names],
        unit="s",
    )
    ratios = [s / p for s, p in zip(samples["safepip"], samples["pip"], strict=True)]
    compile_share = [
        1 - n / p for n, p in zip(samples["pip --no-compile"], samples["pip"], strict=True)
    ]
    ratio = statistics.median(ratios)
    print(
        f"\nsafepip / pip, median of per-round ratios: {ratio:.2f} "
        f"(rounds: {', '.join(f'{r:.2f}' for r in ratios)}); target <= {TARGET_RATIO}: "
        f"{'MET' if ratio <= TARGET_RATIO else 'MISSED'}"
    )
    print(
        f"byte-compilation share of plain pip's time: {median(compile_share) * 100:.0f}% "
        f"(1 - (c)/(a), median of rounds)"
    )
    if "safepip baseline" in samples:
        against = [
            s / b for s, b in zip(samples["safepip"], samples["safepip baseline"], strict=True)
        ]
        print(
            f"safepip / safepip at {args.baseline}, median of per-round ratios: "
            f"{statistics.median(against):.2f} (rounds: {', '.join(f'{r:.2f}' for r in against)})"
        )


if __name__ == "__main__":
    main()
