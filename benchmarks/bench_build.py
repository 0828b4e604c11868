"""``safepip build --check`` on real sdists of popular projects, from PyPI (network needed).

Not part of the test run. For each pinned project, the sdist's sha256 is taken from PyPI's simple
page (the hash upstream published), the pool of build dependencies is written once by
``safepip build --lock-build-deps`` against https://pypi.org/simple/, and then each sdist is built
twice in different folders (``--check``), one safepip run per sdist so that one failure does not
hide the others. Prints the table: project, backend, wheel, shared objects in it, seconds (the
first build, environment included), identical. The pool it locked is printed on stderr: a name
at two versions there is a build-dependency conflict one shared build environment cannot meet.

    python benchmarks/bench_build.py [--out FILE.md] [NAME==VERSION ...]

The sample was fixed before the first run (several backends, three C extensions, and versions
whose build requirements conflict) and was not changed after seeing results.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import urllib.request
import zipfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
INDEX = "https://pypi.org/simple/"

SAMPLE = (
    # flit_core
    "idna==3.10",
    "tomli==2.2.1",
    "jinja2==3.1.4",
    "itsdangerous==2.2.0",
    "blinker==1.9.0",
    "typing_extensions==4.12.2",
    "packaging==24.2",
    # hatchling
    "urllib3==2.2.3",
    "iniconfig==2.0.0",
    "platformdirs==4.3.6",
    "attrs==24.2.0",
    # pdm-backend, poetry-core
    "fastapi==0.115.5",
    "tomlkit==0.13.2",
    # setuptools, pure Python
    "six==1.16.0",
    "certifi==2024.8.30",
    "click==8.1.7",
    "python-dateutil==2.9.0.post0",
    # setuptools with C extensions
    "markupsafe==3.0.2",
    "simplejson==3.19.3",
    "wrapt==1.17.0",
    "msgpack==1.1.0",
)


def sdist_line(spec: str) -> str:
    """The pinned line, with the sha256 PyPI's simple page publishes for the .tar.gz sdist."""
    name, version = spec.split("==")
    with urllib.request.urlopen(f"{INDEX}{name}/", timeout=60) as response:
        page = response.read().decode()
    prefix = re.escape(name.replace("-", "_")) + "|" + re.escape(name)
    pattern = rf"(?i)/(?:{prefix})-{re.escape(version)}\.tar\.gz#sha256=([0-9a-f]{{64}})"
    found = re.search(pattern, page)
    if found is None:
        raise SystemExit(f"{spec}: no .tar.gz sdist on PyPI")
    return f"{spec} --hash=sha256:{found[1]}\n"


def safepip(*argv: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PIP_CONFIG_FILE": os.devnull}
    return subprocess.run(
        [sys.executable, "-m", "safepip", "--no-config", *argv],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("specs", nargs="*", default=list(SAMPLE))
    parser.add_argument("--out", type=Path, help="also write the table here (Markdown)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-build-") as scratch:
        work = Path(scratch)
        lines = {spec: sdist_line(spec) for spec in args.specs}
        everything = work / "sdists.txt"
        everything.write_text("".join(lines.values()))
        pool = work / "pool.txt"
        done = safepip(
            "build", "--lock-build-deps", "-r", str(everything),
            "--build-requirements", str(pool), "--index-url", INDEX, "--timeout", "3600",
        )  # fmt: skip
        if done.returncode != 0:
            print(done.stderr, file=sys.stderr)
            return 1
        print(pool.read_text(), file=sys.stderr)
        rows = [("project", "backend", "wheel", ".so files", "seconds", "identical", "note")]
        for spec, line in lines.items():
            one = work / f"{spec}.txt"
            one.write_text(line)
            done = safepip(
                "build", "--check", "--format", "json", "-r", str(one),
                "--build-requirements", str(pool), "--index-url", INDEX,
                "--out", str(work / "out"), "--timeout", "3600",
            )  # fmt: skip
            document = json.loads(done.stdout or "{}")
            if done.returncode == 0:
                built = document["built"][0]
                with zipfile.ZipFile(work / "out" / built["wheel"]) as wheel:
                    shared = sum(name.endswith(".so") for name in wheel.namelist())
                rows.append(
                    (spec, built["backend"], built["wheel"], str(shared),
                     f"{built['seconds']:.1f}", "yes", "")
                )  # fmt: skip
            else:
                why = document.get("error", {}).get("message", done.stderr.strip()[-200:])
                rows.append((spec, "?", "-", "-", "-", "no", why[:300]))
            print(" | ".join(rows[-1]), file=sys.stderr, flush=True)
    table = "\n".join(f"| {' | '.join(row)} |" for row in rows[:1])
    table += "\n|" + "---|" * len(rows[0]) + "\n"
    table += "\n".join(f"| {' | '.join(row)} |" for row in rows[1:]) + "\n"
    print(table)
    if args.out is not None:
        args.out.write_text(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
