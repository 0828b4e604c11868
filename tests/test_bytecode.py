"""bytecode: safepip compiles in parallel to pip's end state, and pip uninstall removes it all.

The reference is real pip (the one safepip runs) installing the same wheels *with* its own
byte-compilation into the same path: the ``.pyc`` files, their bytes (but for the source mtime
stamped in each header) and every ``RECORD`` must come out identical.
"""

from __future__ import annotations

import csv
import hashlib
import importlib.util
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from safepip import bytecode
from safepip._cli import main
from safepip.errors import BytecodeError, PipError
from tests.keys import Keyring
from tests.site import make_site, published_and_served
from tests.wheels import make_wheel

pytestmark = pytest.mark.e2e

#: Enough modules that the compile step starts worker processes (it stays serial below 64).
GENERATED = {f"omega/gen/m{i:02d}.py": f"VALUE = {i}\n" for i in range(80)}
OMEGA = {
    "omega/__init__.py": "from omega.sub import deep\n",
    "omega/sub/__init__.py": "",
    "omega/sub/deep.py": 'PATTERN = "\\d+"\n',  # an invalid escape: a warning pip ignores
    "omega/legacy.py": 'print "Python 2 only"\n',  # does not compile: pip skips it silently
    "omega/data.txt": "not Python\n",
    **GENERATED,
}
#: A .py script from the wheel's .data folder: pip installs it to bin/ and compiles it there.
TOOL = {"tool/__init__.py": "", "tool-1.0.data/scripts/tool_cli.py": "#!python\nprint(1)\n"}
CACHE_TAG = sys.implementation.cache_tag
#: The distribution's own files; its RECORD also lists .py files elsewhere that it does not hold.
HOSTILE = {"hostile/__init__.py": "", "hostile/mod.py": "X = 1\n"}
#: RECORD rows naming one installed file three ways: only pip's own spelling is compiled.
ALIASED = {"aliased/__init__.py": "", "aliased/mod.py": "X = 1\n"}


@dataclass
class Env:
    out: Path
    client: Path
    venv: Path

    @property
    def lib(self) -> Path:
        (found,) = self.venv.glob("lib/python*/site-packages")
        return found

    @property
    def python(self) -> str:
        return str(self.venv / "bin" / "python")

    def locked(self, *names: str) -> Path:
        lines = []
        for name in names:
            wheel = self.out / f"{name}-1.0-py3-none-any.whl"
            digest = hashlib.sha256(wheel.read_bytes()).hexdigest()
            lines.append(f"{name}==1.0 --hash=sha256:{digest}")
        path = self.client / "locked.txt"
        path.write_text("\n".join(lines) + "\n")
        return path

    def pip(self, *argv: str) -> None:
        """Real pip, as a user runs it (its default byte-compilation included)."""
        env = {**os.environ, "PIP_CONFIG_FILE": os.devnull}
        subprocess.run(
            [sys.executable, "-m", "pip", "--python", self.python, "--disable-pip-version-check",
             *argv], check=True, env=env, capture_output=True,
        )  # fmt: skip

    def pip_install(self, *argv: str) -> None:
        self.pip("install", "--no-index", "--find-links", str(self.out), "--no-deps", *argv)


@pytest.fixture
def env(tmp_path: Path, keyring: Keyring, monkeypatch: pytest.MonkeyPatch) -> Iterator[Env]:
    monkeypatch.setenv("GNUPGHOME", str(keyring.home))
    site = make_site(tmp_path, keyring, {})
    make_wheel(site.wheels, "omega", "1.0", modules=OMEGA)
    make_wheel(site.wheels, "tool", "1.0", modules=TOOL)
    # Relative rows count from <venv>/lib/pythonX.Y/site-packages: four levels up is tmp_path.
    hostile_rows = [f"{tmp_path / 'victim' / 'mod.py'},,", "../../../../victim-rel/mod.py,,",
                    "../../../bin/stray.py,,"]  # fmt: skip
    make_wheel(site.wheels, "hostile", "1.0", modules=HOSTILE, extra_record_rows=hostile_rows)
    make_wheel(site.wheels, "aliased", "1.0", modules=ALIASED,
               extra_record_rows=["aliased/./mod.py,,", "aliased//mod.py,,"])  # fmt: skip
    marker = f"open({str(tmp_path / 'ran')!r} + {{}}, 'w').close()"
    startup = {"startup.pth": "import builtins; " + marker.format("'.pth'") + "\n",
               "sitecustomize.py": marker.format("'-sitecustomize'") + "\n"}  # fmt: skip
    make_wheel(site.wheels, "startup", "1.0", modules=startup)
    with published_and_served(site, monkeypatch, "-q") as (_, client, venv):
        yield Env(site.out, client, venv)


def files(root: Path) -> dict[str, bytes]:
    """Every file under ``root``: its bytes, with a .pyc's source mtime (bytes 8-11) blanked."""
    found = {}
    for path in sorted(root.rglob("*")):
        if path.is_file() and not path.is_symlink():  # not the venv's python
            data = path.read_bytes()
            if path.suffix == ".pyc":
                data = data[:8] + b"\0\0\0\0" + data[12:]
            found[str(path.relative_to(root))] = data
    return found


def without_installer_marks(found: dict[str, bytes], installer: str) -> dict[str, bytes]:
    """``found`` without what only says which installer ran: INSTALLER (``pip`` or ``uv``), and
    uv's own ``uv_cache.json`` in each .dist-info and ``.lock`` at the environment's root (and
    their RECORD rows). Everything else, every .pyc and RECORD row included, must be identical."""

    def marks(name: str) -> bool:
        return name.endswith(("/INSTALLER", "/uv_cache.json")) or name in (".lock", "INSTALLER")

    kept: dict[str, bytes] = {}
    for name, data in found.items():
        if marks(name):
            assert installer == "uv" or not name.endswith(("uv_cache.json", ".lock")), name
            continue
        if name.endswith("/RECORD"):
            rows = data.decode().splitlines(keepends=True)
            kept[name] = "".join(r for r in rows if not marks("/" + r.split(",")[0])).encode()
        else:
            kept[name] = data
    return kept


def unmarked(found: dict[str, list[list[str]]]) -> dict[str, list[list[str]]]:
    """RECORD rows without the installer's marks (see :func:`without_installer_marks`)."""
    return {
        folder: [r for r in rows if not r[0].endswith(("/INSTALLER", "/uv_cache.json"))]
        for folder, rows in found.items()
    }


def records(lib: Path) -> dict[str, list[list[str]]]:
    """The RECORD rows of every distribution in ``lib``, by .dist-info folder."""
    found = {}
    for record in sorted(lib.glob("*.dist-info/RECORD")):
        with record.open(newline="", encoding="utf-8") as file:
            found[record.parent.name] = list(csv.reader(file))
    return found


def assert_compiled_and_recorded(lib: Path) -> int:
    """Every installed .py inside ``lib`` but legacy.py has its .pyc; every .pyc is recorded.

    Returns the number of .pyc files found.
    """
    rows = {row[0]: row for rows in records(lib).values() for row in rows}
    for relative in rows:
        source = lib / relative
        if relative.endswith(".py") and source.resolve().is_relative_to(lib.resolve()):
            pyc = Path(importlib.util.cache_from_source(str(source)))
            assert pyc.is_file() == (source.name != "legacy.py"), pyc
    pycs = sorted(lib.rglob(f"*.{CACHE_TAG}.pyc"))
    for pyc in pycs:
        relative = pyc.relative_to(lib).as_posix()
        assert rows.get(relative) == [relative, "", ""], f"{relative} is not recorded as pip would"
    return len(pycs)


def test_install_compiles_like_pip_and_uninstalls_without_a_trace(env: Env, installer: str) -> None:
    (lib,) = env.venv.glob("lib/python*/site-packages")
    empty = files(env.venv)

    env.pip_install("omega==1.0", "tool==1.0")
    by_pip = files(env.venv)
    env.pip("uninstall", "-y", "omega", "tool")
    assert files(env.venv) == empty

    locked = str(env.locked("omega", "tool"))
    assert main(["install", "--python", env.python, "-q", "-r", locked]) == 0
    by_safepip = files(env.venv)
    # omega's 84 modules but legacy.py, tool/__init__.py; and bin/tool_cli.py (../../../bin/…)
    assert assert_compiled_and_recorded(lib) == 83 + 1
    assert (env.venv / "bin" / "__pycache__" / f"tool_cli.{CACHE_TAG}.pyc").is_file()
    by_safepip = without_installer_marks(by_safepip, installer)
    assert sorted(by_safepip) == sorted(without_installer_marks(by_pip, "pip"))
    assert by_safepip == without_installer_marks(by_pip, "pip"), "a .pyc or RECORD differs"

    env.pip("uninstall", "-y", "omega", "tool")
    assert without_installer_marks(files(env.venv), installer) == empty


def test_target_folder_is_compiled_and_recorded_like_pip(
    env: Env, tmp_path: Path, installer: str
) -> None:
    target = tmp_path / "target"
    env.pip_install("--target", str(target), "omega==1.0")
    by_pip = files(target)
    pip_records = records(target)

    other = tmp_path / "other"
    assert main(["install", "--target", str(other), "-q", "-r", str(env.locked("omega"))]) == 0
    by_safepip = without_installer_marks(files(other), installer)
    by_pip = without_installer_marks(by_pip, "pip")
    assert assert_compiled_and_recorded(other) == 83  # omega's 84 modules but legacy.py
    assert sorted(by_safepip) == sorted(by_pip)
    assert unmarked(records(other)) == unmarked(pip_records)
    # pip compiled in a temporary folder, so its .pyc files name that folder: compare headers.
    assert {k: v[:16] for k, v in by_safepip.items()} == {k: v[:16] for k, v in by_pip.items()}
    wheel = env.out / "omega-1.0-py3-none-any.whl"
    layout = bytecode.target_layout(None, other, environ={})
    again = bytecode.compile_installed([wheel], layout, environ={})
    assert again == bytecode.Compiled(distributions=1, sources=84, compiled=83)
    assert unmarked(records(other)) == unmarked(pip_records), "nothing may be recorded twice"

    # What `pip uninstall` does with a distribution: delete what RECORD lists, then empty folders.
    for rows in records(other).values():
        for row in rows:
            (other / row[0]).unlink()
    for folder in sorted(other.rglob("*"), key=lambda p: len(p.parts), reverse=True):
        folder.rmdir()
    assert not any(other.iterdir())


def test_no_python_files_is_a_no_op(env: Env, tmp_path: Path) -> None:
    wheel = make_wheel(tmp_path / "plain", "plain", "1.0", modules={"plain.txt": "data\n"})
    target = tmp_path / "target"
    env.pip("install", "--no-compile", "--target", str(target), str(wheel))
    (record,) = target.glob("*.dist-info/RECORD")
    before = record.read_bytes()
    layout = bytecode.target_layout(None, target, environ=os.environ)
    done = bytecode.compile_installed([wheel], layout, environ=os.environ)
    assert done == bytecode.Compiled(distributions=1, sources=0, compiled=0)
    assert record.read_bytes() == before
    assert not list(target.rglob("*.pyc"))
    no_wheels = bytecode.compile_installed([], layout, environ=os.environ)
    assert no_wheels == bytecode.Compiled(0, 0, 0)


def test_a_failed_compile_step_says_the_packages_are_installed(tmp_path: Path) -> None:
    wheel = make_wheel(tmp_path / "w", "lost", "1.0")
    with pytest.raises(BytecodeError) as caught:
        layout = bytecode.target_layout(None, tmp_path / "empty", environ=os.environ)
        bytecode.compile_installed([wheel], layout, environ=os.environ)
    message = str(caught.value)
    assert message.startswith("the vetted packages are installed, but byte-compiling them failed")
    assert "lost-1.0.dist-info/RECORD" in message and "\n" not in message
    assert caught.value.exit_code == 4


def test_an_interpreter_that_cannot_run_is_a_bytecode_error(tmp_path: Path) -> None:
    wheel = make_wheel(tmp_path / "w", "lost", "1.0")
    missing = str(tmp_path / "no-python")
    with pytest.raises(PipError, match=r"\(nothing was installed\): cannot run it") as caught:
        bytecode.target_layout(missing, None, environ={})
    assert not isinstance(caught.value, BytecodeError)
    layout = bytecode.Layout(missing, False, (str(tmp_path),), *[str(tmp_path)] * 4)
    with pytest.raises(BytecodeError, match="cannot run"):
        bytecode.compile_installed([wheel], layout, environ={})


def test_the_layout_is_the_venvs_not_its_base_interpreters(env: Env) -> None:
    layout = bytecode.target_layout(env.python, None, environ=os.environ)
    assert Path(layout.purelib) == env.lib == Path(layout.sites[0])
    assert (layout.scripts, layout.data) == (str(env.venv / "bin"), str(env.venv))
    assert not layout.target


def pip_end_state(
    env: Env, tmp_path: Path, name: str
) -> tuple[list[str], dict[str, list[list[str]]]]:
    """What pip itself leaves in a fresh venv for ``name``: its files (relative), its RECORDs."""
    reference = Env(env.out, env.client, tmp_path / "pip-venv")
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(reference.venv)], check=True)
    if (env.venv / "bin" / "stray.py").exists():
        (reference.venv / "bin" / "stray.py").write_text("Y = 2\n")
    reference.pip_install(f"{name}==1.0")
    return sorted(files(reference.venv)), records(reference.lib)


def test_record_rows_for_files_pip_did_not_install_are_not_compiled(
    env: Env, tmp_path: Path
) -> None:
    # pip keeps every row of the wheel's RECORD, also for files it never installed; compiling
    # those would write .pyc files outside the venv (as root: anywhere) that uninstall deletes.
    victims = [tmp_path / "victim" / "mod.py", tmp_path / "victim-rel" / "mod.py"]
    stray = env.venv / "bin" / "stray.py"  # inside the venv, but not this wheel's
    for victim in [*victims, stray]:
        victim.parent.mkdir(exist_ok=True)
        victim.write_text("Y = 2\n")
    expected_files, expected_records = pip_end_state(env, tmp_path, "hostile")

    assert main(["install", "--python", env.python, "-q", "-r", str(env.locked("hostile"))]) == 0
    for victim in [*victims, stray]:
        assert not (victim.parent / "__pycache__").exists(), f"{victim} was compiled"
    rows = records(env.lib)["hostile-1.0.dist-info"]
    assert [row for row in rows if row[0].endswith(".pyc")] == [
        [f"hostile/__pycache__/{module}.{CACHE_TAG}.pyc", "", ""] for module in ("__init__", "mod")
    ]
    assert sorted(files(env.venv)) == expected_files
    assert records(env.lib) == expected_records


def test_record_rows_are_not_duplicated(env: Env, tmp_path: Path) -> None:
    expected_files, expected_records = pip_end_state(env, tmp_path, "aliased")

    assert main(["install", "--python", env.python, "-q", "-r", str(env.locked("aliased"))]) == 0
    (rows,) = records(env.lib).values()
    assert len({tuple(row) for row in rows}) == len(rows), rows
    pyc = f"aliased/__pycache__/mod.{CACHE_TAG}.pyc"
    assert [pyc, "", ""] in rows
    # Compiled from pip's spelling of the path, which the .pyc records as its co_filename.
    assert str(env.lib / "aliased" / "mod.py").encode() in (env.lib / pyc).read_bytes()
    assert sorted(files(env.venv)) == expected_files
    assert records(env.lib) == expected_records


def test_startup_files_of_the_installed_packages_do_not_run(env: Env, tmp_path: Path) -> None:
    # pip compiles in its own process, started before these files existed: nor does safepip.
    assert main(["install", "--python", env.python, "-q", "-r", str(env.locked("startup"))]) == 0
    assert (env.lib / "startup.pth").is_file()
    assert (env.lib / "__pycache__" / f"sitecustomize.{CACHE_TAG}.pyc").is_file()
    assert not list(tmp_path.glob("ran*")), "safepip ran a just-installed .pth or sitecustomize"

    subprocess.run([env.python, "-c", "pass"], check=True)  # they do run as the venv starts
    assert sorted(p.name for p in tmp_path.glob("ran*")) == ["ran-sitecustomize", "ran.pth"]


def test_a_layout_probe_fails_where_its_answer_is_taken_not_where_it_starts(
    tmp_path: Path,
) -> None:
    missing = str(tmp_path / "no-python")
    probe = bytecode.layout_probe(missing, None, environ={})
    with probe as layout, pytest.raises(PipError, match=r"\(nothing was installed\): cannot"):
        layout()  # entering the block raised nothing


def slow_python(tmp_path: Path) -> tuple[Path, Path]:
    """An "interpreter" that records its pid and hangs: (its path, the pid file)."""
    pidfile = tmp_path / "pid"
    slow = tmp_path / "python"
    slow.write_text(f"#!/bin/sh\necho $$ > {pidfile}\nexec sleep 60\n")
    slow.chmod(0o755)
    return slow, pidfile


def started_pid(pidfile: Path) -> int:
    for _ in range(200):
        if pidfile.exists() and pidfile.read_text().strip():
            break
        time.sleep(0.01)
    return int(pidfile.read_text())


def test_a_layout_probe_nobody_asked_is_ended_with_the_block(tmp_path: Path) -> None:
    slow, pidfile = slow_python(tmp_path)
    with bytecode.layout_probe(str(slow), None, environ=os.environ):
        pid = started_pid(pidfile)
    assert not Path(f"/proc/{pid}").exists(), "the probe outlived the run that started it"


def test_a_layout_probe_answers_as_target_layout(env: Env, tmp_path: Path) -> None:
    with bytecode.layout_probe(env.python, None, environ=os.environ) as layout:
        assert layout() == bytecode.target_layout(env.python, None, environ=os.environ)
    with bytecode.layout_probe(env.python, tmp_path, environ=os.environ) as layout:
        assert layout().target and layout().purelib == str(tmp_path)


def test_a_compiler_fails_where_it_is_handed_work_not_where_it_starts(tmp_path: Path) -> None:
    missing = str(tmp_path / "no-python")
    layout = bytecode.Layout(missing, False, (str(tmp_path),), *[str(tmp_path)] * 4)
    wheel = make_wheel(tmp_path / "w", "lost", "1.0")
    started = bytecode.compiler(layout, environ={})
    with started as compile_wheels, pytest.raises(BytecodeError, match="cannot run"):
        compile_wheels([wheel])  # entering the block raised nothing


def test_a_compiler_nobody_handed_work_is_ended_with_the_block(tmp_path: Path) -> None:
    slow, pidfile = slow_python(tmp_path)
    layout = bytecode.Layout(str(slow), False, (str(tmp_path),), *[str(tmp_path)] * 4)
    with bytecode.compiler(layout, environ=os.environ):
        pid = started_pid(pidfile)
    assert not Path(f"/proc/{pid}").exists(), "the compile run outlived the install"
