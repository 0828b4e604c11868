"""Where install goes: --python, --system, VIRTUAL_ENV, a .venv above, or a refusal."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from safepip.destination import Where, choose
from safepip.errors import UsageError
from tests.test_install import Index, index, run

__all__ = ["index"]


def fake_env(folder: Path) -> Path:
    """A folder shaped like a venv (only ``bin/python`` matters to the choice)."""
    (folder / "bin").mkdir(parents=True)
    python = folder / "bin" / "python"
    python.write_text("")
    return python


def nowhere(_name: str) -> None:
    return None


def test_python_wins_and_may_name_an_environment_folder(tmp_path: Path) -> None:
    python = fake_env(tmp_path / "env")
    active = {"VIRTUAL_ENV": str(fake_env(tmp_path / "other").parent.parent)}
    for given in (str(python), str(tmp_path / "env")):
        chosen = choose(Where(python=given), environ=active, cwd=tmp_path, which=nowhere)
        assert (chosen.python, chosen.how) == (str(python), "--python")
    with pytest.raises(UsageError, match="folder without bin/python"):
        choose(Where(python=str(tmp_path)), environ={}, cwd=tmp_path, which=nowhere)


def test_system_takes_the_first_python3_on_path(tmp_path: Path) -> None:
    found = {"python3": "/usr/bin/python3"}
    chosen = choose(Where(system=True), environ={}, cwd=tmp_path, which=found.get)
    assert (chosen.python, chosen.how) == ("/usr/bin/python3", "--system")
    with pytest.raises(UsageError, match="no python3 on PATH"):
        choose(Where(system=True), environ={}, cwd=tmp_path, which=nowhere)


def test_the_active_venv_comes_before_a_dot_venv(tmp_path: Path) -> None:
    active = fake_env(tmp_path / "active")
    fake_env(tmp_path / ".venv")
    chosen = choose(
        Where(), environ={"VIRTUAL_ENV": str(tmp_path / "active")}, cwd=tmp_path, which=nowhere
    )
    assert (chosen.python, chosen.how) == (str(active), "VIRTUAL_ENV")
    with pytest.raises(UsageError, match=r"VIRTUAL_ENV=.*no bin/python"):
        choose(Where(), environ={"VIRTUAL_ENV": str(tmp_path)}, cwd=tmp_path, which=nowhere)


def test_a_dot_venv_is_found_in_the_folder_or_above(tmp_path: Path) -> None:
    python = fake_env(tmp_path / ".venv")
    deep = tmp_path / "a" / "b"
    deep.mkdir(parents=True)
    chosen = choose(Where(), environ={}, cwd=deep, which=nowhere)
    assert (chosen.python, chosen.how) == (str(python), ".venv")


def test_without_an_environment_only_explicit_places_and_dry_runs_proceed(
    tmp_path: Path,
) -> None:
    found = {"python3": "/usr/bin/python3"}
    for where, how in (
        (Where(target=tmp_path), "--target"),
        (Where(prefix=tmp_path), "--prefix"),
        (Where(root=tmp_path), "--root"),
        (Where(user=True), "--user"),
    ):
        chosen = choose(where, environ={}, cwd=tmp_path, which=found.get)
        assert (chosen.python, chosen.how) == ("/usr/bin/python3", how)
    assert choose(Where(dry_run=True), environ={}, cwd=tmp_path, which=nowhere).python is None
    with pytest.raises(UsageError) as refused:
        choose(Where(), environ={}, cwd=tmp_path, which=found.get)
    assert "no environment to install into" in str(refused.value)
    assert refused.value.hint is not None
    assert "--python" in refused.value.hint and "--system" in refused.value.hint


# -- end to end ----------------------------------------------------------------------------------


def test_install_goes_into_the_activated_venv_not_safepips_own(
    index: Index, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("VIRTUAL_ENV", str(index.venv))
    own = subprocess.run(
        [sys.executable, "-m", "pip", "list", "--format=freeze"],
        capture_output=True, text=True, check=True, env={"PIP_CONFIG_FILE": "/dev/null"},
    ).stdout  # fmt: skip
    code, out, err = run(capsys, "install", "-r", str(index.locked("gamma")))
    assert code == 0, err
    assert f"installed 1 vetted package(s): gamma==0.1 into {index.venv} ({index.python})" in out
    assert index.installed() == ["gamma==0.1"]
    assert "gamma" not in own


def test_install_finds_a_dot_venv_above_the_working_folder(
    index: Index, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    (index.client / ".venv").symlink_to(index.venv, target_is_directory=True)
    lock = index.locked("gamma")
    deeper = index.client / "src" / "app"
    deeper.mkdir(parents=True)
    monkeypatch.chdir(deeper)
    code, out, err = run(capsys, "install", "-r", str(lock))
    assert code == 0, err
    assert f"into {index.client / '.venv'}" in out
    assert index.installed() == ["gamma==0.1"]


def test_install_with_no_environment_is_refused_naming_python_and_system(
    index: Index,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    lonely = tmp_path / "lonely"
    lonely.mkdir()
    monkeypatch.chdir(lonely)
    lock = index.locked("gamma")
    code, _out, err = run(capsys, "--config", str(index.client / "safepip.toml"), "install",
                         "-r", str(lock))  # fmt: skip
    assert code == 2
    assert "error: no environment to install into" in err
    assert "hint:" in err and "--python" in err and "--system" in err
    assert index.installed() == []
