from __future__ import annotations

import subprocess
import sys

from safepip import __version__


def test_version_flag_prints_version() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "safepip", "-V"], capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == f"safepip {__version__}"


def test_common_flags_work_before_and_after_the_command() -> None:
    for argv in (["-q", "--format", "json", "names", "reqeusts"],
                 ["names", "reqeusts", "-q", "--format", "json"]):  # fmt: skip
        out = subprocess.run(
            [sys.executable, "-m", "safepip", *argv], capture_output=True, text=True, check=False
        )
        assert out.returncode == 1, out.stderr
        assert '"similar_to": "requests"' in out.stdout


def test_usage_error_is_one_line_with_hint() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "safepip", "install", "--no-such-flag"],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert out.returncode == 2
    assert out.stderr.splitlines()[0].startswith("error: unrecognized arguments: --no-such-flag")
    assert out.stderr.splitlines()[1].startswith("hint: ")
