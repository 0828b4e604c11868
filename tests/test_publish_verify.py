"""publish and verify end to end: real keys, real wheels, a real server on 127.0.0.1."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from safepip import publish as publish_module
from safepip._cli import main
from tests.keys import Keyring
from tests.server import LoopbackServer
from tests.site import Site, make_site
from tests.wheels import make_wheel


@pytest.fixture
def site(tmp_path: Path, keyring: Keyring, monkeypatch: pytest.MonkeyPatch) -> Site:
    monkeypatch.setenv("GNUPGHOME", str(keyring.home))
    monkeypatch.chdir(tmp_path)
    return make_site(tmp_path, keyring)


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def publish(site: Site, capsys: pytest.CaptureFixture[str], *extra: str) -> tuple[int, str, str]:
    return run(
        capsys,
        "publish",
        str(site.wheels),
        "--out",
        str(site.out),
        "--key",
        site.fingerprint(),
        *site.pins(),
        *extra,
    )


def verify(site: Site, capsys: pytest.CaptureFixture[str], *extra: str) -> tuple[int, str, str]:
    return run(capsys, "verify", "--list", str(site.list_path), *site.pins(), *extra)


def state_files(tmp_path: Path) -> dict[str, bytes]:
    root = tmp_path / "state"
    return {str(p): p.read_bytes() for p in root.rglob("*") if p.is_file()} if root.exists() else {}


def test_publish_writes_list_signature_and_index(
    site: Site, capsys: pytest.CaptureFixture[str]
) -> None:
    before = publish_module.clock_serial(datetime.now(tz=timezone.utc))
    code, out, err = publish(site, capsys)
    assert code == 0, err
    # No served list to continue from: the serial is the UTC time, never a restart at 1.
    assert "the serial is the UTC time" in err
    match = re.search(r"published 3 wheels of 3 projects, serial (\d+),", out)
    assert match is not None, out
    serial = int(match[1])
    assert before <= serial <= publish_module.clock_serial(datetime.now(tz=timezone.utc))
    text = site.list_path.read_text()
    assert text.startswith(f"# safepip-list: 1\n# serial: {serial}\n")
    assert "alpha-1.0-py3-none-any.whl" in text
    page = (site.out / "simple" / "alpha" / "index.html").read_text()
    assert 'href="../../alpha-1.0-py3-none-any.whl#sha256=' in page
    assert (site.out / "alpha-1.0-py3-none-any.whl").is_file()
    assert "alpha/" in (site.out / "simple" / "index.html").read_text()


def test_plain_pip_uses_the_published_index(
    site: Site, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    assert publish(site, capsys)[0] == 0
    env = {k: v for k, v in os.environ.items() if not k.startswith("PIP_")}
    env["PIP_CONFIG_FILE"] = os.devnull
    with LoopbackServer(site.out) as server:
        for index in ((site.out / "simple").as_uri() + "/", server.url + "simple/"):
            dest = tmp_path / f"dl-{len(index)}"
            subprocess.run(
                [sys.executable, "-m", "pip", "download", "--isolated", "--no-cache-dir", "-q",
                 "--index-url", index, "-d", str(dest), "alpha==1.0"],
                env=env, check=True, capture_output=True,
            )  # fmt: skip
            assert sorted(p.name for p in dest.iterdir()) == [
                "alpha-1.0-py3-none-any.whl",
                "beta-2.0-py3-none-any.whl",
            ]


def test_verify_over_http_prints_signers_serial_expiry_and_count(
    site: Site, capsys: pytest.CaptureFixture[str]
) -> None:
    assert publish(site, capsys, "--serial", "1")[0] == 0
    with LoopbackServer(site.out) as server:
        code, out, err = run(
            capsys, "verify", "--list", server.url + "sha256sums.txt", *site.pins()
        )
        assert code == 0, err
        assert "serial:   1" in out
        assert site.fingerprint() in out
        assert "entries:  3 (3 wheels, 0 sdists)" in out
        code, out, _ = run(
            capsys, "verify", "--list", server.url + "sha256sums.txt", *site.pins(),
            "--format", "json",
        )  # fmt: skip
    document = json.loads(out)
    assert code == 0
    assert document["version"] == 1
    assert document["list"]["serial"] == 1
    assert document["list"]["signers"] == [site.fingerprint()]
    assert document["entries"] == 3
    assert document["exit_code"] == 0


def test_flipped_character_refuses_with_exit_3(
    site: Site, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    assert publish(site, capsys)[0] == 0
    data = site.list_path.read_bytes()
    position = data.index(b"alpha") - 10
    flipped = data[:position] + (b"0" if data[position : position + 1] != b"0" else b"1")
    site.list_path.write_bytes(flipped + data[position + 1 :])
    code, out, err = verify(site, capsys)
    assert code == 3
    assert out == ""
    assert "error: sha256sums.txt.asc" in err or "sha256sums.txt.asc:" in err
    assert "does not match" in err
    assert "hint:" in err
    assert "Traceback" not in err
    assert state_files(tmp_path) == {}


def test_json_error_document(site: Site, capsys: pytest.CaptureFixture[str]) -> None:
    assert publish(site, capsys)[0] == 0
    site.list_path.write_bytes(site.list_path.read_bytes() + b"# appended\n")
    code, out, _ = verify(site, capsys, "--format", "json")
    assert code == 3
    assert json.loads(out)["exit_code"] == 3


def test_serial_must_rise_and_rollback_is_refused(
    site: Site, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    assert publish(site, capsys, "--serial", "1")[0] == 0
    old_list, old_sig = site.list_path.read_bytes(), site.signature_path.read_bytes()
    code, _, err = publish(site, capsys, "--serial", "1")
    assert code == 1
    assert "serial 1 is not above the last published serial 1" in err
    assert publish(site, capsys, "--serial", "2")[0] == 0
    assert verify(site, capsys)[0] == 0
    before = state_files(tmp_path)
    site.list_path.write_bytes(old_list)
    site.signature_path.write_bytes(old_sig)
    code, _, err = verify(site, capsys)
    assert code == 3
    assert "rollback" in err and "1" in err and "2" in err
    assert state_files(tmp_path) == before


def test_equivocation_same_serial_other_bytes(
    site: Site, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    site.sign_raw(site.raw_list(serial=5))
    assert verify(site, capsys)[0] == 0
    before = state_files(tmp_path)
    make_wheel(site.wheels, "delta", "1.0")
    site.sign_raw(site.raw_list(serial=5))
    code, _, err = verify(site, capsys)
    assert code == 3
    assert "equivocation" in err
    assert state_files(tmp_path) == before


@pytest.mark.parametrize(
    ("issued_ago", "lifetime", "reason"),
    [
        (timedelta(days=40), timedelta(days=30), "expired"),
        (timedelta(days=-1), timedelta(days=30), "issued in the future"),
        (timedelta(0), timedelta(days=400), "above max-validity-days (365)"),
    ],
)
def test_stale_future_and_overlong_lists_are_refused(
    site: Site,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    issued_ago: timedelta,
    lifetime: timedelta,
    reason: str,
) -> None:
    issued = datetime.now(tz=timezone.utc).replace(microsecond=0) - issued_ago
    site.sign_raw(site.raw_list(serial=1, issued=issued, lifetime=lifetime))
    code, _, err = verify(site, capsys)
    assert code == 3
    assert reason in err
    assert state_files(tmp_path) == {}


def test_min_serial_on_a_fresh_machine(
    site: Site, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    site.sign_raw(site.raw_list(serial=3))
    config = site.write_config(tmp_path / "client", str(site.list_path), min_serial=4)
    code, _, err = run(capsys, "verify", "--config", str(config))
    assert code == 3
    assert "min-serial" in err


def test_legacy_list_only_without_freshness(
    site: Site, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    legacy = b"".join(
        line + b"\n" for line in site.raw_list(serial=1).splitlines() if not line.startswith(b"#")
    )
    site.sign_raw(legacy)
    config = site.write_config(tmp_path / "client", str(site.list_path))
    code, _, err = run(capsys, "verify", "--config", str(config))
    assert code == 3
    assert "line 1" in err and "legacy" in err
    config = site.write_config(tmp_path / "client", str(site.list_path), require_freshness=False)
    code, out, err = run(capsys, "verify", "--config", str(config))
    assert code == 0, err
    assert "warning: legacy list" in err
    assert "(legacy list)" in out


def test_unpinned_signer_is_named(site: Site, capsys: pytest.CaptureFixture[str]) -> None:
    site.sign_raw(site.raw_list(serial=1), signer="stranger")
    code, _, err = run(
        capsys, "verify", "--list", str(site.list_path),
        "--trusted-key", site.fingerprint(),
        "--key-file", str(site.keyring.keys["alice"].public_file),
        "--key-file", str(site.keyring.keys["stranger"].public_file), "--no-config",
    )  # fmt: skip
    assert code == 3
    assert site.fingerprint("stranger") in err


def test_missing_signature_is_exit_3_without_traceback(
    site: Site, capsys: pytest.CaptureFixture[str]
) -> None:
    assert publish(site, capsys)[0] == 0
    with LoopbackServer(site.out) as server:
        server.status("/sha256sums.txt.asc", 404)
        code, _, err = run(capsys, "verify", "--list", server.url + "sha256sums.txt", *site.pins())
    assert code == 3
    assert "404" in err and "sha256sums.txt.asc" in err
    assert "Traceback" not in err


def test_http_list_on_another_host_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    started = time.monotonic()
    code, _, err = run(
        capsys, "verify", "--list", "http://192.0.2.1/sha256sums.txt", "--no-config",
        "--trusted-key", "0" * 40, "--key-file", "k.asc",
    )  # fmt: skip
    assert code == 3
    assert "192.0.2.1" in err
    assert time.monotonic() - started < 5


def test_key_id_pin_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "verify", "--list", "x", "--trusted-key", "ABCD1234ABCD1234")
    assert code == 2
    assert "key ID" in err


@pytest.mark.parametrize("signer", ["expired", "stranger"])
def test_publish_refuses_expired_or_unpinned_key(
    site: Site, capsys: pytest.CaptureFixture[str], signer: str
) -> None:
    pins = site.pins("expired") if signer == "expired" else site.pins()
    code, _, err = run(
        capsys, "publish", str(site.wheels), "--out", str(site.out),
        "--key", site.fingerprint(signer), *pins,
    )  # fmt: skip
    # An expired key is a policy refusal; a key not pinned is a command line that lacks a pin.
    assert code == (1 if signer == "expired" else 2)
    assert site.fingerprint(signer) in err
    assert not site.out.exists()


def test_publish_refuses_name_collisions_and_foreign_files(
    site: Site, capsys: pytest.CaptureFixture[str]
) -> None:
    twin = make_wheel(site.wheels, "beta", "2.0.0")
    code, _, err = publish(site, capsys)
    assert code == 1
    assert "same project, version and tags" in err
    twin.unlink()
    (site.wheels / "notes.txt").write_text("hi")
    code, _, err = publish(site, capsys)
    assert code == 1
    assert "notes.txt: not a wheel" in err
    assert not site.out.exists()


def test_publish_refuses_wheel_whose_metadata_disagrees(
    site: Site, capsys: pytest.CaptureFixture[str]
) -> None:
    make_wheel(site.wheels, "delta", "1.0", metadata_name="evil")
    code, _, err = publish(site, capsys)
    assert code == 1
    assert "delta-1.0-py3-none-any.whl: METADATA says evil" in err


def test_publish_refuses_expiry_beyond_maximum(
    site: Site, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = publish(site, capsys, "--expires", "400d")
    assert code == 1
    assert "max-validity-days" in err


@pytest.mark.parametrize(
    ("expires", "message"),
    [
        ("1000000000d", "'1000000000d' is longer than 36500 days"),  # was an OverflowError
        ("876001h", "'876001h' is longer than 36500 days"),
        ("9" * 5000 + "d", "is longer than 36500 days"),  # more digits than int() takes
        ("30x", "'30x' is not a duration like 30d or 12h"),
    ],
)
def test_publish_refuses_an_impossible_expiry_as_usage(
    site: Site, capsys: pytest.CaptureFixture[str], expires: str, message: str
) -> None:
    code, out, err = publish(site, capsys, "--expires", expires)
    assert code == 2
    assert err.splitlines()[0].startswith("error: argument --expires: '")
    assert message in err.splitlines()[0]
    assert err.splitlines()[1].startswith("hint: ")
    assert out == ""
    assert not site.out.exists()


def test_verify_refuses_an_impossible_max_validity_days(
    site: Site, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "huge.toml"
    config.write_text("max-validity-days = 1000000000\n")  # was an OverflowError in verify
    code, _, err = run(capsys, "verify", "--config", str(config), "--list", str(site.list_path))
    assert code == 2
    assert err.splitlines()[0] == (
        f"error: {config}: max-validity-days must be at most 36500, not 1000000000"
    )
    assert state_files(tmp_path) == {}


def test_index_escapes_names() -> None:
    from safepip.publish import render_index

    pages = render_index({"a-1.0-py3-none-any.whl": ("f" * 64, '>=3.8"<script>')})
    page = pages["a/index.html"]
    assert "<script>" not in page
    assert 'data-requires-python="&gt;=3.8&quot;&lt;script&gt;"' in page


def test_newcomer_flow_with_python_http_server(
    site: Site, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """The README's walk-through: publish, serve with http.server, verify, flip, refuse."""
    assert publish(site, capsys)[0] == 0
    server = subprocess.Popen(
        [sys.executable, "-m", "http.server", "0", "--bind", "127.0.0.1", "-d", str(site.out)],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )  # fmt: skip
    try:
        assert server.stdout is not None
        port = server.stdout.readline().split("port ")[1].split(" ")[0]
        url = f"http://127.0.0.1:{port}/sha256sums.txt"
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        cmd = [sys.executable, "-m", "safepip", "verify", "--list", url, *site.pins()]
        ok = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False)
        assert ok.returncode == 0, ok.stderr
        assert re.search(r"serial:   \d{14}\n", ok.stdout), ok.stdout
        data = site.list_path.read_text()
        site.list_path.write_text(data.replace("alpha", "alphb", 1))
        bad = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False)
        assert bad.returncode == 3
        assert bad.stderr.startswith("error: ")
        assert "\nhint: " in bad.stderr
    finally:
        server.terminate()
        server.wait(timeout=10)


def test_publish_refuses_a_lookalike_name_unless_allowed(
    site: Site, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A publisher about to sign a typosquat into the list is stopped before anything is written."""
    make_wheel(site.wheels, "reqeusts", "1.0")
    code, _, err = publish(site, capsys)
    assert code == 1
    assert "reqeusts: did you mean requests? `eu` for `ue` (letters swapped)" in err
    assert "hint: add the name to allow-names" in err
    assert not site.out.exists()

    monkeypatch.setenv("SAFEPIP_TYPOSQUAT", "warn")
    code, _, err = publish(site, capsys)
    assert code == 0, err
    assert "warning: reqeusts: typosquat: did you mean requests?" in err
    assert site.list_path.exists()

    # Names already on the published list are not judged again; a new lookalike is.
    monkeypatch.setenv("SAFEPIP_TYPOSQUAT", "block")
    make_wheel(site.wheels, "colourama", "1.0")
    code, _, err = publish(site, capsys)
    assert code == 1
    assert "colourama: did you mean colorama?" in err
    assert "reqeusts" not in err
    monkeypatch.setenv("SAFEPIP_ALLOW_NAMES", "colourama")
    code, _, err = publish(site, capsys)
    assert code == 0, err


def test_verbose_shows_the_gpg_command_lines(
    site: Site, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = publish(site, capsys, "-v")
    assert code == 0, err
    assert any(" --detach-sign " in line or " -sb " in line for line in err.splitlines()), err
    code, _, err = verify(site, capsys, "-v")
    assert code == 0, err
    commands = [line for line in err.splitlines() if " --status-fd " in line]
    assert any("--import" in c for c in commands), err
    assert any("--verify" in c for c in commands), err
    assert all("--homedir" in c and "--no-autostart" in c for c in commands), commands
    code, _, err = verify(site, capsys)
    assert "--status-fd" not in err


# -- the rollback ratchet keeps one history per list location (review f_state_keyset_reset) ----


def test_adding_a_key_to_the_pins_keeps_the_ratchet(
    site: Site, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    assert publish(site, capsys, "--serial", "3")[0] == 0
    old_list, old_sig = site.list_path.read_bytes(), site.signature_path.read_bytes()
    assert publish(site, capsys, "--serial", "5")[0] == 0
    assert verify(site, capsys)[0] == 0
    before = state_files(tmp_path)
    site.list_path.write_bytes(old_list)
    site.signature_path.write_bytes(old_sig)
    code, _, err = run(capsys, "verify", "--list", str(site.list_path), *site.pins("alice", "bob"))
    assert code == 3
    assert "serial 3 is lower than serial 5" in err
    assert state_files(tmp_path) == before


def test_respelling_a_local_list_keeps_the_ratchet(
    site: Site, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    assert publish(site, capsys, "--serial", "3")[0] == 0
    old_list, old_sig = site.list_path.read_bytes(), site.signature_path.read_bytes()
    assert publish(site, capsys, "--serial", "5")[0] == 0
    assert verify(site, capsys)[0] == 0
    before = state_files(tmp_path)
    site.list_path.write_bytes(old_list)
    site.signature_path.write_bytes(old_sig)
    relative = os.path.relpath(site.list_path, tmp_path)
    for spelling in (site.list_path.as_uri(), f"./{relative}", f"site/../{relative}"):
        code, _, err = run(capsys, "verify", "--list", spelling, *site.pins())
        assert code == 3, spelling
        assert "serial 3 is lower than serial 5" in err
    assert state_files(tmp_path) == before


def test_respelling_a_served_list_keeps_the_ratchet(
    site: Site, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    assert publish(site, capsys, "--serial", "3")[0] == 0
    old_list, old_sig = site.list_path.read_bytes(), site.signature_path.read_bytes()
    assert publish(site, capsys, "--serial", "5")[0] == 0
    with LoopbackServer(site.out) as server:
        url = server.url + "sha256sums.txt"
        assert run(capsys, "verify", "--list", url, *site.pins())[0] == 0
        before = state_files(tmp_path)
        site.list_path.write_bytes(old_list)
        site.signature_path.write_bytes(old_sig)
        signature = ["--signature", url + ".asc"]
        for spelling in (
            url.replace("http://", "HTTP://"),
            url + "?",
            url + "#latest",
            server.url + "./sha256sums.txt",
        ):
            code, _, err = run(capsys, "verify", "--list", spelling, *signature, *site.pins())
            assert code == 3, spelling
            assert "serial 3 is lower than serial 5" in err
    assert state_files(tmp_path) == before


# -- a refused run changes no trust state (review f_state_on_refusal) -------------------------


def test_a_refused_install_leaves_no_trust_state(
    site: Site, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    assert publish(site, capsys, "--serial", "7")[0] == 0
    lst = ["--list", str(site.list_path), *site.pins()]
    code, out, _ = run(capsys, "install", *lst, "--dry-run", "reqeusts", "not-on-the-list-pkg")
    assert code == 1
    assert "typosquat" in out and "not-in-list" in out
    assert state_files(tmp_path) == {}
    assert not (tmp_path / "state").exists()
    requirements = tmp_path / "requirements.txt"
    requirements.write_text("gamma==0.1\n")  # no hash: refused by check
    code, _, _ = run(capsys, "check", *lst, str(requirements))
    assert code == 1
    assert state_files(tmp_path) == {}
    # The same list, in a run that succeeds, is recorded.
    assert verify(site, capsys)[0] == 0
    assert [json.loads(v)["serial"] for v in state_files(tmp_path).values() if v] == [7]


def test_a_refused_run_does_not_record_a_newer_serial(
    site: Site, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    assert publish(site, capsys, "--serial", "1")[0] == 0
    assert verify(site, capsys)[0] == 0
    before = state_files(tmp_path)
    assert publish(site, capsys, "--serial", "2")[0] == 0
    code, _, _ = run(capsys, "install", "--list", str(site.list_path), *site.pins(),
                     "--dry-run", "not-on-the-list-pkg")  # fmt: skip
    assert code == 1
    assert state_files(tmp_path) == before


# -- freshness in operation: warn-expiry-days, verify --min-remaining -------------------------


def test_a_list_about_to_expire_is_warned_about(
    site: Site, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    issued = datetime.now(tz=timezone.utc).replace(microsecond=0) - timedelta(days=27)
    site.sign_raw(site.raw_list(serial=1, issued=issued, lifetime=timedelta(days=30)))
    code, _, err = verify(site, capsys)
    assert code == 0, err
    assert "warning:" in err and "expires in 2 day(s)" in err and "warn-expiry-days is 7" in err
    config = site.write_config(tmp_path / "client", str(site.list_path), warn_expiry_days=0)
    code, _, err = run(capsys, "verify", "--config", str(config))
    assert code == 0
    assert "expires in" not in err
    config = site.write_config(tmp_path / "client", str(site.list_path), warn_expiry_days=2)
    assert "expires in" not in run(capsys, "verify", "--config", str(config))[2]


def test_a_fresh_list_is_not_warned_about(site: Site, capsys: pytest.CaptureFixture[str]) -> None:
    assert publish(site, capsys)[0] == 0
    code, _, err = verify(site, capsys)
    assert code == 0
    assert "expires in" not in err


def test_verify_min_remaining_for_monitoring(
    site: Site, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    issued = datetime.now(tz=timezone.utc).replace(microsecond=0) - timedelta(days=27)
    site.sign_raw(site.raw_list(serial=1, issued=issued, lifetime=timedelta(days=30)))
    code, _, err = verify(site, capsys, "--min-remaining", "5")
    assert code == 3
    assert "expires in 3.0 day(s)" in err and "less than --min-remaining 5" in err
    assert state_files(tmp_path) == {}
    code, out, err = verify(site, capsys, "--min-remaining", "1.5")
    assert code == 0, err
    assert "serial:   1" in out
    code, _, err = verify(site, capsys, "--min-remaining", "-1")
    assert code == 2
    assert "--min-remaining" in err


def test_a_huge_warn_expiry_days_warns_without_an_internal_error(
    site: Site, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    assert publish(site, capsys)[0] == 0
    config = site.write_config(tmp_path / "client", str(site.list_path), warn_expiry_days=10**12)
    code, _, err = run(capsys, "verify", "--config", str(config))
    assert code == 0, err
    assert "expires in" in err


def test_publish_refuses_a_wheel_with_a_direct_reference_dependency(
    site: Site, capsys: pytest.CaptureFixture[str]
) -> None:
    """A signed `Requires-Dist: x @ URL` makes resolvers fetch and build what that URL serves."""
    make_wheel(site.wheels, "omega", "1.0", requires=("evil @ https://example.org/evil-1.0.tgz",))
    code, out, err = publish(site, capsys)
    assert code == 1
    assert out == ""
    assert "error: omega-1.0-py3-none-any.whl: Requires-Dist" in err
    assert "evil@ https://example.org/evil-1.0.tgz" in err or "evil @ https://" in err
    assert "direct reference" in err and "hint:" in err
    assert not site.out.exists()


def test_an_interrupt_between_the_signature_and_the_list_waits_for_both(
    site: Site, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    assert publish(site, capsys, "--serial", "1")[0] == 0
    make_wheel(site.wheels, "delta", "1.0")
    real = os.replace

    def interrupt_after_the_first(source: object, destination: object) -> None:
        real(source, destination)  # type: ignore[arg-type]
        if Path(str(destination)) in (site.signature_path, site.list_path):
            monkeypatch.setattr(os, "replace", real)
            signal.raise_signal(signal.SIGINT)  # Ctrl-C right after one of the pair is in place

    monkeypatch.setattr(os, "replace", interrupt_after_the_first)
    code, _, err = publish(site, capsys, "--serial", "2")
    assert code == 130, err
    assert "interrupted" in err
    # The interrupt took effect once both were in place: clients see a matching pair.
    code, out, err = verify(site, capsys)
    assert code == 0, err
    assert "serial:   2" in out and "entries:  4" in out
    assert not (site.out / publish_module.PENDING_NAME).exists()


def test_a_publish_killed_between_the_renames_is_completed_by_the_next(
    site: Site, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    assert publish(site, capsys, "--serial", "1")[0] == 0
    make_wheel(site.wheels, "delta", "1.0")
    argv = ["publish", str(site.wheels), "--out", str(site.out), "--key", site.fingerprint(),
            *site.pins(), "--serial", "2"]  # fmt: skip
    crash = (
        "import os, sys\n"
        "from safepip._cli import main\n"
        "real = os.replace\n"
        "def replace(source, destination):\n"
        "    real(source, destination)\n"
        f"    if str(destination) == {str(site.signature_path)!r}:\n"
        "        os._exit(9)  # power lost: nothing runs after the first rename\n"
        "os.replace = replace\n"
        f"sys.exit(main({argv!r}))\n"
    )
    killed = subprocess.run(
        [sys.executable, "-c", crash], capture_output=True, text=True, check=False, timeout=120
    )
    assert killed.returncode == 9, killed.stderr
    assert verify(site, capsys)[0] == 3  # the one window no static site can close
    assert (site.out / publish_module.PENDING_NAME / "sha256sums.txt").is_file()
    # The next publish completes the pair first, then continues from it (serial 2, served here).
    code, out, err = publish(site, capsys, "--from", str(site.list_path))
    assert code == 0, err
    assert "completed the list and signature an interrupted publish left" in err
    assert "served now: " in err and "(serial 2)" in err
    assert "serial 3," in out
    code, out, err = verify(site, capsys)
    assert code == 0, err
    assert "serial:   3" in out
    assert not (site.out / publish_module.PENDING_NAME).exists()


def test_a_ci_publish_from_an_empty_folder_continues_the_served_serial(
    site: Site, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    assert publish(site, capsys, "--serial", "41")[0] == 0
    make_wheel(site.wheels, "delta", "1.0")
    with LoopbackServer(site.out) as server:
        url = server.url + "sha256sums.txt"
        client = ["--list", url, *site.pins()]
        assert run(capsys, "verify", *client)[0] == 0  # this client has seen serial 41
        argv = ["publish", str(site.wheels), "--key", site.fingerprint(), *site.pins()]
        for number, flags in enumerate((["--from", url], ["--list", url])):
            workspace = tmp_path / f"ci-{number}"  # a clean checkout: no earlier list in --out
            code, out, err = run(capsys, *argv, "--out", str(workspace), *flags)
            assert code == 0, err
            assert f"served now: {url} (serial {41 + number})" in err
            assert f"serial {42 + number}," in out
            shutil.copytree(workspace, site.out, dirs_exist_ok=True)  # deploy
            code, out, err = run(capsys, "verify", *client)
            assert code == 0, err
            assert f"serial:   {42 + number}" in out


def test_an_explicit_serial_must_be_above_the_served_one(
    site: Site, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    assert publish(site, capsys, "--serial", "41")[0] == 0
    workspace = tmp_path / "ci"
    argv = ["publish", str(site.wheels), "--key", site.fingerprint(), *site.pins()]
    served = ["--out", str(workspace), "--from", str(site.list_path)]
    code, _, err = run(capsys, *argv, *served, "--serial", "41")
    assert code == 1
    assert f"serial 41 is not above the serial 41 served at {site.list_path}" in err
    assert not workspace.exists()
    code, out, err = run(capsys, *argv, *served, "--serial", "50")
    assert code == 0, err
    assert "serial 50," in out


def test_a_served_list_that_does_not_verify_refuses_and_nothing_served_uses_the_clock(
    site: Site, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    argv = ["publish", str(site.wheels), "--key", site.fingerprint(), *site.pins()]
    with LoopbackServer(tmp_path / "empty-site") as server:
        (tmp_path / "empty-site").mkdir()
        code, out, err = run(
            capsys, *argv, "--out", str(tmp_path / "first"), "--from", server.url + "x.txt"
        )
    assert code == 0, err
    assert "nothing is served at" in err and "the serial is the UTC time" in err
    assert re.search(r"serial \d{14},", out), out
    assert publish(site, capsys, "--serial", "41")[0] == 0
    site.list_path.write_bytes(site.list_path.read_bytes().replace(b"serial: 41", b"serial: 99"))
    code, out, err = run(
        capsys, *argv, "--out", str(tmp_path / "ci"), "--from", str(site.list_path)
    )
    assert code == 3
    assert "does not match" in err
    assert not (tmp_path / "ci").exists()
