"""Build real, installable wheels for tests: fast, deterministic, no setuptools.

A wheel is a zip with the project's files, a ``.dist-info`` folder holding ``METADATA``, ``WHEEL``
and ``RECORD`` (binary distribution format, PyPA spec). The bytes depend only on the arguments
(fixed timestamps and permissions, fixed member order), so a wheel's sha256 is stable across runs.
"""

from __future__ import annotations

import base64
import hashlib
import zipfile
from collections.abc import Mapping, Sequence
from pathlib import Path

from packaging.utils import canonicalize_name

#: The earliest timestamp a zip can hold: every member gets it, so the bytes are reproducible.
_ZIP_EPOCH = (1980, 1, 1, 0, 0, 0)


def escaped(name: str) -> str:
    """The wheel-filename form of a project name: canonical, with ``_`` for every separator."""
    return canonicalize_name(name).replace("-", "_")


def wheel_filename(name: str, version: str, tag: str = "py3-none-any") -> str:
    """``my_pkg-1.0-py3-none-any.whl`` for ``("My.Pkg", "1.0")``."""
    return f"{escaped(name)}-{version.replace('-', '_')}-{tag}.whl"


def sha256_of(path: Path) -> str:
    """The hex sha256 of a file."""
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _record_hash(data: bytes) -> str:
    digest = hashlib.sha256(data).digest()
    return "sha256=" + base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def _expand_tags(tag: str) -> list[str]:
    """``py2.py3-none-any`` → ``["py2-none-any", "py3-none-any"]`` (compressed tag sets)."""
    interpreters, abis, platforms = tag.split("-")
    return [
        f"{i}-{a}-{p}"
        for i in interpreters.split(".")
        for a in abis.split(".")
        for p in platforms.split(".")
    ]


def _with_extra(requirement: str, extra: str) -> str:
    """``dep; marker`` for extra ``x`` → ``dep; (marker) and extra == "x"``."""
    spec, _, marker = requirement.partition(";")
    condition = f'extra == "{extra}"'
    if marker.strip():
        condition = f"({marker.strip()}) and {condition}"
    return f"{spec.strip()}; {condition}"


def metadata_text(
    name: str,
    version: str,
    *,
    requires: Sequence[str] = (),
    extras: Mapping[str, Sequence[str]] | None = None,
    requires_python: str | None = None,
) -> str:
    """The ``METADATA`` file (core metadata 2.1) of a wheel."""
    lines = ["Metadata-Version: 2.1", f"Name: {name}", f"Version: {version}"]
    lines.append("Summary: A wheel built by safepip's tests")
    if requires_python is not None:
        lines.append(f"Requires-Python: {requires_python}")
    lines.extend(f"Requires-Dist: {requirement}" for requirement in requires)
    for extra, requirements in (extras or {}).items():
        lines.append(f"Provides-Extra: {extra}")
        lines.extend(f"Requires-Dist: {_with_extra(r, extra)}" for r in requirements)
    return "\n".join(lines) + "\n\n"


def make_wheel(
    dest_dir: Path,
    name: str,
    version: str,
    *,
    requires: Sequence[str] = (),
    extras: Mapping[str, Sequence[str]] | None = None,
    requires_python: str | None = None,
    metadata_name: str | None = None,
    metadata_version: str | None = None,
    tag: str = "py3-none-any",
    modules: Mapping[str, str] | None = None,
    extra_record_rows: Sequence[str] = (),
) -> Path:
    """Write a valid wheel into ``dest_dir`` (created if needed) and return its path.

    Args:
        dest_dir: where the ``.whl`` goes; its filename follows the spec (``my_pkg-1.0-…``).
        name, version: the project, as the *filename* names it.
        requires: ``Requires-Dist`` lines (PEP 508 strings).
        extras: extra name → its requirements (``Provides-Extra`` plus ``; extra == "x"`` lines).
        requires_python: the ``Requires-Python`` specifier, if any.
        metadata_name, metadata_version: what ``METADATA`` says instead of ``name`` / ``version``,
            to build a wheel whose metadata disagrees with its filename.
        tag: the compatibility tag (``py3-none-any``; compressed sets such as ``py2.py3`` work).
        modules: archive path → text of the installed files; by default one importable package
            ``<escaped name>/__init__.py`` that sets ``__version__``.
        extra_record_rows: ``RECORD`` lines for files the wheel does not hold (a hostile wheel's
            ``/abs/path.py,,``), added before the ``RECORD`` row itself.
    """
    dest_dir.mkdir(parents=True, exist_ok=True)
    package = escaped(name)
    dist_info = f"{package}-{version.replace('-', '_')}.dist-info"
    if modules is None:
        modules = {f"{package}/__init__.py": f'__version__ = "{version}"\n'}
    wheel = "\n".join(
        [
            "Wheel-Version: 1.0",
            "Generator: safepip-tests (0)",
            "Root-Is-Purelib: true",
            *(f"Tag: {t}" for t in _expand_tags(tag)),
        ]
    )
    members: dict[str, bytes] = {path: text.encode("utf-8") for path, text in modules.items()}
    members[f"{dist_info}/METADATA"] = metadata_text(
        metadata_name if metadata_name is not None else name,
        metadata_version if metadata_version is not None else version,
        requires=requires,
        extras=extras,
        requires_python=requires_python,
    ).encode("utf-8")
    members[f"{dist_info}/WHEEL"] = (wheel + "\n").encode("ascii")
    record_path = f"{dist_info}/RECORD"
    record = (
        "".join(f"{path},{_record_hash(data)},{len(data)}\n" for path, data in members.items())
        + "".join(f"{row}\n" for row in extra_record_rows)
        + f"{record_path},,\n"
    )
    members[record_path] = record.encode("utf-8")

    target = dest_dir / wheel_filename(name, version, tag)
    with zipfile.ZipFile(target, "w") as archive:
        for path, data in members.items():
            info = zipfile.ZipInfo(path, date_time=_ZIP_EPOCH)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            info.create_system = 3  # Unix, so the permission bits mean the same everywhere
            archive.writestr(info, data)
    return target


def make_marker_sdist(dest_dir: Path, name: str, version: str, marker: Path) -> Path:
    """An sdist whose build backend writes ``marker`` as soon as any of its hooks is imported.

    The proof, in tests, that no third-party code ran: whoever builds or even asks this sdist
    for its metadata creates the file.
    """
    import io
    import tarfile

    dest_dir.mkdir(parents=True, exist_ok=True)
    base = f"{escaped(name)}-{version}"
    backend = (
        "import os, pathlib\n"
        f"pathlib.Path({str(marker)!r}).write_text('build backend ran as uid %d' % os.getuid())\n"
        "def prepare_metadata_for_build_wheel(directory, config_settings=None):\n"
        f"    d = pathlib.Path(directory, '{base}.dist-info'); d.mkdir()\n"
        f"    (d / 'METADATA').write_text('Metadata-Version: 2.1\\nName: {name}\\n"
        f"Version: {version}\\n')\n"
        "    return d.name\n"
        "def build_wheel(*args, **kwargs):\n"
        "    raise SystemExit('not needed')\n"
    )
    files = {
        f"{base}/pyproject.toml": "[build-system]\nrequires = []\n"
        'build-backend = "backend"\nbackend-path = ["."]\n',
        f"{base}/backend.py": backend,
        f"{base}/PKG-INFO": f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n",
    }
    path = dest_dir / f"{base}.tar.gz"
    with tarfile.open(path, "w:gz") as tar:
        for member, text in files.items():
            data = text.encode()
            info = tarfile.TarInfo(member)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path
