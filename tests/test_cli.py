from __future__ import annotations

import subprocess
import sys

from safepip import __version__


def test_version_flag_prints_version() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "safepip", "-V"], capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == f"safepip {__version__}"
