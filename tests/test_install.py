"""install, check and lock end to end: a signed index on 127.0.0.1, real pip, real venvs."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from safepip._cli import main
from tests.keys import Keyring
from tests.server import LoopbackServer
from tests.site import Site, make_site, published_and_served
from tests.wheels import make_wheel

pytestmark = pytest.mark.e2e

WHEELS = {
    "alpha": ("1.0", ("beta>=2",)),
    "beta": ("2.0", ()),
    "gamma": ("0.1", ()),
}
#: delta 1.0 needs gamma only through its extra "fast".
DELTA_EXTRAS = {"fast": ["gamma"]}


@dataclass
class Index:
    site: Site
    server: LoopbackServer
    client: Path
    venv: Path

    @property
    def python(self) -> str:
        return str(self.venv / "bin" / "python")

    def sha(self, filename: str) -> str:
        return hashlib.sha256((self.site.out / filename).read_bytes()).hexdigest()

    def locked(self, *names: str, name: str = "locked.txt") -> Path:
        lines = []
        for project in names:
            version = WHEELS[project][0]
            wheel = f"{project}-{version}-py3-none-any.whl"
            lines.append(f"{project}=={version} --hash=sha256:{self.sha(wheel)}")
        path = self.client / name
        path.write_text("\n".join(lines) + "\n")
        return path

    def installed(self) -> list[str]:
        probe = (
            "import importlib.metadata as m;"
            "print('\\n'.join(sorted(f\"{d.metadata['Name']}=={d.version}\" "
            "for d in m.distributions())))"
        )
        out = subprocess.run(
            [self.python, "-I", "-c", probe], capture_output=True, text=True, check=True
        )
        return [line for line in out.stdout.splitlines() if line]


@contextmanager
def served_index(
    tmp_path: Path,
    keyring: Keyring,
    monkeypatch: pytest.MonkeyPatch,
    more: Sequence[tuple[str, str]] = (),
) -> Iterator[Index]:
    """WHEELS, delta and ``more`` (name, version) published, served, and a fresh venv."""
    monkeypatch.setenv("GNUPGHOME", str(keyring.home))
    site = make_site(tmp_path, keyring, WHEELS)
    make_wheel(site.wheels, "delta", "1.0", extras=DELTA_EXTRAS)
    for name, version in more:
        make_wheel(site.wheels, name, version)
    with published_and_served(site, monkeypatch, "--serial", "1") as (server, client, venv):
        yield Index(site, server, client, venv)


@pytest.fixture
def index(tmp_path: Path, keyring: Keyring, monkeypatch: pytest.MonkeyPatch) -> Iterator[Index]:
    with served_index(tmp_path, keyring, monkeypatch) as served:
        yield served


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def install(index: Index, capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    return run(capsys, "install", "--python", index.python, "-v", *argv)


def staging_dirs() -> set[Path]:
    return set(Path(tempfile.gettempdir()).glob("safepip-*"))


def assert_refused_before_pip(err: str, index: Index, before: list[str]) -> None:
    assert "--no-index" not in err, "pip install was started"
    assert index.installed() == before


def test_locked_install_installs_exactly_the_vetted_set(
    index: Index, capsys: pytest.CaptureFixture[str], installer: str
) -> None:
    code, out, err = install(index, capsys, "-r", str(index.locked("alpha", "beta")))
    assert code == 0, err
    assert "installed 2 vetted package(s): alpha==1.0, beta==2.0" in out
    assert index.installed() == ["alpha==1.0", "beta==2.0"]
    assert "--dry-run" not in err, "a locked install needs no resolver pass"
    assert "--require-hashes" in err and "--no-index" in err
    assert f"{installer} installs them" in err
    if installer == "pip":
        assert "Successfully installed" in err, "-v shows pip's own output, not only its command"


def test_loose_install_resolves_in_process_over_vetted_wheels(
    index: Index, capsys: pytest.CaptureFixture[str], installer: str
) -> None:
    code, _out, err = install(index, capsys, "alpha")
    assert code == 0, err
    assert "--dry-run" not in err, "pip's resolver must never run: it reads unvetted bytes"
    assert "fetched and hash-checked beta-2.0-py3-none-any.whl" in err
    assert index.installed() == ["alpha==1.0", "beta==2.0"]


def test_extras_pull_their_dependencies(index: Index, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = install(index, capsys, "delta[fast]")
    assert code == 0, err
    assert index.installed() == ["delta==1.0", "gamma==0.1"]


def test_dry_run_installs_nothing(index: Index, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = install(index, capsys, "--dry-run", "-r", str(index.locked("alpha", "beta")))
    assert code == 0
    assert "would install alpha 1.0" in out
    assert index.installed() == []


def test_json_report(index: Index, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = install(
        index, capsys, "--format", "json", "-r", str(index.locked("alpha", "beta"))
    )
    document = json.loads(out)
    assert code == 0 and document["exit_code"] == 0
    assert [a["filename"] for a in document["artifacts"]] == [
        "alpha-1.0-py3-none-any.whl",
        "beta-2.0-py3-none-any.whl",
    ]
    assert document["list"]["serial"] == 1
    assert document["rejected"] == []


def test_target_folder(
    index: Index, capsys: pytest.CaptureFixture[str], tmp_path: Path, installer: str
) -> None:
    target = tmp_path / "target"
    code, _, err = run(capsys, "install", "--target", str(target), "-r", str(index.locked("gamma")))
    assert code == 0, err
    assert (target / "gamma" / "__init__.py").is_file()
    assert f"{installer} installs them" in err
    assert not (target / ".lock").exists(), "uv's lock file of the staging folder came along"


def test_installed_package_is_reinstalled_from_the_vetted_wheel(
    index: Index, capsys: pytest.CaptureFixture[str], installer: str
) -> None:
    locked = str(index.locked("gamma"))
    assert install(index, capsys, "-r", locked)[0] == 0
    (module,) = index.venv.glob("lib/python*/site-packages/gamma/__init__.py")
    module.write_text("raise SystemExit('tampered')\n")
    assert install(index, capsys, "-r", locked)[0] == 0
    assert "tampered" not in module.read_text()


def test_tampered_wheel_is_refused_and_deleted(
    index: Index, capsys: pytest.CaptureFixture[str]
) -> None:
    before, dirs = index.installed(), staging_dirs()
    index.server.serve_bytes("/alpha-1.0-py3-none-any.whl", b"PK\x03\x04 evil bytes")
    code, out, err = install(index, capsys, "-r", str(index.locked("alpha", "beta")))
    assert code == 1
    assert "alpha-1.0-py3-none-any.whl: hash-mismatch:" in out
    assert_refused_before_pip(err, index, before)
    assert staging_dirs() == dirs


def test_html_error_page_instead_of_wheel(index: Index, capsys: pytest.CaptureFixture[str]) -> None:
    index.server.html_error("/beta-2.0-py3-none-any.whl")
    code, out, err = install(index, capsys, "-r", str(index.locked("alpha", "beta")))
    assert code == 1
    assert "beta-2.0-py3-none-any.whl: hash-mismatch" in out
    assert_refused_before_pip(err, index, [])


def test_missing_download_is_exit_3_and_leaves_nothing(
    index: Index, capsys: pytest.CaptureFixture[str]
) -> None:
    dirs = staging_dirs()
    index.server.status("/beta-2.0-py3-none-any.whl", 404)
    code, _, err = install(index, capsys, "-r", str(index.locked("alpha", "beta")))
    assert code == 3
    assert "404" in err and "beta-2.0-py3-none-any.whl" in err
    assert_refused_before_pip(err, index, [])
    assert staging_dirs() == dirs


def test_trickling_server_hits_the_total_deadline(
    index: Index, capsys: pytest.CaptureFixture[str]
) -> None:
    index.server.trickle("/gamma-0.1-py3-none-any.whl", b"x" * 100, interval=0.5)
    code, _, err = install(index, capsys, "--timeout", "2", "-r", str(index.locked("gamma")))
    assert code == 3
    assert "gamma-0.1-py3-none-any.whl" in err
    assert_refused_before_pip(err, index, [])


def test_missing_dependency_is_refused(index: Index, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = install(index, capsys, "-r", str(index.locked("alpha")))
    assert code == 1
    assert "beta: dependency-missing: alpha 1.0 needs beta>=2" in out
    assert_refused_before_pip(err, index, [])


def test_a_refusal_comes_before_a_target_that_cannot_run(
    index: Index, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    # Where the target installs is asked for at the start, its answer taken only after
    # vetting: a refused request is reported as such, whatever the probe ran into.
    locked = index.client / "bad.txt"
    locked.write_text("zeta==1.0 --hash=sha256:" + "1" * 64 + "\n")
    missing = str(tmp_path / "no-python")
    code, out, err = run(capsys, "install", "--python", missing, "-r", str(locked))
    assert code == 1, err
    assert "bad.txt:1: not-in-list: zeta is not on the list" in out
    assert "cannot ask" not in out + err


def test_unlisted_project_and_hash(index: Index, capsys: pytest.CaptureFixture[str]) -> None:
    locked = index.client / "bad.txt"
    locked.write_text(
        f"gamma==0.1 --hash=sha256:{'0' * 64}\n"
        f"beta==2.0 --hash=sha256:{index.sha('gamma-0.1-py3-none-any.whl')}\n"
        "zeta==1.0 --hash=sha256:" + "1" * 64 + "\n"
    )
    code, out, err = install(index, capsys, "-r", str(locked))
    assert code == 1
    assert "bad.txt:1: hash-not-in-list:" in out
    assert "bad.txt:2: hash-binding: sha256:" in out and "gamma-0.1-py3-none-any.whl" in out
    assert "bad.txt:3: not-in-list: zeta is not on the list" in out
    assert_refused_before_pip(err, index, [])
    assert not any(r.startswith("/simple/") for r in index.server.requests)


def test_unsafe_option_in_requirements_file(
    index: Index, capsys: pytest.CaptureFixture[str]
) -> None:
    path = index.client / "req.txt"
    path.write_text("--extra-index-url http://127.0.0.1:1/simple/\nalpha\n")
    code, out, err = install(index, capsys, "-r", str(path))
    assert code == 1
    assert "req.txt:1: unsupported:" in out
    assert_refused_before_pip(err, index, [])
    assert not any(r.startswith("/simple/") for r in index.server.requests)


def test_metadata_that_disagrees_with_filename(
    index: Index, capsys: pytest.CaptureFixture[str]
) -> None:
    # The publisher would refuse this wheel, so the test signs the hostile list itself.
    make_wheel(index.site.out, "gamma", "0.1", metadata_name="evil")
    index.site.sign_raw(
        index.site.raw_list(
            serial=2,
            files={
                p.name: hashlib.sha256(p.read_bytes()).hexdigest()
                for p in index.site.out.glob("*.whl")
            },
        )
    )
    locked = index.locked("gamma")
    code, out, err = install(index, capsys, "-r", str(locked))
    assert code == 1
    assert "gamma-0.1-py3-none-any.whl: metadata-mismatch:" in out
    assert "METADATA says evil" in out
    assert_refused_before_pip(err, index, [])
    # Again, now from the wheel cache (the download had the list's hash, so it was kept):
    # the METADATA read while copying refuses it just the same.
    before = len(index.server.requests)
    code, again, err = install(index, capsys, "-r", str(locked))
    assert code == 1, err
    assert not [r for r in index.server.requests[before:] if r.endswith(".whl")]
    assert again == out
    assert_refused_before_pip(err, index, [])


def test_expired_list_installs_nothing(index: Index, capsys: pytest.CaptureFixture[str]) -> None:
    from datetime import datetime, timedelta, timezone

    issued = datetime.now(tz=timezone.utc).replace(microsecond=0) - timedelta(days=60)
    index.site.sign_raw(index.site.raw_list(serial=9, issued=issued))
    code, _, err = install(index, capsys, "-r", str(index.locked("gamma")))
    assert code == 3
    assert "expired" in err
    assert_refused_before_pip(err, index, [])


def test_pip_environment_and_config_have_no_effect(
    index: Index, capsys: pytest.CaptureFixture[str], tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch, installer: str,
) -> None:  # fmt: skip
    evil = tmp_path / "evil"
    make_wheel(evil, "gamma", "0.1", modules={"gamma/__init__.py": "EVIL = True\n"})
    make_wheel(evil, "gamma", "9.9")
    site_dir = tmp_path / "pythonpath"
    site_dir.mkdir()
    marker = tmp_path / "sitecustomize-ran"
    (site_dir / "sitecustomize.py").write_text(f"open({str(marker)!r}, 'w').close()\n")
    conf = tmp_path / "pip.conf"
    conf.write_text(f"[global]\nfind-links = {evil}\nno-index = true\n")
    constraints = tmp_path / "constraints.txt"
    constraints.write_text("gamma==9.9\n")
    with LoopbackServer(evil) as decoy:
        monkeypatch.setenv("PIP_INDEX_URL", decoy.url)
        monkeypatch.setenv("PIP_EXTRA_INDEX_URL", decoy.url)
        monkeypatch.setenv("PIP_FIND_LINKS", str(evil))
        monkeypatch.setenv("PIP_NO_REQUIRE_HASHES", "1")
        monkeypatch.setenv("PIP_CONSTRAINT", str(constraints))
        monkeypatch.setenv("PIP_CONFIG_FILE", str(conf))
        monkeypatch.setenv("PYTHONPATH", str(site_dir))
        # uv's own: an index, links, no hash checks, a cache it could read, a config file.
        uv_toml = tmp_path / "uv.toml"
        uv_toml.write_text(f'[pip]\nfind-links = ["{evil}"]\nno-verify-hashes = true\n')
        (tmp_path / "xdg" / "uv").mkdir(parents=True)
        (tmp_path / "xdg" / "uv" / "uv.toml").write_text(uv_toml.read_text())
        monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
        monkeypatch.setenv("UV_CONFIG_FILE", str(uv_toml))
        monkeypatch.setenv("UV_INDEX_URL", decoy.url)
        monkeypatch.setenv("UV_DEFAULT_INDEX", decoy.url)
        monkeypatch.setenv("UV_EXTRA_INDEX_URL", decoy.url)
        monkeypatch.setenv("UV_FIND_LINKS", str(evil))
        monkeypatch.setenv("UV_NO_VERIFY_HASHES", "1")
        monkeypatch.setenv("UV_CONSTRAINT", str(constraints))
        monkeypatch.setenv("UV_CACHE_DIR", str(tmp_path / "uv-cache"))
        monkeypatch.setenv("UV_PYTHON", sys.executable)
        monkeypatch.setenv("VIRTUAL_ENV", sys.prefix)
        code, _, err = install(index, capsys, "-r", str(index.locked("gamma")))
        code2, _, err2 = install(index, capsys, "alpha")
        assert decoy.requests == []
    assert code == 0, err
    assert code2 == 0, err2
    assert index.installed() == ["alpha==1.0", "beta==2.0", "gamma==0.1"]
    (module,) = index.venv.glob("lib/python*/site-packages/gamma/__init__.py")
    assert "EVIL" not in module.read_text()
    assert not marker.exists()
    assert not (tmp_path / "uv-cache").exists()


def test_check_reports_every_problem_with_file_and_line(
    index: Index, capsys: pytest.CaptureFixture[str]
) -> None:
    good = index.locked("alpha", "beta", name="good.txt")
    code, out, _ = run(capsys, "check", str(good))
    assert code == 0
    assert "ok: 2 requirement(s) in 1 file(s) vetted" in out
    bad = index.client / "requirements-bad.txt"
    beta_hash = index.sha("beta-2.0-py3-none-any.whl")
    bad.write_text(
        "alpha>=1.0\n"
        "beta==2.0\n"
        f"gamma==0.1 --hash=sha256:{beta_hash}\n"
        f"beta==2.0 --hash=sha256:{beta_hash} --hash=sha256:{'2' * 64}\n"
        f"beta==2.0 ; sys_platform == 'win32' --hash=sha256:{beta_hash}\n"
        f"beta==1.0 ; sys_platform == 'plan9' --hash=sha256:{beta_hash}\n"
        "-i https://evil.example/simple\n"
    )
    code, out, err = run(capsys, "check", bad.name)
    assert code == 1
    lines = out.splitlines()
    assert "requirements-bad.txt:1: not-pinned:" in lines[0]
    assert any(line.startswith("requirements-bad.txt:1: no-hash:") for line in lines)
    assert any(line.startswith("requirements-bad.txt:2: no-hash:") for line in lines)
    assert any(line.startswith("requirements-bad.txt:3: hash-binding:") for line in lines)
    assert any(line.startswith("requirements-bad.txt:4: hash-not-in-list:") for line in lines)
    assert not any(line.startswith("requirements-bad.txt:5:") for line in lines)
    assert any(line.startswith("requirements-bad.txt:6: hash-binding:") for line in lines)
    assert any(line.startswith("requirements-bad.txt:7: unsupported:") for line in lines)
    assert "hint:" in err


def test_check_works_offline_with_a_local_list(
    index: Index, capsys: pytest.CaptureFixture[str]
) -> None:
    index.site.write_config(index.client, str(index.site.list_path))
    good = index.locked("gamma")
    index.server.close()
    code, _out, err = run(capsys, "check", str(good))
    assert code == 0, err


def test_lock_writes_hashes_from_the_list(index: Index, capsys: pytest.CaptureFixture[str]) -> None:
    out_file = index.client / "requirements.lock"
    code, _out, err = run(capsys, "lock", "alpha", "-o", str(out_file))
    assert code == 0, err
    text = out_file.read_text()
    assert f"alpha==1.0 \\\n    --hash=sha256:{index.sha('alpha-1.0-py3-none-any.whl')}" in text
    assert f"beta==2.0 \\\n    --hash=sha256:{index.sha('beta-2.0-py3-none-any.whl')}" in text
    assert run(capsys, "check", str(out_file))[0] == 0
    code, _, err = install(index, capsys, "-r", str(out_file))
    assert code == 0, err
    assert index.installed() == ["alpha==1.0", "beta==2.0"]


def test_the_safepip_command_runs_as_a_subprocess(index: Index) -> None:
    """The console entry point, as a Dockerfile would run it."""
    env = {**os.environ}
    result = subprocess.run(
        [sys.executable, "-m", "safepip", "install", "--python", index.python, "-q",
         "-r", str(index.locked("gamma"))],
        capture_output=True, text=True, env=env, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert index.installed() == ["gamma==0.1"]


def test_unvetted_newer_file_on_the_index_is_never_chosen(
    index: Index, capsys: pytest.CaptureFixture[str]
) -> None:
    """A newer alpha sits on the index beside the vetted one: only the vetted one installs."""
    newer = make_wheel(index.site.out, "alpha", "1.1", requires=("beta>=2",))
    page = index.site.out / "simple" / "alpha" / "index.html"
    page.write_text(
        page.read_text().replace("</body>", f'<a href="../../{newer.name}">x</a></body>')
    )
    code, _, err = install(index, capsys, "alpha")
    assert code == 0, err
    assert index.installed() == ["alpha==1.0", "beta==2.0"]
    assert f"/{newer.name}" not in index.server.requests


def test_transitive_dependency_missing_from_the_list(
    index: Index, capsys: pytest.CaptureFixture[str]
) -> None:
    """epsilon is listed but needs zeta, which is only on the index, never on the list."""
    make_wheel(index.site.out, "zeta", "1.0")
    epsilon = make_wheel(index.site.wheels, "epsilon", "1.0", requires=("zeta",))
    assert main(["publish", str(index.site.wheels), "--out", str(index.site.out),
                 "--key", index.site.fingerprint(), *index.site.pins()]) == 0  # fmt: skip
    capsys.readouterr()
    assert epsilon.exists()
    code, out, err = install(index, capsys, "epsilon")
    assert code == 1
    assert "zeta: dependency-missing:" in out
    assert_refused_before_pip(err, index, [])


# -- typosquats (THREATS D: names) ---------------------------------------------------------------


def test_a_lookalike_request_is_refused_before_any_request_to_the_index(
    index: Index, capsys: pytest.CaptureFixture[str]
) -> None:
    path = index.client / "req.txt"
    path.write_text(f"alpha==1.0 --hash=sha256:{index.sha('alpha-1.0-py3-none-any.whl')}\n"
                    f"reqeusts==2.32.3 --hash=sha256:{'3' * 64}\n")  # fmt: skip
    for argv in (["-r", str(path)], ["reqeusts"]):
        code, out, err = install(index, capsys, *argv)
        assert code == 1, (argv, err)
        where = "req.txt:2: " if argv[0] == "-r" else "<command line>: "
        assert f"{where}typosquat: did you mean requests? `eu` for `ue`" in out, out
        assert "not-in-list: reqeusts" not in out  # one verdict a name, the most telling
        assert "hint: check the spelling" in err
        assert_refused_before_pip(err, index, [])
        assert "--dry-run" not in err, "pip resolved a lookalike"
    assert not any("reqeusts" in r for r in index.server.requests)


def test_check_and_lock_refuse_a_lookalike(
    index: Index, capsys: pytest.CaptureFixture[str]
) -> None:
    locked = index.client / "requirements.txt"
    locked.write_text(f"colourama==0.4.6 --hash=sha256:{'4' * 64}\n")
    code, out, err = run(capsys, "check", str(locked))
    assert code == 1
    assert "error: refused: 1 problem(s)\n" in err, "check installs nothing: it says nothing of it"
    assert "requirements.txt:1: typosquat: did you mean colorama?" in out
    assert "not-in-list" not in out and "hash-not-in-list" not in out  # one verdict a line
    out_file = index.client / "requirements.lock"
    code, out, err = run(capsys, "lock", "djang0", "-o", str(out_file))
    assert code == 1, err
    assert "typosquat: did you mean django? `0` for `o`" in out
    assert f"error: refused: 1 problem(s), {out_file} was not written" in err
    assert not out_file.exists()


def test_a_lookalike_dependency_is_named_as_such(
    index: Index, capsys: pytest.CaptureFixture[str]
) -> None:
    """epsilon is listed but depends on urlib3, a lookalike that is not on the list."""
    make_wheel(index.site.wheels, "epsilon", "1.0", requires=("urlib3",))
    assert main(["publish", str(index.site.wheels), "--out", str(index.site.out),
                 "--key", index.site.fingerprint(), *index.site.pins()]) == 0  # fmt: skip
    capsys.readouterr()
    locked = index.client / "locked.txt"
    locked.write_text(f"epsilon==1.0 --hash=sha256:{index.sha('epsilon-1.0-py3-none-any.whl')}\n")
    # Resolved by pip (loose), and checked from the wheel's METADATA (locked): both name it.
    for argv in (["epsilon"], ["-r", str(locked)]):
        code, out, err = install(index, capsys, *argv)
        assert code == 1, err
        assert "urlib3: typosquat: did you mean urllib3?" in out, out
        assert "dependency-missing" not in out.split("(")[0]
        assert_refused_before_pip(err, index, [])


def test_allow_names_and_warn_let_the_list_decide(
    index: Index, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Exempting a name from the lookalike check never lets it past the list."""
    for variable, value in (("SAFEPIP_ALLOW_NAMES", "reqeusts"), ("SAFEPIP_TYPOSQUAT", "warn")):
        with monkeypatch.context() as patch:
            patch.setenv(variable, value)
            code, out, err = install(index, capsys, "reqeusts")
        assert code == 1, err
        assert "typosquat:" not in out
        assert "not-in-list: reqeusts" in out
        assert ("warning:" in err and "did you mean requests?" in err) == (value == "warn")
        assert_refused_before_pip(err, index, [])


def test_the_installer_flag_beats_the_environment(
    index: Index, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SAFEPIP_INSTALLER", "pip")
    code, _, err = install(index, capsys, "--installer", "uv", "-r", str(index.locked("gamma")))
    assert code == 0, err
    assert "uv installs them" in err
    assert " pip install --no-config --offline --no-index" in err  # uv's own command line
    assert index.installed() == ["gamma==0.1"]


def test_installer_uv_without_uv_is_a_usage_error_before_any_fetch(
    index: Index, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "uv", None)  # as if the extra were not installed
    dirs = staging_dirs()
    code, _, err = install(index, capsys, "--installer", "uv", "-r", str(index.locked("gamma")))
    assert code == 2
    assert "error: installer is uv, but uv is not installed in safepip's environment" in err
    assert "hint: install the optional extra: `pip install 'safepip[uv]'`" in err
    assert index.installed() == []
    assert index.server.requests == []
    assert staging_dirs() == dirs


def test_an_unknown_installer_is_a_usage_error(
    index: Index, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SAFEPIP_INSTALLER", "poetry")
    code, _, err = install(index, capsys, "-r", str(index.locked("gamma")))
    assert code == 2
    assert "installer must be pip or uv, not 'poetry'" in err
    assert index.installed() == []
