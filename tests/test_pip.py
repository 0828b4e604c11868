"""safepip.pip against real pip: real wheels, a static PEP 503 index, venvs made ``--without-pip``.

The machine running these tests may configure pip globally (``/etc/pip.conf``, ``PIP_FIND_LINKS``
and the like): safepip must be immune to that, so ``resolve`` and ``install`` get the real
environment. Plain pip, where a test needs it, runs with ``PIP_CONFIG_FILE=os.devnull`` and no
``PIP_*`` variables.
"""

from __future__ import annotations

import base64
import csv
import hashlib
import io
import os
import subprocess
import sys
import zipfile
from collections.abc import Callable, Mapping
from pathlib import Path

import pytest

from safepip import pip
from safepip.errors import PipError, UsageError
from tests.wheels import make_wheel, sha256_of

#: Plain pip, the one safepip runs, before ``TARGET install …``: ``--no-cache-dir`` as in safepip.
PLAIN_PIP = (sys.executable, "-m", "pip", "--no-cache-dir", "--python")
PY_DIR = f"python{sys.version_info.major}.{sys.version_info.minor}"


# --- helpers ------------------------------------------------------------------------------------


def plain_environ(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """This process's environment without pip's settings, for running plain pip in a test."""
    env = {k: v for k, v in os.environ.items() if not k.upper().startswith(("PIP_", "_PIP_"))}
    env["PIP_CONFIG_FILE"] = os.devnull
    env.update(extra or {})
    return env


def make_venv(path: Path) -> Path:
    """A real virtual environment without pip (fast); returns its interpreter."""
    subprocess.run(
        [sys.executable, "-m", "venv", "--without-pip", str(path)], check=True, timeout=60
    )
    return path / "bin" / "python"


def site_packages(venv: Path) -> Path:
    return venv / "lib" / PY_DIR / "site-packages"


def installed(directory: Path) -> set[str]:
    """The distributions installed in a site-packages or ``--target`` folder."""
    return {p.name for p in directory.glob("*.dist-info")} if directory.is_dir() else set()


def run_python(python: Path, code: str, **kwargs: object) -> str:
    done = subprocess.run(
        [str(python), "-I", "-c", code],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
        env=plain_environ(),
        **kwargs,  # type: ignore[call-overload]
    )
    return str(done.stdout).strip()


def hashed_requirements(path: Path, wheels: Mapping[str, Path]) -> Path:
    """``name==version --hash=sha256:…`` lines, as safepip generates them."""
    lines = []
    for spec, wheel in wheels.items():
        lines.append(f"{spec} --hash=sha256:{sha256_of(wheel)}\n")
    path.write_text("".join(lines), encoding="utf-8")
    return path


class Log:
    """A ``log`` callback that keeps what it was given."""

    def __init__(self) -> None:
        self.lines: list[str] = []

    def __call__(self, text: str) -> None:
        self.lines.append(text)

    @property
    def text(self) -> str:
        return "\n".join(self.lines)


@pytest.fixture
def pair(tmp_path: Path) -> tuple[Path, Path, Path]:
    """A wheel folder with ``Alpha.Pkg 1.0`` (which needs ``beta>=2``) and ``beta 2.1``."""
    wheels = tmp_path / "wheels"
    alpha = make_wheel(wheels, "Alpha.Pkg", "1.0", requires=["beta>=2"])
    beta = make_wheel(wheels, "beta", "2.1")
    return wheels, alpha, beta


@pytest.fixture
def venv(tmp_path: Path) -> Path:
    """The interpreter of a fresh venv made ``--without-pip``."""
    return make_venv(tmp_path / "venv")


# --- tests/wheels.py ----------------------------------------------------------------------------


def test_make_wheel_writes_a_valid_deterministic_wheel(tmp_path: Path) -> None:
    kwargs: dict[str, object] = {
        "requires": ["beta>=2", 'gamma; python_version < "3"'],
        "extras": {"fast": ["delta==1", 'eps; sys_platform == "win32"']},
        "requires_python": ">=3.8",
    }
    first = make_wheel(tmp_path / "a", "My.Pkg", "1.0", **kwargs)  # type: ignore[arg-type]
    second = make_wheel(tmp_path / "b", "My.Pkg", "1.0", **kwargs)  # type: ignore[arg-type]
    assert first.name == "my_pkg-1.0-py3-none-any.whl"
    assert first.read_bytes() == second.read_bytes()

    with zipfile.ZipFile(first) as archive:
        names = archive.namelist()
        assert names[-1] == "my_pkg-1.0.dist-info/RECORD"
        assert "my_pkg/__init__.py" in names
        metadata = archive.read("my_pkg-1.0.dist-info/METADATA").decode()
        wheel = archive.read("my_pkg-1.0.dist-info/WHEEL").decode()
        rows = list(csv.reader(io.StringIO(archive.read(names[-1]).decode())))
        assert sorted(row[0] for row in rows) == sorted(names)
        for path, digest, size in rows:
            if path == names[-1]:
                assert (digest, size) == ("", "")
                continue
            data = archive.read(path)
            expected = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=")
            assert digest == "sha256=" + expected.decode()
            assert int(size) == len(data)
    assert metadata.startswith("Metadata-Version: 2.1\nName: My.Pkg\nVersion: 1.0\n")
    for line in (
        "Requires-Python: >=3.8",
        "Requires-Dist: beta>=2",
        'Requires-Dist: gamma; python_version < "3"',
        "Provides-Extra: fast",
        'Requires-Dist: delta==1; extra == "fast"',
        'Requires-Dist: eps; (sys_platform == "win32") and extra == "fast"',
    ):
        assert line + "\n" in metadata
    assert "Wheel-Version: 1.0\n" in wheel
    assert "Root-Is-Purelib: true\n" in wheel
    assert "Tag: py3-none-any\n" in wheel


def test_make_wheel_metadata_can_disagree_with_the_filename(tmp_path: Path) -> None:
    wheel = make_wheel(
        tmp_path,
        "honest",
        "1.0",
        metadata_name="evil",
        metadata_version="6.6",
        tag="py2.py3-none-any",
        modules={"honest.py": "X = 1\n"},
    )
    assert wheel.name == "honest-1.0-py2.py3-none-any.whl"
    with zipfile.ZipFile(wheel) as archive:
        metadata = archive.read("honest-1.0.dist-info/METADATA").decode()
        assert "honest.py" in archive.namelist()
        assert (
            "Tag: py2-none-any\nTag: py3-none-any\n"
            in archive.read("honest-1.0.dist-info/WHEEL").decode()
        )
    assert "Name: evil\nVersion: 6.6\n" in metadata


def test_plain_pip_installs_the_test_wheels(pair: tuple[Path, Path, Path], venv: Path) -> None:
    wheels, _, _ = pair
    subprocess.run(
        [*PLAIN_PIP, str(venv), "install", "--no-index", "--find-links", str(wheels), "alpha-pkg"],
        check=True,
        capture_output=True,
        timeout=120,
        env=plain_environ(),
    )
    assert run_python(venv, "import alpha_pkg, beta; print(beta.__version__)") == "2.1"
    assert installed(site_packages(venv.parent.parent)) == {
        "alpha_pkg-1.0.dist-info",
        "beta-2.1.dist-info",
    }


# --- scrubbed_environment and pip_version -------------------------------------------------------


def test_scrubbed_environment_drops_pip_python_and_proxy_settings() -> None:
    hostile = {
        "PATH": "/usr/bin",
        "HOME": "/home/u",
        "HTTPS_PROXY": "http://proxy:3128",
        "http_proxy": "http://proxy:3128",
        "all_proxy": "socks5://proxy:1080",
        "no_proxy": "localhost",
        "SSL_CERT_FILE": "/etc/ca.pem",
        "PIP_INDEX_URL": "https://evil.example/simple",
        "PIP_EXTRA_INDEX_URL": "https://evil.example/simple",
        "PIP_FIND_LINKS": "/tmp/evil",
        "PIP_NO_REQUIRE_HASHES": "1",
        "PIP_CONSTRAINT": "/tmp/c.txt",
        "PIP_CONFIG_FILE": "/tmp/pip.conf",
        "pip_target": "/tmp/lower-case",
        "_PIP_RUNNING_IN_SUBPROCESS": "1",
        "PYTHONPATH": "/tmp/evil",
        "PYTHONHOME": "/tmp/evil",
        "PYTHONSTARTUP": "/tmp/evil.py",
        "PYTHONUSERBASE": "/tmp/evil",
        "PYTHONNOUSERSITE": "",
        "PYTHONINSPECT": "1",
        "REQUESTS_CA_BUNDLE": "/tmp/evil-ca.pem",
        "CURL_CA_BUNDLE": "/tmp/evil-ca.pem",
        "__PYVENV_LAUNCHER__": "/tmp/evil/python",
    }
    before = dict(hostile)
    assert pip.scrubbed_environment(hostile) == {
        "PATH": "/usr/bin",
        "HOME": "/home/u",
        "SSL_CERT_FILE": "/etc/ca.pem",
        "PIP_CONFIG_FILE": os.devnull,
        "PIP_DISABLE_PIP_VERSION_CHECK": "1",
        "PIP_NO_INPUT": "1",
        "PYTHONNOUSERSITE": "1",
    }
    assert hostile == before


def test_pip_version_is_the_pip_safepip_runs() -> None:
    version = pip.pip_version()
    assert version >= pip.MINIMUM_PIP
    assert pip.pip_version(sys.executable, environ={"PIP_CONFIG_FILE": "/nonexistent"}) == version


def test_pip_version_of_an_interpreter_without_pip(venv: Path) -> None:
    with pytest.raises(PipError) as info:
        pip.pip_version(str(venv))
    assert "No module named pip" in str(info.value)
    assert "23.0" in info.value.hint


# --- resolve ------------------------------------------------------------------------------------


def test_install_installs_exactly_the_pinned_wheels(
    tmp_path: Path, pair: tuple[Path, Path, Path], venv: Path
) -> None:
    wheels, alpha, beta = pair
    make_wheel(wheels, "gamma", "1.0")  # in the folder, not pinned: must not be installed
    requirements = hashed_requirements(
        tmp_path / "gen.txt", {"alpha-pkg==1.0": alpha, "beta==2.1": beta}
    )
    log = Log()
    pip.install(
        wheels,
        requirements,
        python_target=str(venv),
        target_dir=None,
        environ=os.environ,
        log=log,
    )
    assert installed(site_packages(venv.parent.parent)) == {
        "alpha_pkg-1.0.dist-info",
        "beta-2.1.dist-info",
    }
    assert not list(site_packages(venv.parent.parent).rglob("*.pyc")), "safepip.bytecode compiles"
    assert run_python(venv, "import alpha_pkg, beta; print(alpha_pkg.__version__)") == "1.0"
    command = log.lines[0]
    for part in (
        f"--python {venv} install --no-index --find-links {wheels} --no-deps --require-hashes",
        "--only-binary :all: --no-cache-dir --force-reinstall --no-compile -r",
    ):
        assert part in command
    assert "Successfully installed alpha-pkg-1.0 beta-2.1" in log.text


def test_install_refuses_a_hash_mismatch(
    tmp_path: Path, pair: tuple[Path, Path, Path], venv: Path
) -> None:
    wheels, alpha, beta = pair
    requirements = hashed_requirements(
        tmp_path / "gen.txt", {"alpha-pkg==1.0": alpha, "beta==2.1": alpha}
    )
    with pytest.raises(PipError) as info:
        pip.install(
            wheels, requirements, python_target=str(venv), target_dir=None, environ=os.environ
        )
    message = str(info.value)
    assert "\n" not in message
    assert "beta==2.1" in message
    assert sha256_of(beta) in message
    assert info.value.exit_code == 4
    assert installed(site_packages(venv.parent.parent)) == set()


def test_install_replaces_an_installed_copy_of_the_same_version(tmp_path: Path, venv: Path) -> None:
    """An installed ``beta 2.1`` is never accepted as "already satisfied": the vetted one wins."""
    planted = make_wheel(tmp_path / "old", "beta", "2.1", modules={"beta/__init__.py": "W = 0\n"})
    vetted = make_wheel(tmp_path / "new", "beta", "2.1", modules={"beta/__init__.py": "W = 1\n"})
    for wheel in (planted, vetted):
        requirements = hashed_requirements(tmp_path / "gen.txt", {"beta==2.1": wheel})
        pip.install(
            wheel.parent, requirements, python_target=str(venv), target_dir=None, environ=os.environ
        )
        expected = "1" if wheel == vetted else "0"
        assert run_python(venv, "import beta; print(beta.W)") == expected


def test_install_into_a_target_folder(
    tmp_path: Path, pair: tuple[Path, Path, Path], venv: Path
) -> None:
    """pip fills an empty staging folder; merging it into the user's DIR is safepip.target's."""
    wheels, _, beta = pair
    target = tmp_path / "target"
    requirements = hashed_requirements(tmp_path / "gen.txt", {"beta==2.1": beta})
    pip.install(wheels, requirements, python_target=str(venv), target_dir=target, environ={})
    assert installed(target) == {"beta-2.1.dist-info"}
    assert (target / "beta" / "__init__.py").read_text() == '__version__ = "2.1"\n'
    assert installed(site_packages(venv.parent.parent)) == set()


@pytest.mark.parametrize("kind", ["missing", "directory", "not-executable"])
def test_a_bad_python_target_is_a_usage_error(tmp_path: Path, kind: str) -> None:
    python = tmp_path / "python"
    if kind == "directory":
        python.mkdir()
    elif kind == "not-executable":
        python.write_text("#!/bin/sh\n")
    log = Log()
    run: list[Callable[[], object]] = [
        lambda: pip.install(
            tmp_path, tmp_path / "r.txt", python_target=str(python), target_dir=None, environ={}
        ),
    ]
    for call in run:
        with pytest.raises(UsageError) as info:
            call()
        assert str(python) in str(info.value)
        assert info.value.exit_code == 2
    assert log.lines == []  # pip was never started


# --- THREATS.md class F: the local environment is neutral ---------------------------------------


def hostile_setup(tmp_path: Path, venv: Path) -> tuple[dict[str, str], dict[str, Path]]:
    """An environment (and a pip.conf in the target venv) that would each change the install."""
    evil = tmp_path / "evil"
    evil.mkdir()
    marker = evil / "sitecustomize-ran"
    (evil / "sitecustomize.py").write_text(
        f"open({str(marker)!r}, 'a').write('ran\\n')\n", encoding="utf-8"
    )
    (evil / "constraints.txt").write_text("beta==1.0\n")
    make_wheel(evil, "beta", "3.0")  # what PIP_FIND_LINKS would offer
    leaked = {name: tmp_path / f"leaked-{name}" for name in ("target", "conf", "site-conf")}
    (evil / "pip.conf").write_text(f"[install]\ntarget = {leaked['conf']}\n")
    (venv.parent.parent / "pip.conf").write_text(f"[install]\ntarget = {leaked['site-conf']}\n")
    environ = plain_environ(
        {
            "PIP_INDEX_URL": "http://127.0.0.1:9/simple/",
            "PIP_EXTRA_INDEX_URL": "http://127.0.0.1:9/extra/",
            "PIP_FIND_LINKS": str(evil),
            "PIP_NO_REQUIRE_HASHES": "1",
            "PIP_CONSTRAINT": str(evil / "constraints.txt"),
            "PIP_CONFIG_FILE": str(evil / "pip.conf"),
            "PIP_TARGET": str(leaked["target"]),
            "PYTHONPATH": str(evil),
        }
    )
    return environ, {"marker": marker, **leaked}


@pytest.mark.parametrize(
    ("trap", "expected"),
    [
        (("PYTHONPATH",), "marker"),
        (("PIP_TARGET",), "target"),
        (("PIP_CONFIG_FILE",), "conf"),
        ((), "site-conf"),
        (("PIP_CONSTRAINT",), "conflicting dependencies"),
    ],
)
def test_each_trap_changes_what_plain_pip_does(
    tmp_path: Path,
    pair: tuple[Path, Path, Path],
    venv: Path,
    trap: tuple[str, ...],
    expected: str,
) -> None:
    """The control for the test below: without safepip's protections, each trap springs."""
    wheels, _, beta = pair
    hostile, paths = hostile_setup(tmp_path, venv)
    environ = plain_environ({name: hostile[name] for name in trap})
    if expected != "site-conf":
        (venv.parent.parent / "pip.conf").unlink()
    else:
        # A PIP_CONFIG_FILE that is not os.devnull still lets pip read the global and site
        # (``<venv>/pip.conf``) files; an empty one keeps this machine's user file out of the test.
        environ["PIP_CONFIG_FILE"] = str(tmp_path / "empty.conf")
        (tmp_path / "empty.conf").write_text("")
    requirements = hashed_requirements(tmp_path / "gen.txt", {"beta==2.1": beta})
    done = subprocess.run(
        [
            *PLAIN_PIP,
            str(venv),
            "install",
            "--no-index",
            "--find-links",
            str(wheels),
            "--no-deps",
            "-r",
            str(requirements),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        env=environ,
        check=False,
    )
    if expected in paths:
        assert done.returncode == 0, done.stderr
        assert paths[expected].exists()
    else:
        assert done.returncode != 0
        assert expected in done.stderr


def test_install_ignores_pip_settings_config_files_and_pythonpath(
    tmp_path: Path, pair: tuple[Path, Path, Path], venv: Path
) -> None:
    wheels, alpha, beta = pair
    environ, paths = hostile_setup(tmp_path, venv)
    requirements = hashed_requirements(
        tmp_path / "gen.txt", {"alpha-pkg==1.0": alpha, "beta==2.1": beta}
    )
    log = Log()
    pip.install(
        wheels, requirements, python_target=str(venv), target_dir=None, environ=environ, log=log
    )
    target = tmp_path / "t"
    pip.install(
        wheels, requirements, python_target=None, target_dir=target, environ=environ, log=log
    )
    assert installed(site_packages(venv.parent.parent)) == {
        "alpha_pkg-1.0.dist-info",
        "beta-2.1.dist-info",
    }
    assert installed(target) == {"alpha_pkg-1.0.dist-info", "beta-2.1.dist-info"}
    for name, path in paths.items():
        assert not path.exists(), f"{name} leaked into pip: {path}"
    assert "evil" not in log.text
    assert "127.0.0.1" not in log.text
