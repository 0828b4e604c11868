"""The local files a configuration names, opened as regular files only.

A config file, a key file, a popular-names file or a CA bundle is a path someone wrote down. A
FIFO there would block ``open()`` forever waiting for a writer, and a device (``/dev/zero``)
would never end. So each is opened with ``O_NONBLOCK`` (opening a FIFO then returns at once)
and refused unless ``fstat`` of the *open descriptor* says it is a regular file: the check is on
what was opened, not on a name that could be swapped between a check and an open.
"""

from __future__ import annotations

import hashlib
import os
import pwd
import stat
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from safepip.errors import ConfigError

# O_NONBLOCK: opening a FIFO for reading would otherwise wait for a writer forever. O_NOCTTY: a
# terminal device named as a file must not become our controlling terminal.
_FLAGS = (
    os.O_RDONLY
    | getattr(os, "O_NONBLOCK", 0)
    | getattr(os, "O_NOCTTY", 0)
    | getattr(os, "O_CLOEXEC", 0)
    | getattr(os, "O_BINARY", 0)
)
_HINT = "name a regular file (a FIFO or a device would block or never end)"


@dataclass(frozen=True)
class RegularFile:
    """The bytes of a regular file and the ``fstat`` of the descriptor they were read from."""

    path: Path
    data: bytes
    status: os.stat_result


def read_regular(path: Path, *, what: str, max_bytes: int) -> RegularFile:
    """Read ``path`` (at most ``max_bytes``), refusing anything but a regular file.

    ``what`` names the file in messages (``"key file"``, ``"config file"``).

    Raises:
        ConfigError: it cannot be opened or read, is not a regular file, or is larger than
            ``max_bytes``.
    """
    fd, status = _open(path, what)
    with os.fdopen(fd, "rb") as handle:
        try:
            # The file may grow after fstat: read at most max_bytes + 1 in all.
            data = handle.read(max_bytes + 1)
        except OSError as exc:
            raise ConfigError(f"{what} {path}: cannot read it: {exc.strerror or exc}") from exc
    if len(data) > max_bytes:
        raise ConfigError(f"{what} {path} is larger than {max_bytes} bytes")
    return RegularFile(path, data, status)


def require_regular(path: Path, *, what: str) -> None:
    """Check that ``path`` opens as a regular file: for a file another library then opens by
    name (OpenSSL and pip read the CA bundle themselves).

    Raises:
        ConfigError: it cannot be opened, or is not a regular file.
    """
    fd, _ = _open(path, what)
    os.close(fd)


def _open(path: Path, what: str) -> tuple[int, os.stat_result]:
    """An open descriptor on ``path`` and its ``fstat``; the caller closes it.

    Raises:
        ConfigError: it cannot be opened, or is not a regular file (then nothing stays open).
    """
    try:
        fd = os.open(path, _FLAGS)
    except OSError as exc:
        raise ConfigError(f"{what} {path}: cannot read it: {exc.strerror or exc}") from exc
    try:
        status = os.fstat(fd)
    except OSError as exc:
        os.close(fd)
        raise ConfigError(f"{what} {path}: cannot read it: {exc.strerror or exc}") from exc
    if not stat.S_ISREG(status.st_mode):
        os.close(fd)
        raise ConfigError(f"{what} {path}: not a regular file", hint=_HINT)
    return fd, status


def xdg_folder(environ: Mapping[str, str], variable: str, *default: str) -> Path | None:
    """``$variable/safepip`` when that is an absolute path (the XDG spec ignores relative
    ones), else ``<home>/<default…>/safepip`` with the home from ``HOME`` or the password
    database; ``None`` when there is no home at all."""
    chosen = environ.get(variable, "")
    if chosen and Path(chosen).is_absolute():
        return Path(chosen) / "safepip"
    home = environ.get("HOME", "")
    if not home or not Path(home).is_absolute():
        try:
            home = pwd.getpwuid(os.getuid()).pw_dir
        except KeyError:
            home = ""
    if not home or not Path(home).is_absolute():
        return None
    return Path(home).joinpath(*default, "safepip")


def sha256_file(path: Path) -> str:
    """The sha256 hex digest of the file at ``path``, read in 1 MiB blocks.

    Raises:
        OSError: the file cannot be read.
    """
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1024 * 1024), b""):
            digest.update(block)
    return digest.hexdigest()
