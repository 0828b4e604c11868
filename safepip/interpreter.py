"""The target interpreter of ``--python``: is it the same build as the one running safepip?"""

from __future__ import annotations

import subprocess
import sys
import sysconfig

# Everything that decides wheel tags and environment markers, printed by the target itself.
_PROBE = (
    "import sys, sysconfig, platform;"
    "print(sys.implementation.cache_tag, sysconfig.get_platform(), sys.maxsize,"
    " platform.python_version(), sys.abiflags if hasattr(sys, 'abiflags') else '')"
)


def _fingerprint() -> str:
    abiflags = getattr(sys, "abiflags", "")
    import platform  # noqa: PLC0415

    return (
        f"{sys.implementation.cache_tag} {sysconfig.get_platform()} {sys.maxsize} "
        f"{platform.python_version()} {abiflags}"
    ).strip()


def same_as_running(python: str) -> bool:
    """True when ``python`` has this interpreter's version, ABI and platform.

    Then the wheel tags and marker values safepip computes for itself hold for the target (a
    venv made from this interpreter is the common case); otherwise the caller lets pip resolve
    for the target. Any failure to run the probe answers False, which only costs speed.
    """
    try:
        result = subprocess.run(
            [python, "-I", "-c", _PROBE], capture_output=True, text=True, timeout=30, check=False
        )
    except (OSError, subprocess.SubprocessError):
        return False
    return result.returncode == 0 and result.stdout.strip() == _fingerprint()
