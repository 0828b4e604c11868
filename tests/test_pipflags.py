"""pip's install flags, end to end into real venvs: honoured, accepted as no-ops, or refused.

Each row of the README's "pip's install flags" table is exercised here; the flags are grouped
into few installs so that the module stays fast. The table itself is checked against
:mod:`safepip.pipflags` and the CLI's own flags.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from safepip import pipflags
from safepip._cli import build_parser
from tests.keys import Keyring
from tests.server import LoopbackServer
from tests.test_install import Index, install, run, served_index
from tests.wheels import make_wheel

pytestmark = pytest.mark.e2e

README = (Path(__file__).parent.parent / "README.md").read_text(encoding="utf-8")


@pytest.fixture
def index(tmp_path: Path, keyring: Keyring, monkeypatch: pytest.MonkeyPatch) -> Iterator[Index]:
    more = [("epsilon", v) for v in ("0.9", "1.0", "2.0rc1")]
    with served_index(tmp_path, keyring, monkeypatch, more) as served:
        yield served


# -- the table ------------------------------------------------------------------------------------


def readme_rows() -> dict[str, str]:
    """``flag → what safepip does`` from the README's table of pip's flags."""
    table = README.split("<!-- pipflags:start -->", 1)[1].split("<!-- pipflags:end -->", 1)[0]
    rows = {}
    for line in table.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 2 and cells[0].startswith("`"):
            for flag in re.findall(r"`(-[^` ]+)", cells[0]):
                rows[flag] = cells[1]
    return rows


def test_the_readme_table_names_every_pip_flag_safepip_takes() -> None:
    rows = readme_rows()
    install_parser = build_parser()._subparsers._group_actions[0].choices["install"]  # type: ignore[union-attr]
    pip_groups = [g for g in install_parser._action_groups if g.title and "pip's" in g.title]
    flags = {s for g in pip_groups for a in g._group_actions for s in a.option_strings}
    flags |= {"-i", "--index-url", "-r", "--requirement", "-t", "--target", "--dry-run"}
    assert flags - set(rows) == set(), "flags missing from the README table"
    assert set(rows) - flags == set(), "README rows for flags the CLI does not have"
    for flag in pipflags.NO_OPS:
        assert "no-op" in rows[flag.names[-1]]
    for flag in pipflags.REFUSED:
        assert "refused" in rows[flag.names[-1]]


# -- no-ops ---------------------------------------------------------------------------------------


def no_op_argv() -> list[str]:
    argv = []
    values = {"--only-binary": ":all:", "--root-user-action": "ignore", "--progress-bar": "off",
              "--exists-action": "i", "--trusted-host": "pypi.org", "--retries": "2",
              "--default-timeout": "100", "--cache-dir": "/nonexistent", "-C": "a=b",
              "--config-settings": "a=b", "--global-option": "x",
              "--use-deprecated": "legacy-resolver", "--use-feature": "truststore"}  # fmt: skip
    for flag in pipflags.NO_OPS:
        name = flag.names[-1]
        argv += [name, values[name]] if flag.metavar else [name]
    return argv


def test_every_no_op_flag_at_once_installs_as_without_them(
    index: Index, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = install(index, capsys, *no_op_argv(), "-r", str(index.locked("gamma")))
    assert code == 0, err
    assert "installed 1 vetted package(s): gamma==0.1" in out
    assert index.installed() == ["gamma==0.1"]
    for flag in pipflags.NO_OPS:
        assert f"{flag.names[-1]}: accepted, nothing to do" in err


# -- refused --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "argv",
    [
        ["-e", "."],
        ["--editable=git+https://example.org/x.git#egg=x"],
        ["--no-binary", ":all:"],
        ["--src", "src"],
        ["--no-require-hashes"],
        ["-r", "REQ", "--no-binary=gamma"],
    ],
)
def test_a_refused_flag_is_named_exit_1_nothing_fetched(
    index: Index, capsys: pytest.CaptureFixture[str], argv: list[str]
) -> None:
    argv = [str(index.locked("gamma")) if a == "REQ" else a for a in argv]
    before = len(index.server.requests)
    code, _out, err = install(index, capsys, *argv, "gamma")
    flag = next(a for a in argv if a.startswith("-") and a != "-r").split("=")[0]
    assert code == 1, err
    assert f"error: {flag}: refused:" in err
    assert "hint: safepip installs only wheels whose sha256 is on the signed list" in err
    assert index.installed() == []
    assert len(index.server.requests) == before, "nothing is fetched before the refusal"


def test_an_unknown_flag_is_a_usage_error_naming_it(
    index: Index, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _out, err = install(index, capsys, "--no-such-pip-flag", "gamma")
    assert code == 2
    assert "--no-such-pip-flag" in err and "safepip install --help" in err
    assert index.installed() == []


# -- honoured -------------------------------------------------------------------------------------


def test_upgrade_force_reinstall_and_strategy_install_the_newest_vetted(
    index: Index, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _out, err = install(index, capsys, "-U", "--force-reinstall", "--upgrade-strategy",
                             "eager", "--upgrade", "epsilon", "alpha")  # fmt: skip
    assert code == 0, err
    assert index.installed() == ["alpha==1.0", "beta==2.0", "epsilon==1.0"]


def test_no_deps_pre_and_constraints(
    index: Index, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    constraints = tmp_path / "constraints.txt"
    constraints.write_text("epsilon==0.9\n")
    code, _out, err = install(
        index, capsys, "--no-deps", "-c", str(constraints), "alpha", "epsilon"
    )
    assert code == 0, err
    assert index.installed() == ["alpha==1.0", "epsilon==0.9"], "no beta: --no-deps"
    code, _out, err = install(index, capsys, "--pre", "epsilon")
    assert code == 0, err
    assert "epsilon==2.0rc1" in index.installed()
    # A locked file's line outside a constraint is refused, before anything is downloaded.
    constraints.write_text("# pinned below\ngamma<0.1\n")
    code, out, err = install(
        index, capsys, "-c", str(constraints), "-r", str(index.locked("gamma"))
    )
    assert code == 1
    assert "dependency-missing: gamma==0.1 is excluded by the constraint gamma<0.1 (-c)" in out
    # A constraints file is read by the same strict parser as requirements files.
    constraints.write_text("--extra-index-url https://evil.example/simple\n")
    code, out, err = install(index, capsys, "-c", str(constraints), "gamma")
    assert code == 1
    assert f"{constraints}:1: unsupported:" in out
    assert "gamma==0.1" not in index.installed()


def test_prefix_root_no_compile_and_report(
    index: Index, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    prefix, root, report = tmp_path / "prefix", tmp_path / "root", tmp_path / "report.json"
    code, out, err = install(index, capsys, "--prefix", str(prefix), "--report", str(report),
                             "alpha")  # fmt: skip
    assert code == 0, err
    assert f"into {prefix}" in out
    sites = list(prefix.glob("lib/python*/site-packages"))
    assert [p.name for p in sorted(sites[0].glob("*.dist-info"))] == [
        "alpha-1.0.dist-info", "beta-2.0.dist-info"]  # fmt: skip
    assert list(sites[0].rglob("*.pyc")), "pip byte-compiles what it puts under --prefix"
    document = json.loads(report.read_text())
    assert document["version"] == "1"
    assert [(i["metadata"]["name"], i["requested"]) for i in document["install"]] == [
        ("alpha", True), ("beta", False)]  # fmt: skip
    sha = index.sha("beta-2.0-py3-none-any.whl")
    assert document["install"][1]["download_info"]["archive_info"]["hashes"] == {"sha256": sha}
    code, out, err = install(index, capsys, "--root", str(root), "--no-compile", "gamma")
    assert code == 0, err
    found = list(root.rglob("gamma-0.1.dist-info"))
    assert found and str(found[0]).startswith(str(root / index.venv.relative_to("/")))
    assert not list(root.rglob("*.pyc")), "--no-compile"
    code, _out, err = install(index, capsys, "--no-compile", "--break-system-packages", "gamma")
    assert code == 0, err
    assert index.installed() == ["gamma==0.1"]
    assert not list(index.venv.rglob("gamma/*.pyc")) and not list(
        index.venv.rglob("gamma/__pycache__/*")
    )


def test_user_installs_into_the_user_site(
    index: Index,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    base = Path(sys.base_prefix) / "bin" / "python3"
    probe = [str(base), "-c", "import sys; sys.exit(sys.prefix != sys.base_prefix)"]
    if not base.exists() or subprocess.run(probe, check=False).returncode != 0:
        pytest.skip("no base interpreter to install --user for")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    code, out, err = run(capsys, "install", "--python", str(base), "--user", "gamma")
    if code == 4 and "externally" in err:
        pytest.skip("the base interpreter is externally managed (PEP 668)")
    assert code == 0, err
    assert out.rstrip().endswith("--user")
    assert list((tmp_path / "home" / ".local").rglob("gamma-0.1.dist-info"))


# -- sources: -i, --extra-index-url, -f, --no-index -----------------------------------------------


def test_sources_are_transport_a_missing_file_is_found_in_the_next(
    index: Index, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    # A mirror that serves only gamma's page: alpha and beta come from the configured index.
    mirror = tmp_path / "mirror"
    shutil.copytree(index.site.out / "simple" / "gamma", mirror / "simple" / "gamma")
    shutil.copy(index.site.out / "gamma-0.1-py3-none-any.whl", mirror)
    with LoopbackServer(mirror) as server:
        code, _out, err = install(index, capsys, "-i", server.url_for("simple/"), "alpha", "gamma")
        assert code == 0, err
        assert any("/gamma-0.1-py3-none-any.whl" in r for r in server.requests)
    assert index.installed() == ["alpha==1.0", "beta==2.0", "gamma==0.1"]


def test_a_source_serving_other_bytes_is_refused(
    index: Index, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    evil = tmp_path / "evil"
    make_wheel(evil, "gamma", "0.1", modules={"gamma/__init__.py": "print('owned')\n"})
    code, out, _err = install(index, capsys, "--no-index", "-f", str(evil), "--extra-index-url",
                              index.server.url_for("simple/"), "gamma")  # fmt: skip
    assert code == 1
    assert "gamma-0.1-py3-none-any.whl: hash-mismatch" in out
    assert index.installed() == []


def test_find_links_folder_with_no_index_needs_no_index(
    index: Index, capsys: pytest.CaptureFixture[str]
) -> None:
    before = len(index.server.requests)
    code, _out, err = install(index, capsys, "--no-index", "-f", str(index.site.out), "alpha")
    assert code == 0, err
    assert index.installed() == ["alpha==1.0", "beta==2.0"]
    assert [r for r in index.server.requests[before:] if "simple" in r or r.endswith(".whl")] == []
    code, _out, err = install(index, capsys, "--no-index", "gamma")
    assert code == 2 and "no source to download from" in err
    # A find-links page (not a folder): its links are the files.
    page = index.server.url_for("simple/gamma/")
    code, _out, err = install(index, capsys, "--no-index", "--find-links", page, "gamma")
    assert code == 0, err
    assert "gamma==0.1" in index.installed()
