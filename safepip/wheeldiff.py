"""What differs between two builds of one wheel, member by member (pure over the two files).

A wheel is a zip: two builds can differ in which members exist, in their order, in the zip
fields of a member (time, permissions, compression, comment), or in a member's contents. For a
shared object the ELF build-id is named too: it hashes the whole link, so a build path or a
compiler flag that leaked into the debug information shows up there first.
"""

from __future__ import annotations

import hashlib
import io
import struct
import zipfile
from pathlib import Path
from typing import Final

__all__ = ["differences", "elf_build_id"]

#: The zip fields compared per member, as :class:`zipfile.ZipInfo` names them.
_FIELDS: Final = (
    "date_time",
    "external_attr",
    "compress_type",
    "create_system",
    "create_version",
    "extract_version",
    "flag_bits",
    "comment",
    "extra",
)
#: The most differences one report names; the rest are counted.
MAX_SHOWN: Final = 20


def differences(first: Path, second: Path) -> list[str]:
    """Human-readable differences between the wheels ``first`` and ``second``; ``[]`` when
    their bytes are identical. A file that is not a zip is reported as such."""
    a, b = first.read_bytes(), second.read_bytes()
    if a == b:
        return []
    try:
        za, zb = zipfile.ZipFile(io.BytesIO(a)), zipfile.ZipFile(io.BytesIO(b))
    except zipfile.BadZipFile:
        return ["the files differ and are not both zip archives"]
    with za, zb:
        found = _compare(za, zb)
    if not found:
        found = ["the member list, fields and contents agree; the zip layout itself differs"]
    if len(found) > MAX_SHOWN:
        found = [*found[:MAX_SHOWN], f"… and {len(found) - MAX_SHOWN} more"]
    return found


def _compare(za: zipfile.ZipFile, zb: zipfile.ZipFile) -> list[str]:
    found: list[str] = []
    names_a, names_b = za.namelist(), zb.namelist()
    only_a = sorted(set(names_a) - set(names_b))
    only_b = sorted(set(names_b) - set(names_a))
    found += [f"{name}: only in the first build" for name in only_a]
    found += [f"{name}: only in the second build" for name in only_b]
    common = [n for n in names_a if n in set(names_b)]
    if not only_a and not only_b and names_a != names_b:
        found.append("members are stored in a different order")
    if za.comment != zb.comment:
        found.append("the archive comment differs")
    for name in common:
        ia, ib = za.getinfo(name), zb.getinfo(name)
        for field in _FIELDS:
            va, vb = getattr(ia, field), getattr(ib, field)
            if va != vb:
                found.append(f"{name}: zip field {field} differs ({_show(va)} vs {_show(vb)})")
        ca, cb = za.read(name), zb.read(name)
        if ca != cb:
            found.append(_content_difference(name, ca, cb))
    return found


def _content_difference(name: str, ca: bytes, cb: bytes) -> str:
    what = (
        f"{name}: contents differ ({len(ca)} vs {len(cb)} bytes, sha256 "
        f"{hashlib.sha256(ca).hexdigest()[:12]}… vs {hashlib.sha256(cb).hexdigest()[:12]}…)"
    )
    ida, idb = elf_build_id(ca), elf_build_id(cb)
    if ida is not None or idb is not None:
        same = "same" if ida == idb else "different"
        what += f"; ELF build-id {ida or 'none'} vs {idb or 'none'} ({same})"
    elif not _binary(ca) and not _binary(cb):
        line = _first_different_line(ca, cb)
        if line is not None:
            what += f"; first at line {line}"
    return what


def _first_different_line(ca: bytes, cb: bytes) -> int | None:
    for number, (la, lb) in enumerate(zip(ca.splitlines(), cb.splitlines(), strict=False), 1):
        if la != lb:
            return number
    return None


def _binary(data: bytes) -> bool:
    return b"\0" in data[:8192]


def _show(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:39] + "…"


def elf_build_id(data: bytes) -> str | None:
    """The hex GNU build-id of an ELF file's ``.note.gnu.build-id``, else ``None`` (also for
    anything that is not a well-formed 64- or 32-bit ELF)."""
    if data[:4] != b"\x7fELF" or len(data) < 64:
        return None
    is64, little = data[4] == 2, data[5] == 1
    end = "<" if little else ">"
    try:
        if is64:
            (shoff,) = struct.unpack_from(end + "Q", data, 0x28)
            shentsize, shnum = struct.unpack_from(end + "HH", data, 0x3A)
        else:
            (shoff,) = struct.unpack_from(end + "I", data, 0x20)
            shentsize, shnum = struct.unpack_from(end + "HH", data, 0x2E)
        for index in range(shnum):
            base = shoff + index * shentsize
            if is64:
                (kind,) = struct.unpack_from(end + "I", data, base + 4)
                offset, size = struct.unpack_from(end + "QQ", data, base + 0x18)
            else:
                (kind,) = struct.unpack_from(end + "I", data, base + 4)
                offset, size = struct.unpack_from(end + "II", data, base + 0x10)
            if kind != 7:  # SHT_NOTE
                continue
            found = _note_build_id(data[offset : offset + size], end)
            if found is not None:
                return found
    except struct.error:
        return None
    return None


def _note_build_id(notes: bytes, end: str) -> str | None:
    position = 0
    while position + 12 <= len(notes):
        namesz, descsz, kind = struct.unpack_from(end + "III", notes, position)
        position += 12
        name = notes[position : position + namesz]
        position += (namesz + 3) & ~3
        desc = notes[position : position + descsz]
        position += (descsz + 3) & ~3
        if kind == 3 and name.rstrip(b"\0") == b"GNU":  # NT_GNU_BUILD_ID
            return desc.hex()
    return None
