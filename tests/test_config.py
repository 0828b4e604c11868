from __future__ import annotations

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
