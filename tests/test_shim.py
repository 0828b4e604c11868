"""shim: a real venv's pip whose install goes through safepip; its other commands stay pip's."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

import pytest

from safepip._cli import main
from tests.keys import Keyring
from tests.site import make_site, published_and_served

pytestmark = pytest.mark.e2e


def _pip(venv: Path, *argv: str, name: str = "pip") -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(venv / "bin" / name), *argv],
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "PIP_CONFIG_FILE": os.devnull},
        timeout=300,
    )


def _installed(venv: Path) -> list[str]:
    probe = (
        "import importlib.metadata as m;"
        "print(sorted(d.metadata['Name'] for d in m.distributions()))"
    )
    result = subprocess.run(
        [str(venv / "bin" / "python"), "-I", "-c", probe],
        capture_output=True,
        text=True,
        check=True,
    )
    return eval(result.stdout)  # noqa: S307  (our own probe's repr of a list of str)


def test_shim_routes_install_through_safepip_and_the_rest_to_pip(
    tmp_path: Path,
    keyring: Keyring,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("GNUPGHOME", str(keyring.home))
    site = make_site(tmp_path, keyring, {"alpha": ("1.0", ()), "beta": ("2.0", ())})
    with published_and_served(site, monkeypatch, "--serial", "1") as (_, client, _venv):
        venv = tmp_path / "withpip"
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        original = {p.name: p.read_bytes() for p in (venv / "bin").glob("pip*")}
        assert "pip" in original
        python = str(venv / "bin" / "python")

        assert main(["shim", "--python", python]) == 0
        out = capsys.readouterr().out
        assert "`install` now runs safepip install" in out
        for name in original:
            assert b"safepip shim" in (venv / "bin" / name).read_bytes()

        # Other commands: the real pip.
        version = _pip(venv, "--version")
        assert version.returncode == 0 and version.stdout.startswith("pip "), version

        # install: vetted. Options before the command go through as well.
        sha = hashlib.sha256((site.out / "alpha-1.0-py3-none-any.whl").read_bytes()).hexdigest()
        (client / "req.txt").write_text(f"alpha==1.0 --hash=sha256:{sha}\n")
        done = _pip(venv, "-q", "install", "-r", "req.txt", name="pip3")
        assert done.returncode == 0, done.stderr
        assert "alpha" in _installed(venv)

        # An unlisted requirement is refused by safepip, and nothing is installed.
        before = _installed(venv)
        refused = _pip(venv, "install", "gamma")
        assert refused.returncode == 1, refused
        assert "not-in-list" in refused.stdout + refused.stderr
        assert _installed(venv) == before

        # --remove restores each launcher byte for byte.
        assert main(["shim", "--python", python, "--remove"]) == 0
        assert {p.name: p.read_bytes() for p in (venv / "bin").glob("pip*")} == original
        assert not list((venv / "bin").glob(".pip*"))
        assert main(["shim", "--python", python, "--remove"]) == 0
        assert "nothing to remove" in capsys.readouterr().out

        # pip and setuptools are judged like any other distribution.
        bundled = [n for n in ("pip", "setuptools") if n in [d.lower() for d in _installed(venv)]]
        assert main(["audit", "--python", python]) == 1
        out = capsys.readouterr().out
        for name in bundled:
            assert f"\n{name} " in f"\n{out}" and "not-in-list" in out
        excluded = [f"--exclude={name}" for name in bundled]
        assert main(["audit", "--python", python, *excluded]) == 0, capsys.readouterr()


def test_shim_needs_a_working_interpreter(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["shim", "--python", str(tmp_path / "python"), "--no-config"]) == 2
    assert "cannot run it" in capsys.readouterr().err
