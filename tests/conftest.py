"""Shared fixtures: real gpg keys, generated once per test session in a temporary home."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.keys import Keyring, make_keyring


@pytest.fixture(scope="session")
def keyring(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Keyring]:
    """The publisher's GnuPG home, with good, expired, revoked and multi-subkey keys."""
    ring = make_keyring(tmp_path_factory.mktemp("keys"))
    try:
        yield ring
    finally:
        ring.close()


@pytest.fixture(autouse=True)
def _isolated_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, keyring_home_guard: None
) -> Iterator[None]:
    """No test reads the developer's state, config or pip settings, or shares a temp folder.

    A private temporary folder per test: a check that nothing was left behind then sees only
    what this test's safepip made, never another process's files in the shared /tmp.
    """
    # Short, under the system's temp folder: gpg-agent's socket path in a GnuPG home made
    # below it must stay within the 108 bytes of a Unix socket name.
    scratch = tempfile.mkdtemp(prefix="sp-", dir=os.environ.get("TMPDIR") or "/tmp")
    monkeypatch.setenv("TMPDIR", scratch)
    monkeypatch.setattr(tempfile, "tempdir", scratch)
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setenv("PIP_CONFIG_FILE", os.devnull)
    # An activated venv of the developer must not become the place a test installs into.
    monkeypatch.delenv("VIRTUAL_ENV", raising=False)
    for name in list(os.environ):
        if name.startswith("SAFEPIP_"):
            monkeypatch.delenv(name)
    yield
    shutil.rmtree(scratch, ignore_errors=True)


@pytest.fixture(scope="session")
def keyring_home_guard() -> Iterator[None]:
    """Fail the run if a test left a gpg-agent of a temporary home running."""
    yield
    out = subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True, check=False)
    leftovers = [
        line for line in out.stdout.splitlines() if "gpg-agent" in line and "safepip-gnupg" in line
    ]
    assert not leftovers, f"gpg-agent processes left behind: {leftovers}"


@pytest.fixture(params=["pip", "uv"])
def installer(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Run the test once with each installer (``SAFEPIP_INSTALLER``): same promise, same end."""
    name: str = request.param
    monkeypatch.setenv("SAFEPIP_INSTALLER", name)
    return name
