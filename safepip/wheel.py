"""A wheel file as data: what its filename and its METADATA say about it."""

from __future__ import annotations

import zipfile
from collections.abc import Sequence
from dataclasses import dataclass
from email.parser import HeaderParser
from pathlib import Path
from typing import Final

from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import InvalidWheelFilename, canonicalize_name, parse_wheel_filename
from packaging.version import InvalidVersion, Version

#: METADATA is a few kilobytes; a larger one is hostile or broken, and is not read into memory.
_MAX_METADATA_BYTES: Final = 4 * 1024 * 1024


class WheelError(ValueError):
    """The file is not a readable wheel, or its METADATA disagrees with its filename."""


@dataclass(frozen=True)
class WheelMetadata:
    """The parts of METADATA that vetting needs."""

    name: str  # canonical
    version: Version
    requires_dist: tuple[Requirement, ...]
    requires_python: str | None
    provides_extra: tuple[str, ...]


def read_metadata(path: Path) -> WheelMetadata:
    """Read METADATA from the wheel at ``path`` and check it against the filename.

    Raises:
        WheelError: invalid filename, not a zip, no single METADATA, or a name or version in
            METADATA that differs from the filename's.
    """
    try:
        file_name, file_version, _, _ = parse_wheel_filename(path.name)
    except InvalidWheelFilename as exc:
        raise WheelError(f"{path.name}: invalid wheel filename ({exc})") from None
    try:
        with zipfile.ZipFile(path) as archive:
            candidates = [
                info
                for info in archive.infolist()
                if info.filename.count("/") == 1 and info.filename.endswith(".dist-info/METADATA")
            ]
            if len(candidates) != 1:
                raise WheelError(
                    f"{path.name}: expected one .dist-info/METADATA, found {len(candidates)}"
                )
            info = candidates[0]
            if info.file_size > _MAX_METADATA_BYTES:
                raise WheelError(
                    f"{path.name}: METADATA is larger than {_MAX_METADATA_BYTES} bytes"
                )
            text = archive.read(info).decode("utf-8")
    except (zipfile.BadZipFile, OSError, UnicodeDecodeError) as exc:
        raise WheelError(f"{path.name}: not a readable wheel ({exc})") from None
    headers = HeaderParser().parsestr(text)
    meta_name = canonicalize_name(headers.get("Name", ""))
    try:
        meta_version = Version(headers.get("Version", ""))
    except InvalidVersion:
        raise WheelError(f"{path.name}: METADATA has an invalid Version") from None
    if meta_name != file_name or meta_version != file_version:
        raise WheelError(
            f"{path.name}: METADATA says {meta_name} {meta_version}, "
            f"the filename says {file_name} {file_version}"
        )
    try:
        requires = tuple(Requirement(value) for value in headers.get_all("Requires-Dist") or ())
    except InvalidRequirement as exc:
        raise WheelError(f"{path.name}: METADATA has an invalid Requires-Dist ({exc})") from None
    extras = tuple(canonicalize_name(e) for e in headers.get_all("Provides-Extra") or ())
    return WheelMetadata(meta_name, meta_version, requires, headers.get("Requires-Python"), extras)


def member_names(path: Path) -> list[str]:
    """The names of the members of the wheel at ``path``, from its zip's central directory.

    Raises:
        WheelError: not a readable zip.
    """
    try:
        with zipfile.ZipFile(path) as archive:
            return archive.namelist()
    except (zipfile.BadZipFile, OSError) as exc:
        raise WheelError(f"{path.name}: not a readable wheel ({exc})") from None


def dist_info_folder(path: Path, *, names: Sequence[str] | None = None) -> str:
    """The name of the wheel's one top-level ``.dist-info`` folder, as pip installs it.

    pip installs that folder under exactly this name (``PyYAML-6.0.1.dist-info``, say), so it
    names the installed distribution without any name or version normalisation. ``names``: the
    wheel's :func:`member_names`, when the caller already read them.

    Raises:
        WheelError: not a readable zip, or not exactly one top-level ``.dist-info`` folder.
    """
    if names is None:
        names = member_names(path)
    folders = {name.split("/", 1)[0] for name in names if "/" in name}
    found = sorted(folder for folder in folders if folder.endswith(".dist-info"))
    if len(found) != 1:
        raise WheelError(f"{path.name}: expected one .dist-info folder, found {len(found)}")
    return found[0]
