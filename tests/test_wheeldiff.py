"""wheeldiff: what differs between two builds, member by member."""

from __future__ import annotations

import _json
import re
import shutil
import subprocess
import zipfile
from pathlib import Path

import pytest

from safepip.wheeldiff import differences, elf_build_id


def make_zip(path: Path, members: list[tuple[str, bytes, tuple[int, ...], int]]) -> Path:
    with zipfile.ZipFile(path, "w") as archive:
        for name, data, when, mode in members:
            info = zipfile.ZipInfo(name, date_time=when)  # type: ignore[arg-type]
            info.external_attr = mode << 16
            archive.writestr(info, data)
    return path


EPOCH = (2020, 1, 1, 0, 0, 0)


def test_identical_files_have_no_differences(tmp_path: Path) -> None:
    a = make_zip(tmp_path / "a.whl", [("m.py", b"x = 1\n", EPOCH, 0o644)])
    b = tmp_path / "b.whl"
    shutil.copy(a, b)
    assert differences(a, b) == []


def test_names_zip_fields_contents_and_members(tmp_path: Path) -> None:
    a = make_zip(
        tmp_path / "a.whl",
        [
            ("m.py", b"x = 1\ny = 2\n", EPOCH, 0o644),
            ("t.py", b"", EPOCH, 0o644),
            ("gone.py", b"", EPOCH, 0o644),
        ],
    )
    b = make_zip(
        tmp_path / "b.whl",
        [
            ("m.py", b"x = 1\ny = 3\n", EPOCH, 0o644),
            ("t.py", b"", (2024, 5, 5, 0, 0, 0), 0o664),
            ("new.py", b"", EPOCH, 0o644),
        ],
    )
    found = differences(a, b)
    assert "gone.py: only in the first build" in found
    assert "new.py: only in the second build" in found
    assert any(f.startswith("t.py: zip field date_time differs") for f in found)
    assert any(f.startswith("t.py: zip field external_attr differs") for f in found)
    assert any(f.startswith("m.py: contents differ") and "first at line 2" in f for f in found)


def test_member_order_is_a_difference(tmp_path: Path) -> None:
    one = ("a.py", b"", EPOCH, 0o644)
    two = ("b.py", b"", EPOCH, 0o644)
    found = differences(
        make_zip(tmp_path / "a.whl", [one, two]), make_zip(tmp_path / "b.whl", [two, one])
    )
    assert found == ["members are stored in a different order"]


def test_not_a_zip(tmp_path: Path) -> None:
    (tmp_path / "a").write_bytes(b"one")
    (tmp_path / "b").write_bytes(b"two")
    assert differences(tmp_path / "a", tmp_path / "b") == [
        "the files differ and are not both zip archives"
    ]


def test_elf_build_id_matches_readelf() -> None:
    if shutil.which("readelf") is None:
        pytest.skip("needs readelf (binutils)")
    shared = [str(_json.__file__)] if str(_json.__file__).endswith(".so") else []
    if not shared:
        pytest.skip("no _json extension module to read")
    notes = subprocess.run(
        ["readelf", "-n", shared[0]], capture_output=True, text=True, check=True
    ).stdout
    expected = re.search(r"Build ID: ([0-9a-f]+)", notes)
    data = Path(shared[0]).read_bytes()
    assert elf_build_id(data) == (expected[1] if expected else None)
    assert elf_build_id(b"not an elf") is None
    assert elf_build_id(data[:100]) is None  # truncated: no crash


def test_shared_objects_are_reported_with_their_build_ids(tmp_path: Path) -> None:
    shared = sorted(str(p) for p in Path(str(_json.__file__)).parent.glob("*.so"))[:2]
    if len(shared) < 2:
        pytest.skip("needs two extension modules")
    a = make_zip(tmp_path / "a.whl", [("x.so", Path(shared[0]).read_bytes(), EPOCH, 0o755)])
    b = make_zip(tmp_path / "b.whl", [("x.so", Path(shared[1]).read_bytes(), EPOCH, 0o755)])
    (found,) = differences(a, b)
    assert found.startswith("x.so: contents differ") and "ELF build-id" in found
