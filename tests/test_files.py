"""safepip.files: configured files are opened as regular files only, never blocking."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from safepip.errors import ConfigError
from safepip.files import read_regular, require_regular


def test_reads_a_regular_file_with_its_status(tmp_path: Path) -> None:
    path = tmp_path / "k.asc"
    path.write_bytes(b"key")
    got = read_regular(path, what="key file", max_bytes=3)
    assert (got.path, got.data, got.status.st_ino) == (path, b"key", path.stat().st_ino)
    require_regular(path, what="key file")


@pytest.mark.timeout(20)  # a regression blocks in open(): fail, do not hang
def test_fifo_and_devices_are_refused_at_once(tmp_path: Path) -> None:
    fifo = tmp_path / "f"
    os.mkfifo(fifo)
    start = time.monotonic()
    for path in (fifo, Path("/dev/zero"), Path("/dev/null"), tmp_path):
        for check in (
            lambda p: read_regular(p, what="key file", max_bytes=10),
            lambda p: require_regular(p, what="key file"),
        ):
            with pytest.raises(ConfigError) as info:
                check(path)
            message = str(info.value)
            assert message.startswith(f"key file {path}: "), message
            assert "not a regular file" in message or "cannot read it" in message
            assert info.value.exit_code == 2
    assert time.monotonic() - start < 5


def test_size_cap_and_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "names.txt"
    path.write_bytes(b"x" * 11)
    with pytest.raises(ConfigError, match=f"popular-names file {path} is larger than 10 bytes"):
        read_regular(path, what="popular-names file", max_bytes=10)
    with pytest.raises(ConfigError, match="cannot read it: No such file or directory"):
        read_regular(tmp_path / "nope", what="popular-names file", max_bytes=10)
