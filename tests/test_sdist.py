"""sdist: safe extraction, the build system table, the epoch."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

import pytest

from safepip import sdist
from safepip.errors import BuildError
from tests.sdists import make_sdist


def test_extraction_drops_shared_write_bits_and_keeps_times(tmp_path: Path) -> None:
    archive = make_sdist(tmp_path, "demo", "1.0", {"a.py": "x\n"}, mode=0o777, mtime=1_600_000_000)
    root = sdist.extract(archive, tmp_path / "out", name="demo", version="1.0")
    path = root / "a.py"
    assert path.stat().st_mode & 0o777 == 0o755
    assert int(path.stat().st_mtime) == 1_600_000_000
    assert sdist.source_date_epoch(archive) == 1_600_000_000


def test_epoch_is_at_least_1980(tmp_path: Path) -> None:
    archive = make_sdist(tmp_path, "demo", "1.0", {"a.py": ""}, mtime=0)
    assert sdist.source_date_epoch(archive) == 315532800


def hostile(tmp_path: Path, member: tarfile.TarInfo, data: bytes = b"") -> Path:
    path = tmp_path / "demo-1.0.tar.gz"
    with tarfile.open(path, "w:gz") as tar:
        top = tarfile.TarInfo("demo-1.0")
        top.type = tarfile.DIRTYPE
        tar.addfile(top)
        member.size = len(data)
        tar.addfile(member, io.BytesIO(data))
    return path


@pytest.mark.parametrize("kind", ["absolute", "dotdot", "symlink-out", "device"])
def test_hostile_members_are_refused(tmp_path: Path, kind: str) -> None:
    member = tarfile.TarInfo(
        {"absolute": "/tmp/evil", "dotdot": "demo-1.0/../../evil"}.get(kind, "demo-1.0/x")
    )
    if kind == "symlink-out":
        member.type, member.linkname = tarfile.SYMTYPE, "/etc/passwd"
    if kind == "device":
        member.type = tarfile.CHRTYPE
    archive = hostile(tmp_path, member)
    with pytest.raises(BuildError, match=r"cannot unpack|top-level"):
        sdist.extract(archive, tmp_path / "out", name="demo", version="1.0")
    assert not (tmp_path / "evil").exists()


def test_wrong_name_or_two_tops_are_refused(tmp_path: Path) -> None:
    archive = make_sdist(tmp_path, "demo", "1.0", {"a.py": ""})
    with pytest.raises(BuildError, match="not an sdist of other"):
        sdist.extract(archive, tmp_path / "o1", name="other", version="1.0")
    two = tmp_path / "two" / "demo-1.0.tar.gz"
    two.parent.mkdir()
    with tarfile.open(two, "w:gz") as tar:
        for name in ("demo-1.0/a", "else/b"):
            tar.addfile(tarfile.TarInfo(name), io.BytesIO(b""))
    with pytest.raises(BuildError, match="2 top-level entries"):
        sdist.extract(two, tmp_path / "o2", name="demo", version="1.0")


def test_build_system_defaults_and_table(tmp_path: Path) -> None:
    assert sdist.build_system(tmp_path).backend == sdist.LEGACY_BACKEND
    (tmp_path / "pyproject.toml").write_text(
        '[build-system]\nrequires = ["flit_core>=3,<4"]\nbuild-backend = "flit_core.buildapi"\n'
    )
    system = sdist.build_system(tmp_path)
    assert [str(r) for r in system.requires] == ["flit_core<4,>=3"]
    assert system.backend == "flit_core.buildapi"
    (tmp_path / "pyproject.toml").write_text(
        '[build-system]\nrequires = ["x @ https://example.org/x.whl"]\n'
    )
    with pytest.raises(BuildError, match="direct reference"):
        sdist.build_system(tmp_path)
    (tmp_path / "pyproject.toml").write_text(
        '[build-system]\nrequires = []\nbuild-backend = "b"\nbackend-path = ["../out"]\n'
    )
    with pytest.raises(BuildError, match="backend-path"):
        sdist.build_system(tmp_path)
