from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from safepip import __version__
from safepip._cli import main
from tests.keys import Keyring
from tests.site import Site


def test_version_flag_prints_version() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "safepip", "-V"], capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == f"safepip {__version__}"


def test_common_flags_work_before_and_after_the_command() -> None:
    for argv in (["-q", "--format", "json", "names", "reqeusts"],
                 ["names", "reqeusts", "-q", "--format", "json"]):  # fmt: skip
        out = subprocess.run(
            [sys.executable, "-m", "safepip", *argv], capture_output=True, text=True, check=False
        )
        assert out.returncode == 1, out.stderr
        assert '"similar_to": "requests"' in out.stdout


def test_usage_error_is_one_line_with_hint() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "safepip", "install", "--no-such-flag"],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert out.returncode == 2
    assert out.stderr.splitlines()[0].startswith("error: unrecognized arguments: --no-such-flag")
    assert out.stderr.splitlines()[1].startswith("hint: ")


#: What `safepip check` of listed names against a local list must not import: each is imported
#: where it is used, so that `safepip check` starts fast in a pre-commit hook.
CHECK_NEVER_IMPORTS = (
    "http.client", "ssl", "urllib.request",  # fetch: only for http(s):// and file:// sources
    "concurrent.futures", "html.parser", "zipfile",  # vet: downloads, index pages, wheels
    "safepip.index", "safepip.pip", "safepip.wheel",
    "safepip.resolve", "safepip.wheelstore", "resolvelib",  # only to resolve loose requests
    "safepip.typosquat",  # only for names that are not on the list
    "rich",  # only for a progress bar on a terminal
)  # fmt: skip


def test_check_of_a_local_list_imports_only_what_it_needs(tmp_path: Path, keyring: Keyring) -> None:
    site = Site(tmp_path / "wheels", tmp_path / "site", keyring)
    hashes = {"alpha-1.0-py3-none-any.whl": "a" * 64, "beta-2.0-py3-none-any.whl": "b" * 64}
    site.sign_raw(site.raw_list(serial=1, files=hashes))
    lock = tmp_path / "requirements.txt"
    lock.write_text(f"alpha==1.0 --hash=sha256:{'a' * 64}\nbeta==2.0 --hash=sha256:{'b' * 64}\n")
    probe = (
        "import sys\n"
        "from safepip._cli import main\n"
        "code = main(sys.argv[1:])\n"
        f"print(code, sorted(set(sys.modules) & set({CHECK_NEVER_IMPORTS!r})))\n"
    )
    argv = ["check", "--list", str(site.list_path), *site.pins(), str(lock)]
    out = subprocess.run(
        [sys.executable, "-c", probe, *argv], capture_output=True, text=True, check=False
    )
    assert out.stdout.splitlines() == ["ok: 2 requirement(s) in 1 file(s) vetted", "0 []"], (
        out.stdout + out.stderr
    )


def safepip(*argv: str, cwd: Path | None = None, env: dict[str, str] | None = None) -> Any:
    return subprocess.run(
        [sys.executable, "-m", "safepip", *argv],
        capture_output=True, text=True, check=False, cwd=cwd, env=env, timeout=60,
    )  # fmt: skip


def test_config_planted_in_a_shared_parent_is_refused(tmp_path: Path) -> None:
    """Review finding (config discovery): a file another user can write in a parent such as
    /tmp must not set the policy of the runs below it."""
    shared = tmp_path / "shared"
    shared.mkdir(mode=0o1777)
    planted = shared / "safepip.toml"
    planted.write_text('typosquat = "off"\n')
    planted.chmod(0o666)
    if os.geteuid() == 0:
        os.chown(planted, 65534, 65534)
    project = shared / "project"
    project.mkdir()
    out = safepip("names", "reqeusts", cwd=project)
    assert out.returncode == 2, out.stderr
    first, hint = out.stderr.splitlines()[:2]
    assert first.startswith(f"error: config file {planted} ") and "refusing to trust it" in first
    assert hint.startswith("hint: ") and "--no-config" in hint
    assert out.stdout == ""
    # The way out the hint gives: the typosquat check is on again.
    out = safepip("names", "reqeusts", "--no-config", cwd=project)
    assert out.returncode == 1
    assert "reqeusts: typosquat of requests" in out.stdout


@pytest.mark.timeout(20)  # a regression blocks in open(): fail, do not hang
def test_popular_names_fifo_is_refused_without_blocking(tmp_path: Path) -> None:
    fifo = tmp_path / "names.fifo"
    os.mkfifo(fifo)
    env = {**os.environ, "SAFEPIP_POPULAR_NAMES": str(fifo)}
    out = safepip("names", "reqeusts", "--no-config", env=env)  # timeout=60 fails a hang
    assert out.returncode == 2
    assert out.stderr.splitlines()[0] == f"error: popular-names file {fifo}: not a regular file"


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.mark.parametrize("seconds", ["inf", "1e300", "nan", "-1", "0", "604801", "soon"])
def test_timeout_out_of_range_is_a_usage_error(
    capsys: pytest.CaptureFixture[str], seconds: str
) -> None:
    """`--timeout inf` or `1e300` overflowed the download clock deep in a run (exit 101)."""
    code, out, err = run(capsys, "install", "--no-config", "--timeout", seconds, "x==1")
    assert code == 2
    first, hint = err.splitlines()
    assert first.startswith(f"error: argument --timeout: '{seconds}'")
    assert hint.startswith("hint: ")
    assert out == ""


def test_timeout_within_range_is_accepted(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "install", "--no-config", "--timeout", "604800", "x==1")
    assert (code, err.splitlines()[0]) == (2, "error: no list configured")


@pytest.mark.parametrize(
    ("output", "message"),
    [
        ("folder", "{out} is a folder: name the file to write"),
        ("missing/lock.txt", "{out}: the folder {parent} does not exist"),
    ],
)
def test_lock_output_that_cannot_be_written_is_a_usage_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], output: str, message: str
) -> None:
    """`lock -o DIR` and `lock -o missing/x.txt` failed after all the work (exit 101)."""
    (tmp_path / "folder").mkdir()
    out_path = tmp_path / output
    code, out, err = run(capsys, "lock", "--no-config", "x", "-o", str(out_path))
    assert code == 2
    expected = message.format(out=out_path, parent=out_path.parent)
    assert err.splitlines()[0] == f"error: argument -o/--output: {expected}"
    assert out == ""
    assert not (tmp_path / "missing").exists()
    assert list((tmp_path / "folder").iterdir()) == []


def test_publish_out_that_is_a_file_is_a_usage_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "wheels").mkdir()
    target = tmp_path / "out.txt"
    target.write_text("mine\n")
    code, _, err = run(capsys, "publish", str(tmp_path / "wheels"), "--out", str(target),
                       "--key", "0" * 40, "--no-config")  # fmt: skip
    assert code == 2
    assert err.splitlines()[0] == f"error: argument --out: {target} is not a folder"
    assert target.read_text() == "mine\n"


UNKNOWN = "unrecognized arguments: --no-such-flag"


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--format", "json", "install", "--no-such-flag"], UNKNOWN),
        (["install", "--no-such-flag", "--format=json"], UNKNOWN),
        (["lock", "--form", "json", "idna"], "the following arguments are required: -o/--output"),
        (["--format", "json", "names"], "the following arguments are required: NAME"),
        (["--format", "json"], "no command given"),
    ],
)
def test_json_run_that_fails_on_usage_prints_a_json_error(argv: list[str], message: str) -> None:
    """Usage errors happen before argparse knows --format: the document must still come."""
    out = safepip(*argv)
    assert out.returncode == 2
    document = json.loads(out.stdout)
    assert document["version"] == 1
    assert document["exit_code"] == 2
    assert document["error"]["message"] == message
    assert document["error"]["kind"] == "UsageError"
    assert document["error"]["hint"].startswith("see `safepip")
    assert f"error: {message}" in out.stderr


def test_text_run_that_fails_on_usage_prints_nothing_on_stdout() -> None:
    for argv in (["install", "--no-such-flag"], ["--format", "json", "--format", "text", "names"]):
        out = safepip(*argv)
        assert (out.returncode, out.stdout) == (2, "")
        assert "error: " in out.stderr


# -- what a newcomer tripped over (issue #13, item 7) ---------------------------------------------


def test_help_says_where_install_installs_and_what_check_and_publish_take(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("COLUMNS", "200")
    texts = {}
    for command in ("install", "check", "publish"):
        with pytest.raises(SystemExit):
            main([command, "--help"])
        texts[command] = " ".join(capsys.readouterr().out.split())
    assert "VIRTUAL_ENV" in texts["install"] and ".venv" in texts["install"]
    assert "safepip.toml" in texts["install"] and "--system" in texts["install"]
    assert "--no-cache-dir" in texts["install"], "pip's flags are listed"
    assert "FILE requirements files (pip-compile, uv) or pylock.toml" in texts["check"]
    assert "--out DIR where the list, its signature" in texts["publish"]


def test_an_unknown_install_flag_points_at_install_help(capsys: pytest.CaptureFixture[str]) -> None:
    code, _out, err = run(capsys, "install", "--frobnicate", "x")
    assert code == 2
    assert err.splitlines() == [
        "error: unrecognized arguments: --frobnicate",
        "hint: see `safepip install --help`",
    ]


def test_check_refusal_names_no_install_and_gives_a_hint_per_kind_of_problem(
    tmp_path: Path, keyring: Keyring, capsys: pytest.CaptureFixture[str]
) -> None:
    site = Site(tmp_path / "wheels", tmp_path / "site", keyring)
    site.sign_raw(site.raw_list(serial=1, files={"alpha-1.0-py3-none-any.whl": "a" * 64}))
    lock = tmp_path / "requirements.txt"
    lock.write_text("reqeusts==2.0 --hash=sha256:" + "b" * 64 + "\nalpha>=1.0\n")
    code, out, err = run(capsys, "check", "--list", str(site.list_path), *site.pins(), str(lock))
    assert code == 1
    assert [line.split(": ")[1] for line in out.splitlines()] == [
        "typosquat",
        "not-pinned",
        "no-hash",
    ]
    signer = site.fingerprint()
    assert f"signed by {signer}," in err, "the list: line shows the full fingerprint"
    assert err.splitlines()[1:] == [
        "error: refused: 3 problem(s)",
        "hint: check the spelling; if the name is genuinely meant, add it to allow-names",
        "hint: pin every line with == and its hashes: `safepip lock` writes such a file",
    ]


def test_publish_with_an_unpinned_key_is_a_usage_error(
    tmp_path: Path, keyring: Keyring, capsys: pytest.CaptureFixture[str]
) -> None:
    site = Site(tmp_path / "wheels", tmp_path / "site", keyring)
    site.wheels.mkdir()
    code, _out, err = run(capsys, "publish", str(site.wheels), "--out", str(site.out),
                          "--no-config", "--key", site.fingerprint())  # fmt: skip
    assert code == 2
    assert "is not pinned in trusted-keys" in err and "--trusted-key" in err
    assert not site.out.exists()
