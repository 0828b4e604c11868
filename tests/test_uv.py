"""safepip.uv against the real uv of the ``safepip[uv]`` extra: real wheels, real venvs."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from safepip import uv
from safepip.errors import PipError, UsageError
from tests.wheels import make_wheel, sha256_of


def venv(path: Path) -> str:
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(path)], check=True)
    return str(path / "bin" / "python")


def site_packages(python: str) -> set[str]:
    (lib,) = Path(python).parent.parent.glob("lib/python*/site-packages")
    return {p.name for p in lib.iterdir()}


def pinned(path: Path, *lines: str) -> Path:
    path.write_text("".join(f"{line}\n" for line in lines))
    return path


def test_the_environment_drops_everything_that_configures_uv_or_pip() -> None:
    env = uv.uv_environment(
        {"PATH": "/bin", "HOME": "/h", "UV_INDEX_URL": "x", "uv_find_links": "x",
         "UV_NO_VERIFY_HASHES": "1", "UV_CACHE_DIR": "/c", "VIRTUAL_ENV": "/v",
         "CONDA_PREFIX": "/c", "PIP_INDEX_URL": "x", "PYTHONPATH": "/p", "HTTPS_PROXY": "x",
         "SSL_CERT_FILE": "/ca"}
    )  # fmt: skip
    assert env == {"PATH": "/bin", "HOME": "/h", "SSL_CERT_FILE": "/ca", "UV_NO_CONFIG": "1",
                   "UV_NO_PROGRESS": "1", "PYTHONNOUSERSITE": "1"}  # fmt: skip


def test_uv_installs_the_pinned_wheels_into_a_venv(tmp_path: Path) -> None:
    python = venv(tmp_path / "venv")
    wheel = make_wheel(tmp_path / "wheels", "gamma", "0.1")
    req = pinned(tmp_path / "vetted.txt", f"gamma==0.1 --hash=sha256:{sha256_of(wheel)}")
    log: list[str] = []
    uv.install(wheel.parent, req, python_target=python, target_dir=None, environ={"PATH": ""},
               log=log.append)  # fmt: skip
    assert {"gamma", "gamma-0.1.dist-info"} <= site_packages(python)
    assert "--cache-dir" in log[0] and "--offline" in log[0] and "--no-config" in log[0]
    # uv's private, empty cache was made beside the wheel folder and is gone again.
    assert str(tmp_path / "uv-cache-") in log[0]
    assert not list(tmp_path.glob("uv-cache-*"))


def test_a_cache_folder_given_is_made_private_and_left_to_the_caller(tmp_path: Path) -> None:
    python = venv(tmp_path / "venv")
    wheel = make_wheel(tmp_path / "wheels", "gamma", "0.1")
    req = pinned(tmp_path / "vetted.txt", f"gamma==0.1 --hash=sha256:{sha256_of(wheel)}")
    log: list[str] = []
    cache = tmp_path / "scratch" / "uv-cache"
    cache.parent.mkdir()
    uv.install(wheel.parent, req, python_target=python, target_dir=None, environ={"PATH": ""},
               log=log.append, cache_dir=cache)  # fmt: skip
    assert {"gamma", "gamma-0.1.dist-info"} <= site_packages(python)
    assert f"--cache-dir {cache}" in log[0]
    assert cache.is_dir() and (cache.stat().st_mode & 0o777) == 0o700
    assert not list(tmp_path.glob("uv-cache-*")), "no cache of its own beside the wheels"
    with pytest.raises(FileExistsError):  # only a new folder: nothing in it from elsewhere
        uv.install(wheel.parent, req, python_target=python, target_dir=None,
                   environ={"PATH": ""}, cache_dir=cache)  # fmt: skip


def test_uv_re_hashes_and_refuses_a_wheel_changed_after_vetting(tmp_path: Path) -> None:
    python = venv(tmp_path / "venv")
    before = site_packages(python)
    good = make_wheel(tmp_path / "good", "gamma", "0.1")
    digest = sha256_of(good)
    swapped = make_wheel(tmp_path / "wheels", "gamma", "0.1", modules={"gamma/x.py": "EVIL=1\n"})
    req = pinned(tmp_path / "vetted.txt", f"gamma==0.1 --hash=sha256:{digest}")
    with pytest.raises(PipError) as caught:
        uv.install(swapped.parent, req, python_target=python, target_dir=None, environ={})
    message = str(caught.value)
    assert message.startswith("uv failed to install the vetted wheels: uv's re-hash does not")
    assert f"gamma==0.1 (expected sha256 {digest}, got {sha256_of(swapped)})" in message
    assert caught.value.exit_code == 4
    assert "changed after safepip hashed it" in (caught.value.hint or "")
    assert site_packages(python) == before


def test_a_wheel_that_is_not_in_the_folder_is_never_looked_for_elsewhere(tmp_path: Path) -> None:
    python = venv(tmp_path / "venv")
    (tmp_path / "wheels").mkdir()
    req = pinned(tmp_path / "vetted.txt", f"idna==3.10 --hash=sha256:{'0' * 64}")
    with pytest.raises(PipError, match=r"^uv failed to install the vetted wheels: .*idna"):
        uv.install(tmp_path / "wheels", req, python_target=python, target_dir=None, environ={})


def test_target_staging_folder_gets_no_lock_file(tmp_path: Path) -> None:
    wheel = make_wheel(tmp_path / "wheels", "gamma", "0.1")
    req = pinned(tmp_path / "vetted.txt", f"gamma==0.1 --hash=sha256:{sha256_of(wheel)}")
    staging = tmp_path / "staging"
    staging.mkdir()
    uv.install(wheel.parent, req, python_target=None, target_dir=staging, environ={})
    assert sorted(p.name for p in staging.iterdir()) == ["gamma", "gamma-0.1.dist-info"]


def test_a_missing_interpreter_or_uv_binary_is_a_usage_error(tmp_path: Path) -> None:
    req = pinned(tmp_path / "vetted.txt", "")
    with pytest.raises(UsageError, match="no such file"):
        uv.install(tmp_path, req, python_target=str(tmp_path / "nope"), target_dir=None,
                   environ={})  # fmt: skip
    with pytest.raises(UsageError, match=r"cannot run uv .*: No such file") as caught:
        uv.install(tmp_path, req, python_target=None, target_dir=None, environ={},
                   uv_binary=str(tmp_path / "uv"))  # fmt: skip
    assert "safepip[uv]" in (caught.value.hint or "")


def test_find_uv_names_the_extra_when_uv_is_absent(monkeypatch: pytest.MonkeyPatch) -> None:
    assert Path(uv.find_uv()).is_file()
    monkeypatch.setitem(sys.modules, "uv", None)
    with pytest.raises(UsageError, match="uv is not installed") as caught:
        uv.find_uv()
    assert caught.value.hint == (
        "install the optional extra: `pip install 'safepip[uv]'`, or use installer = pip"
    )
