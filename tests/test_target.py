"""install --target: pip installs into a private staging folder, safepip merges it into DIR.

The end-to-end tests install real vetted wheels from a signed loopback index with real pip into
a folder that already holds the user's own files, a symlink, or an earlier version; the plan
tests feed :func:`safepip.target.plan` a folder described as data.
"""

from __future__ import annotations

import hashlib
import subprocess
import sys
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Literal

import pytest

from safepip import target
from safepip._cli import main
from tests.keys import Keyring
from tests.site import make_site, published_and_served
from tests.wheels import make_wheel

# --- the plan, over a folder described as data ------------------------------------------------

P = PurePosixPath


@dataclass
class Tree:
    """A :class:`safepip.target.View` over ``{path: kind}``; folders are implied by their paths."""

    kinds: Mapping[str, target.Kind]

    def kind(self, path: PurePosixPath) -> target.Kind:
        return self.kinds.get(str(path), "missing")

    def names(self, folder: PurePosixPath) -> frozenset[str]:
        prefix = "" if folder == P() else f"{folder}/"
        return frozenset(
            key[len(prefix) :].split("/")[0] for key in self.kinds if key.startswith(prefix)
        )


def staged(*paths: str) -> dict[PurePosixPath, Literal["dir", "file"]]:
    """Staged files, with their folders."""
    tree: dict[PurePosixPath, Literal["dir", "file"]] = {}
    for path in paths:
        tree[P(path)] = "file"
        for parent in P(path).parents[:-1]:
            tree[parent] = "dir"
    return tree


GAMMA_02 = staged("gamma/__init__.py", "gamma-0.2.dist-info/RECORD", "bin/gamma-cli")


def test_record_paths_inside_the_folder_only() -> None:
    assert target.record_path("gamma/__init__.py") == P("gamma/__init__.py")
    # pip --target writes a console script's row relative to its temporary home's lib/python.
    assert target.record_path("../../bin/gamma-cli") == P("bin/gamma-cli")
    for outside in ("../x.py", "../../../etc/passwd", "/etc/passwd", "c:/x", "", "a/../../.."):
        assert target.record_path(outside) is None, outside


def test_user_files_stay_and_folders_merge() -> None:
    view = Tree({"bin": "dir", "bin/deploy.sh": "file", "gamma": "dir", "handler.py": "file"})
    decided = target.plan(GAMMA_02, frozenset({"gamma"}), [], view)
    assert decided.remove == ()
    assert set(decided.move) == {
        P("bin/gamma-cli"),
        P("gamma-0.2.dist-info"),
        P("gamma/__init__.py"),
    }
    assert decided.conflicts == () and decided.replaced == ()


def test_old_version_files_go_but_never_outside_or_through_a_symlink() -> None:
    view = Tree(
        {
            "gamma-0.1.dist-info": "dir",
            "gamma-0.1.dist-info/RECORD": "file",
            "gamma": "dir",
            "gamma/__init__.py": "file",
            "gamma_compat.py": "file",
            "linked": "link",
            "user.py": "file",
        }
    )
    old = target.Installed(
        "gamma-0.1.dist-info",
        "gamma",
        (
            "gamma-0.1.dist-info/RECORD",
            "gamma/__init__.py",
            "gamma_compat.py",
            "linked/victim.py",  # through a symlink: never
            "../outside.py",
            "/etc/passwd",
            "gamma",  # a folder: never
        ),
    )
    other = target.Installed("other-1.0.dist-info", "other", ("user.py",))
    decided = target.plan(GAMMA_02, frozenset({"gamma"}), [old, other], view)
    assert decided.remove == (
        P("gamma-0.1.dist-info"),
        P("gamma/__init__.py"),
        P("gamma_compat.py"),
    )
    assert decided.old_versions == ("gamma-0.1.dist-info",)
    assert decided.replaced == ()  # gamma/__init__.py was the old version's
    assert P("gamma") in decided.prune


def test_an_earlier_version_without_record_loses_only_its_dist_info() -> None:
    view = Tree({"gamma-0.1.dist-info": "dir", "gamma": "dir", "gamma/old.py": "file"})
    old = target.Installed("gamma-0.1.dist-info", "gamma", None)
    decided = target.plan(GAMMA_02, frozenset({"gamma"}), [old], view)
    assert decided.remove == (P("gamma-0.1.dist-info"),)
    assert decided.unrecorded == ("gamma-0.1.dist-info",)


def test_symlinks_and_stray_files_in_the_way_are_replaced() -> None:
    view = Tree({"gamma": "link", "bin": "file"})
    decided = target.plan(GAMMA_02, frozenset({"gamma"}), [], view)
    assert set(decided.remove) == {P("bin"), P("gamma")}
    assert {(r.path, r.was, r.wanted) for r in decided.replaced} == {
        (P("gamma"), "link", "dir"),
        (P("bin"), "file", "dir"),
    }
    assert P("gamma") in decided.move and P("bin") in decided.move


def test_a_folder_where_a_file_goes_or_a_shadowing_module_is_a_conflict() -> None:
    view = Tree(
        {
            "tool.py": "dir",
            "tool.py/keep.txt": "file",
            "fast": "dir",
            "fast/__init__.py": "file",
            "ext.cpython-312-x86_64-linux-gnu.so": "file",
            "plain": "dir",  # a folder without __init__ is a namespace: the module wins
        }
    )
    decided = target.plan(staged("tool.py", "fast.py", "ext.py", "plain.py"), frozenset(), [], view)
    assert len(decided.conflicts) == 3
    assert any("tool.py is a folder where a vetted file must go" in c for c in decided.conflicts)
    assert any("fast/ is a package" in c for c in decided.conflicts)
    assert any(
        "ext.cpython-312-x86_64-linux-gnu.so is an extension" in c for c in decided.conflicts
    )


# --- end to end: real pip, a signed loopback index, a folder with the user's files ------------

CLI_ENTRY = "[console_scripts]\ngamma-cli = gamma:main\n"
GAMMA_01 = {
    "gamma/__init__.py": "__version__ = '0.1'\ndef main():\n    print('hi')\n",
    "gamma_compat.py": "OLD = True\n",
    "tests/__init__.py": "# shipped by gamma\n",  # a packaging slip, but vetted
    "gamma-0.1.dist-info/entry_points.txt": CLI_ENTRY,
}
GAMMA_02_FILES = {
    "gamma/__init__.py": "__version__ = '0.2'\ndef main():\n    print('hi')\n",
    "gamma-0.2.dist-info/entry_points.txt": CLI_ENTRY,
}


@dataclass
class Index:
    out: Path
    root: Path

    def locked(self, version: str) -> Path:
        wheel = self.out / f"gamma-{version}-py3-none-any.whl"
        digest = hashlib.sha256(wheel.read_bytes()).hexdigest()
        path = self.root / f"gamma-{version}.txt"
        path.write_text(f"gamma=={version} --hash=sha256:{digest}\n")
        return path


@pytest.fixture
def index(tmp_path: Path, keyring: Keyring, monkeypatch: pytest.MonkeyPatch) -> Iterator[Index]:
    monkeypatch.setenv("GNUPGHOME", str(keyring.home))
    site = make_site(tmp_path, keyring, {})
    make_wheel(site.wheels, "gamma", "0.1", modules=GAMMA_01)
    make_wheel(site.wheels, "gamma", "0.2", modules=GAMMA_02_FILES)
    with published_and_served(site, monkeypatch):
        yield Index(site.out, tmp_path)


def install(
    capsys: pytest.CaptureFixture[str], folder: Path, requirements: Path
) -> tuple[int, str, str]:
    code = main(["install", "--target", str(folder), "-r", str(requirements)])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def project(folder: Path) -> Path:
    """A Lambda-style project folder: the user's own scripts, tests and handler."""
    (folder / "bin").mkdir(parents=True)
    (folder / "bin" / "deploy.sh").write_text("#!/bin/sh\necho deploy\n")
    (folder / "tests").mkdir()
    (folder / "tests" / "test_my_app.py").write_text("def test_app(): pass\n")
    (folder / "handler.py").write_text("def handler(event, context): ...\n")
    return folder


def snapshot(folder: Path) -> dict[str, str]:
    """Every entry under ``folder``: a file's bytes, a symlink's target, or "dir"."""
    found: dict[str, str] = {}
    for path in sorted(folder.rglob("*")):
        key = str(path.relative_to(folder))
        if path.is_symlink():
            found[key] = f"-> {path.readlink()}"
        elif path.is_dir():
            found[key] = "dir"
        else:
            found[key] = hashlib.sha256(path.read_bytes()).hexdigest()
    return found


def imported(folder: Path, code: str) -> str:
    """What ``code`` prints with only ``folder`` added to the path (as a Lambda runtime does)."""
    probe = f"import sys; sys.path.insert(0, sys.argv[1]); {code}"
    done = subprocess.run(
        [sys.executable, "-I", "-c", probe, str(folder)],
        capture_output=True,
        text=True,
        check=False,
    )
    return (done.stdout + done.stderr).strip()


@pytest.mark.e2e
def test_the_users_own_folders_and_files_survive(
    index: Index, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    folder = project(tmp_path / "lambda")
    code, out, err = install(capsys, folder, index.locked("0.1"))
    assert code == 0, err
    assert "installed 1 vetted package(s): gamma==0.1" in out
    assert (folder / "bin" / "deploy.sh").read_text() == "#!/bin/sh\necho deploy\n"
    assert (folder / "tests" / "test_my_app.py").is_file()
    assert (folder / "handler.py").is_file()
    assert (folder / "bin" / "gamma-cli").is_file()  # the console script lands beside them
    assert (folder / "tests" / "__init__.py").read_text() == "# shipped by gamma\n"
    assert "warning" not in err  # nothing of the user's was in the way
    assert "removed" not in err
    assert not [p for p in folder.iterdir() if p.name.startswith(".safepip")]
    assert imported(folder, "import gamma; print(gamma.__version__)") == "0.1"


@pytest.mark.e2e
def test_a_user_file_the_wheel_also_ships_is_replaced_with_a_warning(
    index: Index, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    folder = project(tmp_path / "lambda")
    (folder / "tests" / "__init__.py").write_text("# the user's\n")
    code, _, err = install(capsys, folder, index.locked("0.1"))
    assert code == 0, err
    assert f"warning: {folder / 'tests' / '__init__.py'}: was a file" in err
    assert (folder / "tests" / "__init__.py").read_text() == "# shipped by gamma\n"
    assert (folder / "tests" / "test_my_app.py").is_file()


@pytest.mark.e2e
def test_a_symlinked_package_is_replaced_by_the_vetted_one(
    index: Index, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    stale = tmp_path / "stale-gamma"
    stale.mkdir()
    (stale / "__init__.py").write_text("__version__ = 'NOT VETTED'\n")
    folder = tmp_path / "vendor"
    folder.mkdir()
    (folder / "gamma").symlink_to(stale)
    code, _, err = install(capsys, folder, index.locked("0.1"))
    assert code == 0, err
    assert f"warning: {folder / 'gamma'}: was a symlink to {stale}" in err
    assert not (folder / "gamma").is_symlink()
    assert imported(folder, "import gamma; print(gamma.__version__)") == "0.1"
    assert (stale / "__init__.py").read_text() == "__version__ = 'NOT VETTED'\n"  # untouched


@pytest.mark.e2e
def test_an_upgrade_leaves_one_dist_info_and_no_old_file(
    index: Index, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    folder = project(tmp_path / "vendor")
    outside = tmp_path / "outside.py"
    outside.write_text("KEEP = True\n")
    assert install(capsys, folder, index.locked("0.1"))[0] == 0
    # The old RECORD also names a file outside the folder: it must never be deleted.
    (record,) = folder.glob("gamma-0.1.dist-info/RECORD")
    record.write_text(record.read_text() + "../outside.py,,\n/" + str(outside)[1:] + ",,\n")
    code, out, err = install(capsys, folder, index.locked("0.2"))
    assert code == 0, err
    assert "gamma==0.2" in out
    assert f"removed gamma-0.1.dist-info and the files its RECORD names from {folder}" in err
    assert sorted(p.name for p in folder.glob("*.dist-info")) == ["gamma-0.2.dist-info"]
    assert not (folder / "gamma_compat.py").exists()
    assert not (folder / "tests" / "__init__.py").exists()  # 0.1's, not 0.2's
    assert (folder / "tests" / "test_my_app.py").is_file() and (folder / "bin/deploy.sh").is_file()
    assert outside.read_text() == "KEEP = True\n"
    probe = (
        "import importlib.metadata as m; "
        "print([d.version for d in m.distributions(path=[sys.argv[1]])]); import gamma_compat"
    )
    result = imported(folder, probe)
    assert result.startswith("['0.2']") and "No module named 'gamma_compat'" in result
    assert imported(folder, "import gamma; print(gamma.__version__)") == "0.2"
    # The vetted files are compiled and recorded, as pip would.
    assert list((folder / "gamma" / "__pycache__").glob("__init__.*.pyc"))


@pytest.mark.e2e
def test_a_reinstall_replaces_a_tampered_file_and_keeps_one_dist_info(
    index: Index, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    folder = tmp_path / "vendor"
    assert install(capsys, folder, index.locked("0.1"))[0] == 0
    (folder / "gamma" / "__init__.py").write_text("__version__ = 'tampered'\n")
    code, _, err = install(capsys, folder, index.locked("0.1"))
    assert code == 0, err
    assert "warning" not in err and "removed" not in err  # its own RECORD named the file
    assert sorted(p.name for p in folder.glob("*.dist-info")) == ["gamma-0.1.dist-info"]
    assert imported(folder, "import gamma; print(gamma.__version__)") == "0.1"


@pytest.mark.e2e
def test_a_package_folder_shadowing_a_vetted_module_refuses_unchanged(
    index: Index, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    folder = project(tmp_path / "vendor")
    (folder / "gamma_compat").mkdir()
    (folder / "gamma_compat" / "__init__.py").write_text("print('not vetted')\n")
    before = snapshot(folder)
    code, out, err = install(capsys, folder, index.locked("0.1"))
    assert code == 4
    assert out == ""
    assert "gamma_compat/ is a package that would be imported instead of gamma_compat.py" in err
    assert "nothing was changed" in err and "hint:" in err
    assert snapshot(folder) == before


@pytest.mark.e2e
def test_a_failure_part_way_through_the_merge_is_undone(
    index: Index,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    folder = project(tmp_path / "vendor")
    assert install(capsys, folder, index.locked("0.1"))[0] == 0
    before = snapshot(folder)
    real = target._rename
    calls: list[Path] = []

    def failing(source: Path, destination: Path, journal: list[tuple[Path, Path]]) -> None:
        calls.append(source)
        if len(calls) == 4:  # the old version is partly removed, nothing new is in yet
            raise OSError(28, "No space left on device", str(destination))
        real(source, destination, journal)

    monkeypatch.setattr(target, "_rename", failing)
    code, _, err = install(capsys, folder, index.locked("0.2"))
    assert code == 4
    assert "No space left on device" in err and "it was restored as it was" in err
    assert snapshot(folder) == before
    assert imported(folder, "import gamma; print(gamma.__version__)") == "0.1"


@pytest.mark.e2e
def test_a_refused_or_failed_install_leaves_no_new_folder(
    index: Index, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    folder = tmp_path / "new"
    bad = index.root / "bad.txt"
    bad.write_text(f"gamma==0.1 --hash=sha256:{'0' * 64}\n")
    code, _, _ = install(capsys, folder, bad)
    assert code == 1
    assert not folder.exists()
