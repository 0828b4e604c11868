"""Where a build backend runs: no network where the OS allows it, and a fixed environment.

A network namespace (``unshare -n`` as root, ``unshare -rn`` for a user with user namespaces)
has only a loopback interface that is down: nothing the backend tries can reach anything. Where
neither works (a container without the capability, macOS), the build still runs, with every
proxy variable pointing at a closed port on 127.0.0.1 and pip told not to use an index, and the
summary says which of the two happened.

The environment is built from nothing (no variable of the caller's is passed on), so a
``CFLAGS`` or a ``PYTHONPATH`` of the publisher's shell cannot change the wheel.
"""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Final

__all__ = ["NEUTRAL_ROOT", "Isolation", "environment", "isolation"]

#: What the build folder is called in compiled output (``-ffile-prefix-map``): every build of
#: one sdist, in whichever folder, writes the same paths into debug information.
NEUTRAL_ROOT: Final = "/usr/src/safepip-build"
#: A port nothing listens on: where no namespace is available, every proxy points here.
CLOSED_PROXY: Final = "http://127.0.0.1:9"
_PATH: Final = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
_PROBE_TIMEOUT: Final = 10.0


@dataclass(frozen=True)
class Isolation:
    """The command prefix that takes the network away (empty when none works) and a phrase
    for the summary."""

    prefix: tuple[str, ...]
    description: str

    @property
    def offline(self) -> bool:
        return bool(self.prefix)


@cache
def isolation() -> Isolation:
    """The strongest network isolation this machine allows, probed once per run."""
    unshare = shutil.which("unshare")
    if unshare is not None:
        for flags, description in (
            ("-n", "network namespace (unshare -n)"),
            ("-rn", "network namespace (unshare -rn)"),
        ):
            prefix = (unshare, flags, "--")
            try:
                probe = subprocess.run(
                    [*prefix, "true"],
                    stdin=subprocess.DEVNULL,
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                    timeout=_PROBE_TIMEOUT,
                    check=False,
                )
            except (OSError, subprocess.TimeoutExpired):
                continue
            if probe.returncode == 0:
                return Isolation(prefix, description)
    return Isolation((), "no network namespace available: proxies point at a closed port")


def environment(root: Path, venv: Path, *, epoch: int) -> dict[str, str]:
    """The whole environment of a build under ``root`` with the build environment ``venv``.

    ``SOURCE_DATE_EPOCH`` (zip times), ``TZ=UTC``, ``LC_ALL=C.UTF-8``, ``PYTHONHASHSEED=0``
    (set iteration order), ``CPPFLAGS=-ffile-prefix-map=ROOT=NEUTRAL_ROOT`` (no build path in
    debug information or the build-id; ``CPPFLAGS`` rather than ``CFLAGS``, which setuptools
    75.7+ lets *replace* its own ``-O3 -DNDEBUG -g``), ``HOME`` and ``TMPDIR`` inside ``root``,
    and every proxy variable at a closed port.
    """
    root = root.absolute()
    env = {
        "PATH": f"{venv.absolute() / 'bin'}:{_PATH}",
        "VIRTUAL_ENV": str(venv.absolute()),
        "HOME": str(root / "home"),
        "TMPDIR": str(root / "tmp"),
        "SOURCE_DATE_EPOCH": str(epoch),
        "TZ": "UTC",
        "LC_ALL": "C.UTF-8",
        "LANG": "C.UTF-8",
        "PYTHONHASHSEED": "0",
        "PYTHONDONTWRITEBYTECODE": "1",
        "CPPFLAGS": f"-ffile-prefix-map={root}={NEUTRAL_ROOT}",
        "PIP_NO_INDEX": "1",
        "PIP_CONFIG_FILE": "/dev/null",
    }
    for name in ("http_proxy", "https_proxy", "all_proxy"):
        env[name] = env[name.upper()] = CLOSED_PROXY
    return env
