"""sdists and a build backend that tests make themselves, for ``safepip build``.

``toybackend`` is a PEP 517 backend in a wheel (no setuptools): its ``build_wheel`` writes a
wheel holding ``toy_facts.json``, what the build saw (installed distributions, epoch, umask,
whether a TCP connection to a probe port and an HTTP request through the proxy variables got
anywhere), so a test can read the facts of a build from the wheel it made.
"""

from __future__ import annotations

import io
import json
import shutil
import tarfile
from collections.abc import Mapping
from pathlib import Path

from tests.wheels import make_wheel, sha256_of

WHEELHOUSE = Path(__file__).resolve().parent.parent / ".wheelhouse"

TOY_BACKEND = """
import base64, hashlib, importlib.metadata, json, os, pathlib, socket, subprocess, time
import urllib.request, zipfile

def get_requires_for_build_wheel(config_settings=None):
    path = pathlib.Path("dynamic-requires.txt")
    return path.read_text().split() if path.exists() else []

def _probe(port):
    try:
        socket.create_connection(("127.0.0.1", port), timeout=3).close()
        return "connected"
    except OSError:
        return "blocked"

def _http():
    try:
        urllib.request.urlopen("http://pypi.org/simple/", timeout=3)
        return "reached"
    except Exception:
        return "blocked"

def build_wheel(wheel_directory, config_settings=None, metadata_directory=None):
    info = json.loads(pathlib.Path("toy.json").read_text())
    name, version = info["name"], info["version"]
    umask = os.umask(0o22)
    facts = {
        "dists": sorted(d.metadata["Name"] for d in importlib.metadata.distributions()),
        "epoch": os.environ.get("SOURCE_DATE_EPOCH"),
        "umask": oct(umask),
        "backend": "%s" % VERSION,
    }
    if "probe" in info:
        facts["tcp"] = _probe(info["probe"])
        facts["http"] = _http()
    if info.get("stamp"):
        facts["time"] = time.time_ns()
    files = {
        "%s/__init__.py" % name: pathlib.Path("%s.py" % name).read_bytes(),
        "toy_facts.json": json.dumps(facts, sort_keys=True).encode(),
    }
    if info.get("cext"):
        # An absolute source path, as setuptools passes: without a prefix map it lands in the
        # debug information, and so in the build-id.
        flags = os.environ.get("CPPFLAGS", "").split() if info["cext"] == "mapped" else []
        shared = os.path.join(wheel_directory, "ext.so")
        subprocess.run(
            ["gcc", *flags, "-g", "-O1", "-shared", "-fPIC", "-o", shared,
             os.path.abspath("ext.c")],
            check=True,
        )
        files["%s/ext.so" % name] = pathlib.Path(shared).read_bytes()
        os.unlink(shared)
    dist_info = "%s-%s.dist-info" % (name, version)
    files[dist_info + "/METADATA"] = (
        "Metadata-Version: 2.1\\nName: %s\\nVersion: %s\\n" % (name, version)
    ).encode()
    files[dist_info + "/WHEEL"] = (
        b"Wheel-Version: 1.0\\nGenerator: toybackend\\nRoot-Is-Purelib: true\\nTag: py3-none-any\\n"
    )
    record = ""
    for path, data in files.items():
        digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=")
        record += "%s,sha256=%s,%d\\n" % (path, digest.decode(), len(data))
    files[dist_info + "/RECORD"] = (record + dist_info + "/RECORD,,\\n").encode()
    stamp = time.gmtime(int(os.environ.get("SOURCE_DATE_EPOCH", time.time())))[:6]
    filename = "%s-%s-py3-none-any.whl" % (name, version)
    with zipfile.ZipFile(os.path.join(wheel_directory, filename), "w") as archive:
        for path, data in files.items():
            member = zipfile.ZipInfo(path, date_time=stamp)
            member.external_attr = 0o644 << 16
            archive.writestr(member, data)
    return filename
"""


def make_backend(dest: Path, version: str = "1.0", name: str = "toybackend") -> Path:
    """The ``toybackend`` wheel at ``version``."""
    source = f"VERSION = {version!r}\n" + TOY_BACKEND
    return make_wheel(dest, name, version, modules={f"{name}/__init__.py": source})


def make_sdist(
    dest: Path,
    name: str,
    version: str,
    files: Mapping[str, str],
    *,
    mtime: int = 1_700_000_000,
    mode: int = 0o644,
) -> Path:
    """Write ``name-version.tar.gz`` holding ``files`` (paths below the top folder)."""
    dest.mkdir(parents=True, exist_ok=True)
    top = f"{name}-{version}"
    path = dest / f"{top}.tar.gz"
    with tarfile.open(path, "w:gz") as tar:
        for member, text in sorted(files.items()):
            data = text.encode()
            info = tarfile.TarInfo(f"{top}/{member}")
            info.size = len(data)
            info.mtime = mtime
            info.mode = mode
            tar.addfile(info, io.BytesIO(data))
    return path


def toy_sdist(
    dest: Path,
    name: str,
    version: str = "1.0",
    *,
    requires: str = "toybackend",
    dynamic: str = "",
    probe: int | None = None,
    stamp: bool = False,
    mode: int = 0o644,
    cext: str = "",
) -> Path:
    """An sdist built by ``toybackend``; ``dynamic`` is what ``get_requires_for_build_wheel``
    adds; ``probe`` a TCP port the backend tries; ``stamp`` embeds the build time."""
    info: dict[str, object] = {"name": name, "version": version}
    if probe is not None:
        info["probe"] = probe
    if stamp:
        info["stamp"] = True
    if cext:  # "mapped": compiled with the build's CPPFLAGS; "unmapped": without them
        info["cext"] = cext
    files = {
        "pyproject.toml": f'[build-system]\nrequires = ["{requires}"]\n'
        'build-backend = "toybackend"\n',
        "toy.json": json.dumps(info),
        f"{name}.py": f"VALUE = {name!r}\n",
        "PKG-INFO": f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n",
    }
    if dynamic:
        files["dynamic-requires.txt"] = dynamic
    if cext:
        files["ext.c"] = "int answer(void) { return 42; }\n"
    return make_sdist(dest, name, version, files, mode=mode)


def flit_sdist(dest: Path, name: str, version: str = "1.0") -> Path:
    """An sdist built by flit_core (the wheel in ``.wheelhouse``)."""
    files = {
        "pyproject.toml": '[build-system]\nrequires = ["flit_core>=3.2,<5"]\n'
        'build-backend = "flit_core.buildapi"\n\n'
        f'[project]\nname = "{name}"\nversion = "{version}"\ndescription = "demo"\n',
        f"{name}/__init__.py": '"""demo."""\n',
        "PKG-INFO": f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n",
    }
    return make_sdist(dest, name, version, files)


def flit_core_wheel(dest: Path) -> Path:
    """A copy of the offline flit_core wheel in ``dest``."""
    dest.mkdir(parents=True, exist_ok=True)
    (found,) = sorted(WHEELHOUSE.glob("flit_core-*.whl"))
    return Path(shutil.copy(found, dest))


def pinned(paths: list[Path], name_version: Mapping[Path, str] | None = None) -> str:
    """``name==version --hash=sha256:…`` lines for ``paths`` (names from the filenames)."""
    lines = []
    for path in paths:
        if name_version and path in name_version:
            spec = name_version[path]
        else:
            stem = path.name.removesuffix(".tar.gz").removesuffix(".whl")
            parts = stem.split("-")
            spec = f"{parts[0]}=={parts[1]}"
        lines.append(f"{spec} --hash=sha256:{sha256_of(path)}\n")
    return "".join(lines)
