"""No unvetted byte reaches pip or a build backend on the resolver path (issue #9, critical/high).

Each test serves a real signed index on 127.0.0.1 and an "external" server holding an sdist whose
build backend writes a marker file the moment it is imported. Whatever safepip decides, that
marker must never appear, the external server must never be asked, and nothing is installed.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from safepip._cli import main
from tests.keys import Keyring
from tests.server import LoopbackServer
from tests.site import Site, make_site, published_and_served
from tests.wheels import make_marker_sdist, make_wheel, sha256_of

pytestmark = pytest.mark.e2e


@dataclass
class World:
    site: Site
    server: LoopbackServer
    external: LoopbackServer
    client: Path
    venv: Path
    marker: Path

    @property
    def evil_url(self) -> str:
        return self.external.url + "evil-1.0.tar.gz"

    def evil_wheel(self, name: str, version: str) -> Path:
        """A wheel of ``name`` whose METADATA depends on the marker sdist by direct URL."""
        folder = self.client.parent / f"evil-{name}"
        return make_wheel(folder, name, version, requires=[f"evil @ {self.evil_url}"])

    def installed(self) -> list[str]:
        return sorted(p.name for p in self.venv.glob("lib/python*/site-packages/*.dist-info"))

    def publish_extra(self, wheel: Path) -> None:
        """Add ``wheel`` to the served site and sign a list naming it (serial 2)."""
        shutil.copy(wheel, self.site.out)
        name = wheel.name.split("-", 1)[0]
        page = self.site.out / "simple" / name / "index.html"
        page.parent.mkdir(parents=True, exist_ok=True)
        page.write_text(f'<a href="../../{wheel.name}">{wheel.name}</a>\n')
        files = {p.name: sha256_of(p) for p in sorted(self.site.out.glob("*.whl"))}
        self.site.sign_raw(self.site.raw_list(serial=2, files=files))


@pytest.fixture
def world(tmp_path: Path, keyring: Keyring, monkeypatch: pytest.MonkeyPatch) -> Iterator[World]:
    monkeypatch.setenv("GNUPGHOME", str(keyring.home))
    marker = tmp_path / "BACKEND-RAN"
    make_marker_sdist(tmp_path / "external", "evil", "1.0", marker)
    site = make_site(tmp_path, keyring, {"gamma": ("0.1", ())})
    with (
        LoopbackServer(tmp_path / "external") as external,
        published_and_served(site, monkeypatch) as (server, client, venv),
    ):
        yield World(site, server, external, client, venv, marker)


def safepip(world: World, capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    target = [] if argv[0] == "lock" else ["--python", str(world.venv / "bin" / "python")]
    code = main([argv[0], *target, "-v", *argv[1:]])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


COMMANDS = [
    pytest.param(["install", "--dry-run"], id="install-dry-run"),
    pytest.param(["install"], id="install"),
    pytest.param(["lock", "-o", "lock.txt"], id="lock"),
]


def assert_nothing_ran(world: World, err: str) -> None:
    assert not world.marker.exists(), world.marker.read_text()
    assert world.external.requests == [], "a request reached the URL no list vouches for"
    assert "pip install" not in err or "--dry-run" not in err
    assert world.installed() == []
    assert not (world.client / "lock.txt").exists()


@pytest.mark.parametrize("command", COMMANDS)
def test_a_mirror_serving_a_tampered_wheel_runs_no_code(
    world: World, capsys: pytest.CaptureFixture[str], command: list[str]
) -> None:
    """Critical: under a listed filename, other bytes declaring `evil @ <url>`."""
    tampered = world.evil_wheel("gamma", "0.1")
    world.server.serve_bytes("/gamma-0.1-py3-none-any.whl", tampered.read_bytes())
    scratch = Path(tempfile.gettempdir())  # private to this test (conftest)
    assert list(scratch.iterdir()) == []
    code, out, err = safepip(world, capsys, *command, "gamma")
    assert code == 1, err
    assert "gamma-0.1-py3-none-any.whl: hash-mismatch: the index served other bytes" in out
    said = "lock.txt was not written" if command[0] == "lock" else "nothing was installed"
    assert said in err
    assert_nothing_ran(world, err)
    assert list(scratch.iterdir()) == [], "a temporary file was left behind"


@pytest.mark.parametrize("command", COMMANDS)
def test_a_signed_wheel_with_a_direct_url_dependency_is_refused(
    world: World, capsys: pytest.CaptureFixture[str], command: list[str]
) -> None:
    """High: the list vouches for alpha, but alpha points at bytes nobody vetted."""
    alpha = world.evil_wheel("alpha", "1.0")
    world.publish_extra(alpha)
    code, out, err = safepip(world, capsys, *command, "alpha")
    assert code == 1, err
    assert "alpha-1.0-py3-none-any.whl: unsupported: declares the direct-URL dependency" in out
    assert world.evil_url in out
    assert_nothing_ran(world, err)


def test_a_locked_wheel_with_a_direct_url_dependency_is_refused(
    world: World, capsys: pytest.CaptureFixture[str]
) -> None:
    alpha = world.evil_wheel("alpha", "1.0")
    world.publish_extra(alpha)
    lock = world.client / "locked.txt"
    lock.write_text(f"alpha==1.0 --hash=sha256:{sha256_of(alpha)}\n")
    code, out, err = safepip(world, capsys, "install", "-r", str(lock))
    assert code == 1, err
    assert "alpha: unsupported: alpha 1.0 declares the direct-URL dependency" in out
    assert_nothing_ran(world, err)


def test_a_mirror_hiding_the_newest_listed_version_is_refused(
    world: World, capsys: pytest.CaptureFixture[str]
) -> None:
    """The list names gamma 0.2; the mirror's page leaves it out: no silent downgrade to 0.1."""
    newer = make_wheel(world.client.parent / "more", "gamma", "0.2")
    world.publish_extra(newer)
    page = world.site.out / "simple" / "gamma" / "index.html"
    page.write_text('<a href="../../gamma-0.1-py3-none-any.whl">gamma-0.1-py3-none-any.whl</a>\n')
    code, out, err = safepip(world, capsys, "install", "--dry-run", "gamma")
    assert code == 3, err
    assert "does not offer gamma-0.2-py3-none-any.whl, which the list names" in err
    assert "would install" not in out
    # The honest page again: the newest listed version is chosen.
    page.write_text(
        "".join(
            f'<a href="../../{n}">{n}</a>\n'
            for n in ("gamma-0.1-py3-none-any.whl", "gamma-0.2-py3-none-any.whl")
        )
    )
    code, out, err = safepip(world, capsys, "install", "--dry-run", "gamma")
    assert code == 0, err
    assert "would install gamma 0.2" in out


def test_timeout_bounds_the_resolution(world: World, capsys: pytest.CaptureFixture[str]) -> None:
    wheel = world.site.out / "gamma-0.1-py3-none-any.whl"
    world.server.trickle("/gamma-0.1-py3-none-any.whl", wheel.read_bytes(), interval=1.0)
    started = time.monotonic()
    code, _out, err = safepip(world, capsys, "install", "--timeout", "3", "gamma")
    took = time.monotonic() - started
    assert code == 3, err
    assert took < 20, f"--timeout 3 took {took:.0f} s"
    assert world.installed() == []


def test_no_proxy_variable_reaches_pip(
    world: World, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """pip runs offline on safepip's folder: a proxy (dead here) has nothing to answer."""
    for name in ("http_proxy", "HTTP_PROXY", "https_proxy", "ALL_PROXY"):
        monkeypatch.setenv(name, "http://127.0.0.1:9")
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")  # safepip's own fetches stay direct
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    code, _out, err = safepip(world, capsys, "install", "gamma")
    assert code == 0, err
    assert world.installed() == ["gamma-0.1.dist-info"]


def other_python() -> str | None:
    """An interpreter of another minor version than the one running the tests."""
    for version in ("3.12", "3.13", "3.10"):
        if f"{sys.version_info.major}.{sys.version_info.minor}" == version:
            continue
        found = shutil.which(f"python{version}")
        pyenv = Path(os.environ.get("PYENV_ROOT", Path.home() / ".pyenv"))
        candidates = [found, *map(str, sorted(pyenv.glob(f"versions/{version}.*/bin/python3")))]
        for candidate in filter(None, candidates):
            probe = subprocess.run([candidate, "-c", "pass"], capture_output=True, check=False)
            if probe.returncode == 0:
                return candidate
    return None


def test_lock_file_means_the_same_for_another_interpreter(
    tmp_path: Path,
    keyring: Keyring,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A hashed lock file is judged by its hashes whatever --python is (no resolver pass)."""
    python = other_python()
    if python is None:
        pytest.skip("no second Python version here")
    monkeypatch.setenv("GNUPGHOME", str(keyring.home))
    site = make_site(tmp_path, keyring, {"alpha": ("1.0", ("beta>=2",)), "beta": ("2.0", ())})
    with published_and_served(site, monkeypatch) as (_server, client, _venv):
        other = tmp_path / "other"
        subprocess.run([python, "-m", "venv", "--without-pip", str(other)], check=True)
        target = str(other / "bin" / "python")
        alpha = hashlib.sha256((site.out / "alpha-1.0-py3-none-any.whl").read_bytes()).hexdigest()
        beta = hashlib.sha256((site.out / "beta-2.0-py3-none-any.whl").read_bytes()).hexdigest()
        partial = client / "partial.txt"
        partial.write_text(f"alpha==1.0 --hash=sha256:{alpha}\n")
        code = main(["install", "--python", target, "-r", str(partial)])
        out = capsys.readouterr().out
        assert code == 1
        assert "beta: dependency-missing: alpha 1.0 needs beta>=2" in out
        mixed = client / "mixed.txt"
        mixed.write_text(f"alpha==1.0 --hash=sha256:{'0' * 64}\nbeta\n")
        code = main(["install", "--python", target, "-r", str(mixed)])
        out = capsys.readouterr().out
        assert code == 1
        assert "mixed.txt:2: not-pinned:" in out
        assert "mixed.txt:1: hash-not-in-list:" in out
        full = client / "full.txt"
        full.write_text(f"alpha==1.0 --hash=sha256:{alpha}\nbeta==2.0 --hash=sha256:{beta}\n")
        code = main(["install", "--python", target, "-r", str(full)])
        captured = capsys.readouterr()
        assert code == 0, captured.err
        installed = sorted(p.name for p in other.glob("lib/python*/site-packages/*.dist-info"))
        assert installed == ["alpha-1.0.dist-info", "beta-2.0.dist-info"]
        # A loose request resolves for that interpreter too, in process.
        code = main(["install", "--python", target, "--dry-run", "alpha", "-v"])
        captured = capsys.readouterr()
        assert code == 0, captured.err
        assert "would install beta 2.0" in captured.out
        assert "--dry-run" not in captured.err.replace("install --python", "")
