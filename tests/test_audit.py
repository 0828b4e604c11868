"""audit: installed distributions judged against the vetted wheels; installed means vetted."""

from __future__ import annotations

import base64
import hashlib
import json
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from safepip import audit
from safepip._cli import main
from safepip.audit import Distribution, Expected, Folders, InstalledFile, Manifest
from tests.keys import Keyring
from tests.server import LoopbackServer
from tests.site import make_site, published_and_served
from tests.wheels import make_wheel

SITE = "/v/lib/python3.11/site-packages"
FOLDERS = Folders(SITE, SITE, "/v/bin", "/v")
LAUNCHER = (
    b"#!/v/bin/python\n# -*- coding: utf-8 -*-\nimport re\nimport sys\nfrom alpha.cli import main\n"
    b"if __name__ == '__main__':\n"
    b"    sys.argv[0] = re.sub(r'(-script\\.pyw|\\.exe)?$', '', sys.argv[0])\n"
    b"    sys.exit(main())\n"
)


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _manifest() -> Manifest:
    return Manifest(
        "alpha-1.0.dist-info",
        {
            "alpha/__init__.py": Expected(_sha(b"init")),
            "alpha/cli.py": Expected(_sha(b"cli")),
            "alpha-1.0.dist-info/METADATA": Expected(_sha(b"meta")),
            "alpha-1.0.dist-info/RECORD": Expected(_sha(b"any")),
            "alpha-1.0.data/scripts/tool": Expected(_sha(b"#!python\nrun\n"), _sha(b"run\n")),
        },
        (("alpha", "alpha.cli", "main"),),
    )


def _files(**changes: InstalledFile) -> dict[str, InstalledFile]:
    files = {
        f"{SITE}/alpha/__init__.py": InstalledFile(_sha(b"init")),
        f"{SITE}/alpha/cli.py": InstalledFile(_sha(b"cli")),
        f"{SITE}/alpha-1.0.dist-info/METADATA": InstalledFile(_sha(b"meta")),
        "/v/bin/tool": InstalledFile(_sha(b"#!/v/bin/python\nrun\n"), _sha(b"run\n")),
        "/v/bin/alpha": InstalledFile(_sha(LAUNCHER), None, LAUNCHER),
    }
    files.update({k.replace("__", "/"): v for k, v in changes.items()})
    return files


def _dist(*recorded: str) -> Distribution:
    base = (
        f"{SITE}/alpha/__init__.py",
        f"{SITE}/alpha/cli.py",
        f"{SITE}/alpha/__pycache__/__init__.cpython-311.pyc",
        f"{SITE}/alpha/__pycache__/cli.cpython-311.opt-1.pyc",
        f"{SITE}/alpha-1.0.dist-info/RECORD",
        f"{SITE}/alpha-1.0.dist-info/INSTALLER",
        "/v/bin/alpha",
        "/v/bin/tool",
    )
    return Distribution("alpha", "1.0", SITE, "alpha-1.0.dist-info", recorded=base + recorded)


def test_an_identical_installation_has_no_finding() -> None:
    assert audit.judge(_dist(), _manifest(), _files(), FOLDERS) == []


def test_each_code_is_found() -> None:
    files = _files()
    files[f"{SITE}/alpha/cli.py"] = InstalledFile(_sha(b"evil"))
    del files[f"{SITE}/alpha/__init__.py"]
    files["/v/bin/alpha"] = InstalledFile(_sha(b"x"), None, LAUNCHER + b"import os\n")
    found = audit.judge(
        _dist(f"{SITE}/evil.pth", f"{SITE}/alpha/__pycache__/evil.cpython-311.pyc", "/etc/evil"),
        _manifest(),
        files,
        FOLDERS,
    )
    assert [(f.code, f.path) for f in found] == [
        ("missing-file", f"{SITE}/alpha/__init__.py"),
        ("modified", f"{SITE}/alpha/cli.py"),
        ("modified", "/v/bin/alpha"),
        ("unknown-file", f"{SITE}/evil.pth"),
        ("unknown-file", f"{SITE}/alpha/__pycache__/evil.cpython-311.pyc"),
        ("unknown-file", "/etc/evil"),
    ]


def test_a_symlink_is_modified_and_a_rewritten_interpreter_line_is_not() -> None:
    files = _files()
    files[f"{SITE}/alpha/cli.py"] = InstalledFile("")
    files["/v/bin/tool"] = InstalledFile(_sha(b"#!/other\nrun\n"), _sha(b"run\n"))
    found = audit.judge(_dist(), _manifest(), files, FOLDERS)
    assert [(f.code, f.path) for f in found] == [("modified", f"{SITE}/alpha/cli.py")]


def test_headers_are_judged_where_record_puts_them() -> None:
    header = "/v/include/site/python3.11/alpha/alpha.h"
    members = {**_manifest().members, "alpha-1.0.data/headers/alpha.h": Expected(_sha(b"h"))}
    manifest = Manifest("alpha-1.0.dist-info", members, _manifest().scripts)
    files = {**_files(), header: InstalledFile(_sha(b"h"))}
    assert audit.judge(_dist(header), manifest, files, FOLDERS) == []
    files[header] = InstalledFile(_sha(b"evil"))
    found = audit.judge(_dist(header), manifest, files, FOLDERS)
    assert [(f.code, f.path) for f in found] == [("modified", header)]


def test_launcher_forms() -> None:
    assert audit.is_launcher(LAUNCHER, "alpha.cli", "main")
    double = LAUNCHER.replace(b"'", b'"').replace(b"# -*- coding: utf-8 -*-\n", b"")
    assert audit.is_launcher(double, "alpha.cli", "main")
    trampoline = LAUNCHER.replace(
        b"#!/v/bin/python\n", b"#!/bin/sh\n'''exec' \"/long/python\" \"$0\" \"$@\"\n' '''\n"
    )
    assert audit.is_launcher(trampoline, "alpha.cli", "main")
    assert not audit.is_launcher(LAUNCHER, "alpha.evil", "main")
    assert not audit.is_launcher(b"#!/v/bin/python\nimport os\n" + LAUNCHER, "alpha.cli", "main")


# --- end to end -------------------------------------------------------------------------------

ENTRY_POINTS = "[console_scripts]\nalpha = alpha.cli:main\n"


@dataclass
class Env:
    server: LoopbackServer
    client: Path
    venv: Path

    @property
    def python(self) -> str:
        return str(self.venv / "bin" / "python")

    @property
    def site(self) -> Path:
        return next(self.venv.glob("lib/python*/site-packages"))

    def lock(self, out: Path) -> Path:
        lines = [
            f"{name}=={version} --hash=sha256:{_sha((out / f).read_bytes())}"
            for name, version, f in (
                ("alpha", "1.0", "alpha-1.0-py3-none-any.whl"),
                ("beta", "2.0", "beta-2.0-py3-none-any.whl"),
            )
        ]
        path = self.client / "locked.txt"
        path.write_text("\n".join(lines) + "\n")
        return path


@pytest.fixture
def env(tmp_path: Path, keyring: Keyring, monkeypatch: pytest.MonkeyPatch) -> Iterator[Env]:
    monkeypatch.setenv("GNUPGHOME", str(keyring.home))
    site = make_site(tmp_path, keyring, {"beta": ("2.0", ())})
    make_wheel(
        site.wheels,
        "alpha",
        "1.0",
        requires=["beta"],
        modules={
            "alpha/__init__.py": "VERSION = 1\n",
            "alpha/cli.py": "def main():\n    return 0\n",
            "alpha-1.0.dist-info/entry_points.txt": ENTRY_POINTS,
            "alpha-1.0.data/scripts/alpha-tool": "#!python\nprint('tool')\n",
            "alpha-1.0.data/headers/alpha.h": "int alpha(void);\n",
        },
    )
    with published_and_served(site, monkeypatch, "--serial", "1") as (server, client, venv):
        yield Env(server, client, venv)


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def _edit_with_record(site: Path, relative: str, data: bytes) -> None:
    """Change an installed file and its RECORD row to match: RECORD proves nothing then."""
    (site / relative).write_bytes(data)
    record = next(site.glob("alpha-1.0.dist-info/RECORD"))
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    rows = [
        f"{relative},sha256={digest},{len(data)}" if row.startswith(f"{relative},") else row
        for row in record.read_text().splitlines()
    ]
    record.write_text("\n".join(rows) + "\n")


def _add_to_record(site: Path, relative: str, data: bytes) -> None:
    (site / relative).write_bytes(data)
    record = next(site.glob("alpha-1.0.dist-info/RECORD"))
    record.write_text(record.read_text() + f"{relative},,\n")


@pytest.mark.e2e
def test_audit_then_install_restores_what_was_tampered_with(
    env: Env, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    lock = str(env.lock(tmp_path / "site"))
    code, out, err = run(capsys, "install", "--python", env.python, "-r", lock)
    assert code == 0, err
    assert (env.venv / "bin" / "alpha").is_file() and (env.venv / "bin" / "alpha-tool").is_file()
    assert list(env.venv.glob("include/site/python*/alpha/alpha.h")), "pip installed the header"
    assert list(env.site.glob("alpha/__pycache__/*.pyc")), "byte-compiled and recorded"

    code, out, err = run(capsys, "audit", "--python", env.python)
    assert code == 0, out + err
    assert "ok: 2 distribution(s)" in out

    # An unchanged rerun: nothing reinstalled, pip never started.
    code, out, err = run(capsys, "install", "--python", env.python, "-v", "-r", lock)
    assert code == 0, err
    assert "nothing to install: all 2 vetted package(s) are installed and byte-identical" in out
    assert "--no-index" not in err, "pip ran for an unchanged environment"

    _edit_with_record(env.site, "alpha/cli.py", b"import os\ndef main():\n    return 1\n")
    _add_to_record(env.site, "evil.pth", b"import os\n")
    (env.site / "alpha" / "__init__.py").unlink()
    code, out, err = run(capsys, "audit", "--python", env.python, "--format", "json")
    assert code == 1
    document = json.loads(out)
    site = str(env.site.resolve())
    assert [(f["code"], f["name"], f["path"]) for f in document["rejected"]] == [
        ("missing-file", "alpha", f"{site}/alpha/__init__.py"),
        ("modified", "alpha", f"{site}/alpha/cli.py"),
        ("unknown-file", "alpha", f"{site}/evil.pth"),
    ]
    assert document["exit_code"] == 1

    code, out, err = run(capsys, "install", "--python", env.python, "--format", "json", "-r", lock)
    assert code == 0, err
    document = json.loads(out)
    assert document["installed"] == ["alpha-1.0-py3-none-any.whl"]
    assert document["kept"] == ["beta-2.0-py3-none-any.whl"]
    assert [r["filename"] for r in document["reinstalled"]] == ["alpha-1.0-py3-none-any.whl"]
    assert (env.site / "alpha" / "cli.py").read_bytes() == b"def main():\n    return 0\n"
    assert not (env.site / "evil.pth").exists(), "pip's uninstall removed what RECORD named"
    code, out, err = run(capsys, "audit", "--python", env.python)
    assert code == 0, out + err


@pytest.mark.e2e
def test_a_tampered_launcher_is_modified(
    env: Env, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    lock = str(env.lock(tmp_path / "site"))
    assert run(capsys, "install", "--python", env.python, "-r", lock)[0] == 0
    launcher = env.venv / "bin" / "alpha"
    launcher.write_bytes(launcher.read_bytes() + b"import os\n")
    code, out, _ = run(capsys, "audit", "--python", env.python)
    assert code == 1
    assert f"alpha 1.0: modified: {launcher.resolve()} not pip's launcher" in out


@pytest.mark.e2e
def test_not_in_list_exclude_and_a_warm_audit_offline(
    env: Env, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    lock = str(env.lock(tmp_path / "site"))
    assert run(capsys, "install", "--python", env.python, "--no-cache-dir", "-r", lock)[0] == 0
    stray = env.site / "stray-0.1.dist-info"
    stray.mkdir()
    (stray / "METADATA").write_text("Metadata-Version: 2.1\nName: stray\nVersion: 0.1\n")
    (stray / "WHEEL").write_text("Wheel-Version: 1.0\nTag: py3-none-any\n")
    (stray / "RECORD").write_text("stray-0.1.dist-info/RECORD,,\n")
    (env.site / "legacy-2.0-py3.11.egg-info").mkdir()
    code, out, _ = run(capsys, "audit", "--python", env.python)
    assert code == 1
    assert "stray 0.1: not-in-list: no wheel of stray 0.1 is on the list" in out
    assert "legacy 2.0: not-in-list:" in out and "installed as .egg-info" in out
    assert run(capsys, "audit", "--python", env.python, "--exclude", "stray")[0] == 1
    (env.site / "legacy-2.0-py3.11.egg-info").rmdir()

    before = len(env.server.requests)
    code, out, err = run(capsys, "audit", "--python", env.python, "--exclude", "Stray")
    assert code == 0, out + err
    fetched = env.server.requests[before:]
    assert fetched == ["/sha256sums.txt", "/sha256sums.txt.asc"], "the wheels came from the cache"

    env.server.close()  # offline: the list from the last verified copy, the wheels from the cache
    code, out, err = run(capsys, "audit", "--python", env.python, "--exclude", "stray")
    assert code == 0, out + err
    assert "using the cached list" in err


@pytest.mark.e2e
def test_audit_of_a_folder(env: Env, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    target = tmp_path / "target"
    lock = str(env.lock(tmp_path / "site"))
    assert run(capsys, "install", "--target", str(target), "-r", lock)[0] == 0
    code, out, err = run(capsys, "audit", "--path", str(target))
    assert code == 0, out + err
    (target / "alpha" / "cli.py").write_text("evil\n")
    code, out, _ = run(capsys, "audit", "--path", str(target))
    assert code == 1 and "alpha 1.0: modified:" in out


def test_audit_usage_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "audit", "--path", str(tmp_path / "nope"), "--no-config")
    assert code == 2 and "not a folder" in err
    code, _, err = run(capsys, "audit", "--python", "x", "--path", str(tmp_path))
    assert code == 2 and "not allowed with argument" in err
    code, _, err = run(capsys, "audit", "--python", str(tmp_path / "python"), "--no-config")
    assert code == 2 and "cannot run it" in err


def test_reading_an_environment_runs_none_of_its_code(tmp_path: Path) -> None:
    from safepip import installed

    venv = tmp_path / "venv"
    subprocess.run(["python3", "-m", "venv", "--without-pip", str(venv)], check=True)
    site = next(venv.glob("lib/python*/site-packages"))
    marker = tmp_path / "ran"
    (site / "evil.pth").write_text(f"import pathlib; pathlib.Path({str(marker)!r}).touch()\n")
    found = installed.environment(str(venv / "bin" / "python"), environ={})
    assert str(site.resolve()) in found.sites
    assert found.folders.scripts == str((venv / "bin").resolve())
    assert not marker.exists(), "a .pth file of the audited environment ran"


def test_a_site_that_cannot_be_listed_fails_the_read_instead_of_passing(tmp_path: Path) -> None:
    """Skipping it would report its distributions as absent and the audit as clean."""
    from safepip import installed
    from safepip.errors import UsageError

    loop = tmp_path / "site-packages"
    loop.symlink_to(loop)  # listing it fails (ELOOP) whoever runs the test, root included
    with pytest.raises(UsageError, match="cannot list") as info:
        installed.distributions([str(loop)])
    assert str(loop) in str(info.value)
    assert info.value.exit_code == 2
    assert installed.distributions([str(tmp_path / "never-made")]) == []
