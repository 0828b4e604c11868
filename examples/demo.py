"""safepip in five minutes: publish a signed index, install from it, watch three attacks fail.

Run it with ``scripts/demo`` (which sets up a venv first), or ``python examples/demo.py``
from an environment where safepip is installed. Everything happens in a temporary folder that
is removed at the end, with a throwaway GnuPG key whose agent is stopped on the way out.

``--offline`` builds three small wheels locally instead of downloading the ``requests``
closure from PyPI (the test suite runs the demo that way).
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import textwrap
import zipfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime, timedelta, timezone
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from threading import Thread
from typing import Any

BOLD, DIM, RESET = ("\x1b[1m", "\x1b[2m", "\x1b[0m") if sys.stdout.isatty() else ("", "", "")


def step(number: int, title: str) -> None:
    print(f"\n{BOLD}==> {number}. {title}{RESET}", flush=True)


def run(argv: Sequence[str], *, expect: int = 0, env: dict[str, str] | None = None) -> str:
    """Run a command, echo it and its output (indented), and check its exit code."""
    shown = " ".join(a if len(a) < 70 else "…" + a[-40:] for a in argv)
    print(f"{DIM}$ {shown}{RESET}", flush=True)
    result = subprocess.run(
        argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env, check=False
    )
    output = result.stdout.rstrip()
    if output:
        print(textwrap.indent(output, "    "), flush=True)
    print(f"{DIM}    (exit {result.returncode}){RESET}", flush=True)
    if result.returncode != expect:
        raise SystemExit(f"demo: expected exit {expect}, got {result.returncode}")
    return result.stdout


def safepip(*args: str, expect: int = 0) -> str:
    return run([sys.executable, "-m", "safepip", *args], expect=expect)


def _record_hash(data: bytes) -> str:
    return base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()


def build_wheel(folder: Path, name: str, version: str, requires: Sequence[str] = ()) -> None:
    """A small, valid pure-Python wheel (offline mode)."""
    dist = f"{name}-{version}.dist-info"
    files = {
        f"{name}/__init__.py": f'__version__ = "{version}"\n',
        f"{dist}/METADATA": "Metadata-Version: 2.1\n"
        f"Name: {name}\nVersion: {version}\n" + "".join(f"Requires-Dist: {r}\n" for r in requires),
        f"{dist}/WHEEL": "Wheel-Version: 1.0\nGenerator: safepip-demo\n"
        "Root-Is-Purelib: true\nTag: py3-none-any\n",
    }
    record = "".join(
        f"{path},sha256={_record_hash(text.encode())},{len(text.encode())}\n"
        for path, text in files.items()
    )
    files[f"{dist}/RECORD"] = record + f"{dist}/RECORD,,\n"
    with zipfile.ZipFile(folder / f"{name}-{version}-py3-none-any.whl", "w") as archive:
        for path, text in files.items():
            archive.writestr(zipfile.ZipInfo(path, (2024, 1, 1, 0, 0, 0)), text)


def get_wheels(folder: Path, *, offline: bool) -> str:
    """Fill ``folder`` with wheels; return the project to install."""
    folder.mkdir()
    if offline:
        build_wheel(folder, "greeting", "1.0", ["colorful-words>=2"])
        build_wheel(folder, "colorful_words", "2.1")
        build_wheel(folder, "unused", "0.1")
        return "greeting"
    env = {k: v for k, v in os.environ.items() if not k.startswith("PIP_")}
    env["PIP_CONFIG_FILE"] = os.devnull
    run(
        [sys.executable, "-m", "pip", "download", "--quiet", "--only-binary", ":all:",
         "--disable-pip-version-check", "-d", str(folder), "requests==2.32.3"],
        env=env,
    )  # fmt: skip
    return "requests"


@contextmanager
def throwaway_key(home: Path) -> Iterator[tuple[str, Path]]:
    """A fresh ed25519 signing key in its own GnuPG home; the agent is stopped at the end."""
    home.mkdir(mode=0o700)
    gpg = ["gpg", "--homedir", str(home), "--batch", "--passphrase", ""]
    try:
        subprocess.run(
            [*gpg, "--quick-gen-key", "safepip demo <demo@example.test>", "ed25519", "sign", "1d"],
            check=True, capture_output=True,
        )  # fmt: skip
        listing = subprocess.run(
            [*gpg, "--with-colons", "--list-keys"], check=True, capture_output=True, text=True
        ).stdout
        fingerprint = next(
            line.split(":")[9] for line in listing.splitlines() if line.startswith("fpr:")
        )
        public = home.parent / "publisher-key.asc"
        public.write_bytes(
            subprocess.run(
                [*gpg, "--armor", "--export", fingerprint], check=True, capture_output=True
            ).stdout
        )
        yield fingerprint, public
    finally:
        subprocess.run(
            ["gpgconf", "--homedir", str(home), "--kill", "all"], capture_output=True, check=False
        )


class _QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


@contextmanager
def serve(folder: Path) -> Iterator[str]:
    """Serve ``folder`` on 127.0.0.1, as any static web server would."""

    def handler(*args: Any) -> _QuietHandler:
        return _QuietHandler(*args, directory=str(folder))

    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def fresh_venv(path: Path) -> str:
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(path)], check=True)
    return str(path / "bin" / "python")


def installed(python: str) -> str:
    probe = (
        "import importlib.metadata as m; print(', '.join(sorted("
        "f\"{d.metadata['Name']}=={d.version}\" for d in m.distributions())) or '(nothing)')"
    )
    return subprocess.run(
        [python, "-I", "-c", probe], capture_output=True, text=True, check=True
    ).stdout.strip()


def demo(work: Path, *, offline: bool) -> None:
    os.chdir(work)
    step(1, "The publisher gets wheels of known provenance")
    project = get_wheels(work / "wheels", offline=offline)
    for wheel in sorted((work / "wheels").iterdir()):
        print(f"    {wheel.name}")

    with throwaway_key(work / "gnupg") as (fingerprint, public):
        os.environ["GNUPGHOME"] = str(work / "gnupg")
        step(2, "The publisher hashes them, signs the list and writes a static index")
        pins = ["--trusted-key", fingerprint, "--key-file", str(public), "--no-config"]
        safepip(
            "publish", "wheels", "--out", "site", "--key", fingerprint, "--expires", "30d", *pins
        )
        print(textwrap.indent((work / "site" / "sha256sums.txt").read_text(), "    | "))

        with serve(work / "site") as url:
            step(3, f"The index is served on {url}; the user pins the key in safepip.toml")
            (work / "safepip.toml").write_text(
                f'list = "{url}sha256sums.txt"\n'
                f'trusted-keys = ["{fingerprint}"]\n'
                f'key-files = ["{public.name}"]\n'
            )
            print(textwrap.indent((work / "safepip.toml").read_text(), "    | "))
            safepip("verify")

            step(4, f"safepip lock writes a hashed lock file for {project}, from the list")
            safepip("lock", project, "-o", "requirements.txt")
            print(textwrap.indent((work / "requirements.txt").read_text(), "    | "))

            step(5, "safepip install into a fresh virtual environment")
            python = fresh_venv(work / "venv")
            safepip("install", "--python", python, "-r", "requirements.txt")
            print(f"    installed in the venv: {installed(python)}")

            step(6, "Attack 1: the index serves a tampered wheel")
            victim = sorted((work / "site").glob("*.whl"))[0]
            original = victim.read_bytes()
            victim.write_bytes(original[:-10] + b"tampered!!")
            python = fresh_venv(work / "venv-tampered")
            # --no-cache-dir: the good copy cached by step 5 would otherwise be used (re-hashed)
            # and the tampered bytes never fetched.
            safepip(
                "install", "--python", python, "--no-cache-dir", "-r", "requirements.txt", expect=1
            )
            print(f"    installed in the venv: {installed(python)}")
            victim.write_bytes(original)

            step(7, "Attack 2: a typo in a requirement names a lookalike of a popular package")
            safepip("install", "--python", python, "reqeusts", expect=1)

            step(8, "Attack 3: a mirror replays an old signed list that has expired (freeze)")
            sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
            from safepip import gpg, hashlist  # noqa: PLC0415  (the demo plays the attacker)

            issued = datetime.now(tz=timezone.utc).replace(microsecond=0) - timedelta(days=40)
            files = {
                e.filename: e.sha256
                for e in hashlist.parse((work / "site" / "sha256sums.txt").read_bytes()).entries
            }
            stale = hashlist.serialise(
                files, serial=1, issued=issued, expires=issued + timedelta(days=30)
            )
            (work / "site" / "sha256sums.txt").write_bytes(stale)
            (work / "site" / "sha256sums.txt.asc").write_bytes(
                gpg.sign(stale, fingerprint=fingerprint, gnupghome=work / "gnupg")
            )
            safepip("install", "--python", python, "-r", "requirements.txt", expect=3)
            print(f"    installed in the venv: {installed(python)}")

    print(f"\n{BOLD}Done.{RESET} One vetted install, three refusals, nothing unvetted installed.")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--offline", action="store_true", help="build small wheels locally")
    parser.add_argument("--keep", action="store_true", help="keep the work folder")
    args = parser.parse_args()
    if shutil.which("gpg") is None:
        raise SystemExit("demo: GnuPG is needed: apt-get install gnupg (or brew install gnupg)")
    work = Path(tempfile.mkdtemp(prefix="safepip-demo-"))
    home = Path.cwd()
    try:
        print(f"{DIM}working in {work}{RESET}")
        demo(work, offline=args.offline)
    finally:
        os.chdir(home)
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
