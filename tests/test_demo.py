"""The README's Quick start demo runs, so it cannot rot (offline: wheels built locally)."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.e2e
def test_demo_runs_and_shows_three_refusals() -> None:
    before = set(Path(tempfile.gettempdir()).glob("safepip-*"))
    result = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "demo.py"), "--offline"],
        capture_output=True, text=True, timeout=300, check=False,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )  # fmt: skip
    out = result.stdout
    assert result.returncode == 0, out + result.stderr
    assert "installed 2 vetted package(s): colorful-words==2.1, greeting==1.0" in out
    assert "hash-mismatch: the index served other bytes" in out
    assert "dependency-missing" not in out
    assert "typosquat: did you mean requests?" in out
    assert "not-in-list: reqeusts" not in out
    assert "the list expired at" in out
    assert out.count("installed in the venv: (nothing)") == 2
    assert set(Path(tempfile.gettempdir()).glob("safepip-*")) == before
