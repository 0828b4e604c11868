from __future__ import annotations

import os
import stat
import time
from pathlib import Path

import pytest

from safepip import config
from safepip.errors import ConfigError

FPR = "0123456789ABCDEF0123456789ABCDEF01234567"
FPR2 = "89ABCDEF0123456789ABCDEF0123456789ABCDEF"


def load(cwd: Path, environ: dict[str, str] | None = None, **flags: object) -> config.Config:
    return config.load(cwd=cwd, environ=environ or {}, flags=flags)


def test_file_found_upward_with_relative_paths(tmp_path: Path) -> None:
    (tmp_path / "safepip.toml").write_text(
        f'list = "pub/sha256sums.txt"\ntrusted-keys = ["{FPR.lower()}"]\n'
        'key-files = ["keys/a.asc"]\nthreshold = 1\nallow-names = ["reqeusts"]\n'
    )
    sub = tmp_path / "a" / "b"
    sub.mkdir(parents=True)
    cfg = load(sub)
    assert cfg.source == str(tmp_path / "safepip.toml")
    assert cfg.trusted_keys == (FPR,)
    assert cfg.key_files == (tmp_path / "keys" / "a.asc",)
    assert cfg.allow_names == ("reqeusts",)
    assert cfg.signature_source() == "pub/sha256sums.txt.asc"
    assert cfg.index() == (tmp_path / "pub" / "simple").as_uri() + "/"


def test_pyproject_table_is_used_when_no_safepip_toml(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text(
        '[project]\nname = "x"\n[tool.safepip]\nlist = "https://example.test/l/sha256sums.txt"\n'
    )
    cfg = load(tmp_path)
    assert cfg.index() == "https://example.test/l/simple/"
    assert cfg.source.endswith("pyproject.toml")


def test_flags_beat_environment_beat_file(tmp_path: Path) -> None:
    (tmp_path / "safepip.toml").write_text('threshold = 1\ntyposquat = "warn"\nmin-serial = 3\n')
    env = {
        "SAFEPIP_THRESHOLD": "2",
        "SAFEPIP_TYPOSQUAT": "off",
        "SAFEPIP_TRUSTED_KEYS": f"{FPR},{FPR2}",
    }
    cfg = load(tmp_path, env, threshold=3)
    assert (cfg.threshold, cfg.typosquat, cfg.min_serial) == (3, "off", 3)
    assert cfg.trusted_keys == (FPR, FPR2)


def test_empty_environment_variable_counts_as_unset(tmp_path: Path) -> None:
    """``SAFEPIP_LIST=`` (set but empty) leaves the file's value alone, as pip does with PIP_*."""
    (tmp_path / "safepip.toml").write_text(
        f'list = "l.txt"\ntrusted-keys = ["{FPR}"]\nmin-serial = 3\ntyposquat = "warn"\n'
    )
    assert load(tmp_path, {"SAFEPIP_LIST": ""}).list == "l.txt"
    empty = {f"SAFEPIP_{name}": "" for name in ("LIST", "TRUSTED_KEYS", "MIN_SERIAL", "TYPOSQUAT")}
    cfg = load(tmp_path, empty)
    assert (cfg.list, cfg.trusted_keys, cfg.min_serial) == ("l.txt", (FPR,), 3)
    assert cfg.typosquat == "warn"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("treshold = 2\n", "unknown key(s) treshold"),
        ("threshold = 0\n", "threshold must be at least 1"),
        ('threshold = "two"\n', "threshold must be an integer"),
        ("threshold = true\n", "threshold must be an integer"),
        ('typosquat = "maybe"\n', "typosquat must be block, warn or off"),
        ('require-freshness = "sometimes"\n', "require-freshness must be true or false"),
        ('trusted-keys = ["ABCD1234"]\n', "is a key ID, not a fingerprint"),
        ('trusted-keys = ["0123456789ABCDEF"]\n', "is a key ID, not a fingerprint"),
        ("key-files = [1]\n", "key-files must be a list of strings"),
        ("list = [\n", "is not valid TOML"),
        # timedelta(days=1e9) overflowed when a list was judged (exit 101)
        ("max-validity-days = 1000000000\n", "max-validity-days must be at most 36500"),
        ("max-validity-days = 1e400\n", "max-validity-days must be an integer"),
    ],
)
def test_bad_files_are_usage_errors(tmp_path: Path, text: str, message: str) -> None:
    (tmp_path / "safepip.toml").write_text(text)
    with pytest.raises(ConfigError) as info:
        load(tmp_path)
    assert message in str(info.value)
    assert info.value.exit_code == 2


def test_require_trust_names_what_is_missing(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no list configured"):
        load(tmp_path).require_trust()
    with pytest.raises(ConfigError, match="no trusted-keys"):
        load(tmp_path, list="l.txt").require_trust()
    with pytest.raises(ConfigError, match="no key-files"):
        load(tmp_path, list="l.txt", **{"trusted-keys": [FPR]}).require_trust()
    with pytest.raises(ConfigError, match="threshold 2 is above the 1 pinned"):
        load(
            tmp_path, list="l.txt", threshold=2, **{"trusted-keys": [FPR], "key-files": ["k.asc"]}
        ).require_trust()


def test_cert_falls_back_to_ssl_cert_file_then_pip_cert(tmp_path: Path) -> None:
    assert load(tmp_path, {"REQUESTS_CA_BUNDLE": "/r.pem"}).cert == "/r.pem"
    assert load(tmp_path, {"PIP_CERT": "/p.pem", "REQUESTS_CA_BUNDLE": "/r.pem"}).cert == "/p.pem"
    assert load(tmp_path, {"PIP_CERT": "/p.pem", "SSL_CERT_FILE": "/s.pem"}).cert == "/s.pem"
    assert load(tmp_path, {"SSL_CERT_FILE": "/s.pem"}, cert="/c.pem").cert == str(
        tmp_path / "/c.pem"
    )


def test_no_config_ignores_files(tmp_path: Path) -> None:
    (tmp_path / "safepip.toml").write_text("treshold = 2\n")
    cfg = config.load(cwd=tmp_path, environ={}, flags={}, use_files=False)
    assert cfg.source == "defaults"


# -- which config file is trusted (DESIGN.md §3) ------------------------------------------------

ME = config.Owner(os.geteuid(), os.getegid())
STRANGER = 65534  # nobody


@pytest.mark.parametrize(
    ("uid", "gid", "mode", "reason"),
    [
        (ME.uid, ME.gid, 0o644, None),
        (0, 0, 0o644, None),  # root's file: root can do anything anyway
        (ME.uid, ME.gid, 0o664, None),  # writable by the user's own group
        (ME.uid, ME.gid, 0o600, None),
        (STRANGER, ME.gid, 0o644, "is owned by uid 65534, neither you"),
        (ME.uid, ME.gid, 0o646, "is writable by others (mode 0646)"),
        (0, 0, 0o666, "is writable by others"),
        (ME.uid, STRANGER, 0o664, "is writable by group 65534, not your own"),
    ],
)
def test_distrust_rule(uid: int, gid: int, mode: int, reason: str | None) -> None:
    user = config.Owner(1000, 1000) if ME.uid == 0 else ME  # so that "root" differs from "me"
    uid = user.uid if uid == ME.uid else uid
    gid = user.gid if gid == ME.gid else gid
    got = config.distrust(uid=uid, gid=gid, mode=stat.S_IFREG | mode, user=user)
    assert got == reason if reason is None else reason in (got or "")


def planted(folder: Path, name: str, text: str) -> Path:
    """A file another local user could have written: writable by others (any test user can
    make one), and owned by nobody as well when the tests run as root."""
    path = folder / name
    path.write_text(text)
    path.chmod(0o666)
    if os.geteuid() == 0:
        os.chown(path, STRANGER, STRANGER)
    return path


def test_planted_safepip_toml_in_a_parent_is_refused(tmp_path: Path) -> None:
    """A world-writable parent (like /tmp): a planted file must not turn freshness off."""
    path = planted(tmp_path, "safepip.toml", "require-freshness = false\n")
    project = tmp_path / "project"
    project.mkdir()
    with pytest.raises(ConfigError, match="refusing to trust it") as info:
        load(project)
    assert str(path) in str(info.value)
    assert info.value.exit_code == 2
    assert "--config FILE" in (info.value.hint or "")
    assert "--no-config" in (info.value.hint or "")
    # --no-config and --config FILE are the way out; --config is used whoever owns the file.
    assert config.load(cwd=project, environ={}, flags={}, use_files=False).require_freshness
    named = config.load(cwd=project, environ={}, flags={}, config_file=path)
    assert named.require_freshness is False
    assert named.source == str(path)


def test_file_writable_by_others_is_refused_with_a_chmod_hint(tmp_path: Path) -> None:
    (tmp_path / "safepip.toml").write_text("threshold = 1\n")
    (tmp_path / "safepip.toml").chmod(0o646)
    with pytest.raises(ConfigError, match=r"is writable by others \(mode 0646\)") as info:
        load(tmp_path)
    assert f"chmod go-w {tmp_path / 'safepip.toml'}" in (info.value.hint or "")


def test_file_of_another_user_is_refused_with_a_chown_hint(tmp_path: Path) -> None:
    path = tmp_path / "safepip.toml"
    path.write_text("threshold = 1\n")
    path.chmod(0o644)
    if os.geteuid() == 0:
        os.chown(path, STRANGER, STRANGER)
        user, owner = None, STRANGER
    else:  # without root, the file stays ours and the run is told it is someone else's
        user, owner = config.Owner(ME.uid + 1, ME.gid), ME.uid
    with pytest.raises(ConfigError, match=f"is owned by uid {owner}, neither you") as info:
        config.load(cwd=tmp_path, environ={}, flags={}, user=user)
    assert str(path) in str(info.value)
    assert f"chown $(id -u) {path}" in (info.value.hint or "")


@pytest.mark.skipif(os.geteuid() != 0, reason="giving a file to another user needs root")
def test_file_group_writable_by_another_group_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "safepip.toml"
    path.write_text("threshold = 1\n")
    path.chmod(0o664)
    assert load(tmp_path).source == str(path)  # the user's own group may write
    os.chown(path, -1, STRANGER)
    with pytest.raises(ConfigError, match="is writable by group 65534, not your own"):
        load(tmp_path)


@pytest.mark.skipif(os.geteuid() != 0, reason="giving a symlink to another user needs root")
def test_symlink_of_another_user_is_refused_even_to_the_users_own_file(tmp_path: Path) -> None:
    """Whoever owns the link chose which of the user's files configures the run."""
    mine = tmp_path / "elsewhere" / "safepip.toml"
    mine.parent.mkdir()
    mine.write_text('typosquat = "off"\n')
    shared = tmp_path / "shared"
    shared.mkdir()
    (shared / "safepip.toml").symlink_to(mine)
    os.lchown(shared / "safepip.toml", STRANGER, STRANGER)
    with pytest.raises(ConfigError, match="owned by uid 65534"):
        load(shared)


def test_invalid_pyproject_of_another_user_is_passed_over(tmp_path: Path) -> None:
    """Case C of the review: a broken /tmp/pyproject.toml someone left must not break every
    run below /tmp. It would not be trusted anyway, so it is judged on ownership first; as it
    declares no [tool.safepip] that can be read, it is no safepip config file: the search goes
    on upward."""
    (tmp_path / "safepip.toml").write_text('typosquat = "warn"\n')
    shared = tmp_path / "shared"
    shared.mkdir()
    planted(shared, "pyproject.toml", "this is [not toml\n")
    project = shared / "project"
    project.mkdir()
    cfg = load(project)
    assert (cfg.source, cfg.typosquat) == (str(tmp_path / "safepip.toml"), "warn")


@pytest.mark.parametrize(
    "text",
    ['[project]\nname = "x"\n', "tool = 1\n", "a = " + "[" * 10_000 + "\n", "a = 0x\n"],
)
def test_pyproject_of_another_user_without_safepip_table_is_passed_over(
    tmp_path: Path, text: str
) -> None:
    planted(tmp_path, "pyproject.toml", text)
    assert load(tmp_path).source == "defaults"


def test_pyproject_of_another_user_with_safepip_table_is_refused(tmp_path: Path) -> None:
    path = planted(tmp_path, "pyproject.toml", "[tool.safepip]\nrequire-freshness = false\n")
    with pytest.raises(ConfigError, match="refusing to trust it") as info:
        load(tmp_path)
    assert str(path) in str(info.value)


def test_users_own_invalid_pyproject_is_still_an_error(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text("this is [not toml\n")
    with pytest.raises(ConfigError, match="is not valid TOML"):
        load(tmp_path)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("a = " + "[" * 10_000 + "\n", "is not valid TOML"),
        ("threshold = " + "1" * 5000 + "\n", "is not valid TOML"),
        (b"threshold = '\xff'\n", "is not UTF-8"),
    ],
)
def test_pathological_toml_is_a_usage_error(
    tmp_path: Path, text: str | bytes, message: str
) -> None:
    path = tmp_path / "safepip.toml"
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text)
    with pytest.raises(ConfigError, match=message):
        load(tmp_path)


@pytest.mark.timeout(20)  # a regression blocks in open(): fail, do not hang
def test_fifo_named_safepip_toml_is_not_a_config_file(tmp_path: Path) -> None:
    """The search never opens a FIFO (it would block); --config FILE naming one is refused."""
    fifo = tmp_path / "safepip.toml"
    os.mkfifo(fifo)
    start = time.monotonic()
    assert load(tmp_path).source == "defaults"
    with pytest.raises(ConfigError, match="not a regular file") as info:
        config.load(cwd=tmp_path, environ={}, flags={}, config_file=fifo)
    assert str(fifo) in str(info.value)
    assert time.monotonic() - start < 10


def test_config_flag_naming_a_device_is_refused() -> None:
    with pytest.raises(ConfigError, match="/dev/zero: not a regular file"):
        config.load(cwd=Path.cwd(), environ={}, flags={}, config_file=Path("/dev/zero"))
