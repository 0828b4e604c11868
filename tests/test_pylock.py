"""Lock files users already have: PEP 751 pylock.toml, pip-compile, uv pip compile, uv export.

The samples in ``tests/data/lockfiles/`` were written once by the tools themselves (pip 26.3
``pip lock``, pip-tools 7.6.2 ``pip-compile --generate-hashes``, uv 0.13.9 ``uv pip compile
--generate-hashes``, ``uv export`` and ``uv export --format pylock.toml``) for
``requirements.in`` (the requests closure); the ``*.local.txt`` ones against a folder holding the
five pure-Python wheels of ``.wheelhouse/examples`` (byte-identical to PyPI's), so that they can
be installed offline. ``pypi-files.json`` is every file of those five versions on PyPI with its
sha256 (PyPI's JSON simple API): the list a publisher of those versions would sign.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from safepip import pylock, requirements
from safepip.errors import RequirementsError
from tests.keys import Keyring
from tests.site import Site, make_site, published_and_served
from tests.test_install import Index, install, run, served_index

SAMPLES = Path(__file__).parent / "data" / "lockfiles"
PYPI = json.loads((SAMPLES / "pypi-files.json").read_text())
WHEELHOUSE = Path(__file__).parent.parent / ".wheelhouse" / "examples"
FORMATS = [
    "pylock.toml",
    "pylock.uv.toml",
    "pip-compile.txt",
    "uv-pip-compile.txt",
    "uv-export.txt",
]
CLOSURE = ["certifi", "charset-normalizer", "idna", "requests", "urllib3"]


@pytest.fixture
def listed(tmp_path: Path, keyring: Keyring) -> Site:
    """A signed list of every PyPI file of the samples' versions (offline: a local path)."""
    site = make_site(tmp_path, keyring, {})
    site.sign_raw(site.raw_list(serial=1, files=PYPI))
    return site


def check(site: Site, capsys: pytest.CaptureFixture[str], *files: Path) -> tuple[int, str, str]:
    return run(capsys, "check", "--list", str(site.list_path), *site.pins(), *map(str, files))


@pytest.mark.parametrize("sample", FORMATS)
def test_each_tools_lock_file_passes_check_as_written(
    listed: Site, capsys: pytest.CaptureFixture[str], sample: str
) -> None:
    code, out, err = check(listed, capsys, SAMPLES / sample)
    assert code == 0, out + err
    assert out.startswith("ok: 5 requirement(s) in 1 file(s) vetted")


#: Where each sample names requests: its `[[packages]]` header, or its requirement line.
WHERE_REQUESTS = {"pylock.toml": 37, "pylock.uv.toml": 184, "pip-compile.txt": 195,
                  "uv-pip-compile.txt": 191, "uv-export.txt": 175}  # fmt: skip


@pytest.mark.parametrize(("sample", "line"), sorted(WHERE_REQUESTS.items()))
def test_an_unlisted_file_is_named_at_its_file_and_line(
    tmp_path: Path, keyring: Keyring, capsys: pytest.CaptureFixture[str], sample: str, line: int
) -> None:
    site = make_site(tmp_path, keyring, {})
    site.sign_raw(site.raw_list(serial=1, files={
        k: v for k, v in PYPI.items() if not k.startswith("requests-")}))  # fmt: skip
    code, out, _err = check(site, capsys, SAMPLES / sample)
    assert code == 1
    assert out.splitlines() == [
        f"{SAMPLES / sample}:{line}: not-in-list: requests is not on the list"
    ]


def test_a_pylock_package_from_vcs_or_a_folder_is_refused_with_its_line(tmp_path: Path) -> None:
    lock = tmp_path / "pylock.toml"
    lock.write_text(
        'lock-version = "1.0"\ncreated-by = "x"\n\n'
        '[[packages]]\nname = "app"\ndirectory = { path = "." }\n\n'
        '[[packages]]\nname = "lib"\nversion = "1.0"\n'
        'vcs = { type = "git", url = "https://example.org/lib.git", commit-id = "abc" }\n\n'
        '[[packages]]\nname = "nover"\n'
        'wheels = [{ url = "https://x/nover-1-py3-none-any.whl", hashes = { sha256 = "'
        + "a" * 64
        + '" } }]\n'
    )
    found, rejections = pylock.parse(lock.read_text(), "pylock.toml")
    assert found == []
    assert [(r.code, r.subject, r.location) for r in rejections] == [
        ("unsupported", "app", "pylock.toml:4"),
        ("unsupported", "lib", "pylock.toml:8"),
        ("not-pinned", "nover", "pylock.toml:13"),
    ]


@pytest.mark.parametrize(
    ("text", "message"),
    [('lock-version = "2.0"\n', "lock-version '2.0' is not 1.x"),
     ("lock-version = \n", "not a TOML file"),
     ('lock-version = "1.0"\n[[packages]]\nversion = "1"\n', "a package without a name")],
)  # fmt: skip
def test_a_broken_pylock_is_a_usage_error(
    tmp_path: Path, listed: Site, capsys: pytest.CaptureFixture[str], text: str, message: str
) -> None:
    lock = tmp_path / "pylock.dev.toml"
    lock.write_text(text)
    with pytest.raises(RequirementsError, match=message):
        pylock.parse(text, "pylock.dev.toml")
    code, _out, err = check(listed, capsys, lock)
    assert code == 2 and message in err


def test_pylock_non_ascii_is_refused_before_it_is_read(
    tmp_path: Path, listed: Site, capsys: pytest.CaptureFixture[str]
) -> None:
    lock = tmp_path / "pylock.toml"
    lock.write_text('lock-version = "1.0"\n[[packages]]\nname = "r\u0435quests"\nversion = "1"\n')
    code, out, _err = check(listed, capsys, lock)
    assert code == 1 and f"{lock}:3: unsupported: non-ASCII character" in out


# -- lock -o pylock.toml, then install -r it -------------------------------------------------------


@pytest.fixture
def index(tmp_path: Path, keyring: Keyring, monkeypatch: pytest.MonkeyPatch) -> Iterator[Index]:
    with served_index(tmp_path, keyring, monkeypatch) as served:
        yield served


@pytest.mark.e2e
def test_lock_writes_a_pylock_that_check_and_install_take(
    index: Index, capsys: pytest.CaptureFixture[str]
) -> None:
    out_file = index.client / "pylock.toml"
    code, _out, err = run(capsys, "lock", "alpha", "-o", str(out_file))
    assert code == 0, err
    found, rejections = pylock.parse(out_file.read_text(), "pylock.toml")
    assert rejections == []
    assert [(p.name, str(p.requirement.specifier)) for p in found] == [
        ("alpha", "==1.0"), ("beta", "==2.0")]  # fmt: skip
    text = out_file.read_text()
    assert 'created-by = "safepip"' in text and index.server.url in text
    assert run(capsys, "check", str(out_file))[0] == 0
    code, _out, err = install(index, capsys, "-r", str(out_file))
    assert code == 0, err
    assert index.installed() == ["alpha==1.0", "beta==2.0"]


@pytest.mark.e2e
@pytest.mark.parametrize("sample", ["pip-compile.local.txt", "uv-pip-compile.local.txt"])
def test_install_takes_pip_compile_and_uv_output_as_written(
    tmp_path: Path,
    keyring: Keyring,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    sample: str,
) -> None:
    wheels = sorted(WHEELHOUSE.glob("*.whl"))
    wheels = [w for w in wheels if w.name.split("-")[0].replace("_", "-") in CLOSURE]
    if len(wheels) != 5:
        pytest.skip(f"the requests closure's wheels are not in {WHEELHOUSE} (scripts/test)")
    monkeypatch.setenv("GNUPGHOME", str(keyring.home))
    site = make_site(tmp_path, keyring, {})
    site.wheels.mkdir(parents=True)
    for wheel in wheels:
        shutil.copy2(wheel, site.wheels)
    with published_and_served(site, monkeypatch, "--serial", "1") as (_server, _client, venv):
        python = str(venv / "bin" / "python")
        code, out, err = run(capsys, "install", "--python", python, "-r", str(SAMPLES / sample))
        assert code == 0, err
        assert "installed 5 vetted package(s)" in out
        listed = subprocess.run(
            [python, "-I", "-c", "import requests, idna, certifi, urllib3, charset_normalizer"],
            check=False,
        )
        assert listed.returncode == 0


def test_the_listed_sdist_may_stand_beside_a_listed_wheel_but_not_alone(
    tmp_path: Path, listed: Site, capsys: pytest.CaptureFixture[str]
) -> None:
    wheel = PYPI["certifi-2026.10.18-py3-none-any.whl"]
    sdist = PYPI["certifi-2026.10.18.tar.gz"]
    both = tmp_path / "both.txt"
    both.write_text(f"certifi==2026.10.18 --hash=sha256:{wheel} --hash=sha256:{sdist}\n")
    assert check(listed, capsys, both)[0] == 0
    alone = tmp_path / "alone.txt"
    alone.write_text(f"certifi==2026.10.18 --hash=sha256:{sdist}\n")
    code, out, _err = check(listed, capsys, alone)
    assert code == 1 and f"{alone}:1: sdist: sha256:{sdist[:12]}… is the sdist" in out
    unlisted = tmp_path / "unlisted.txt"
    unlisted.write_text(f"certifi==2026.10.18 --hash=sha256:{wheel} --hash=sha256:{'e' * 64}\n")
    code, out, _err = check(listed, capsys, unlisted)
    assert code == 1 and f"{unlisted}:1: hash-not-in-list:" in out, "an extra unlisted hash"


def test_pylock_markers_see_the_default_groups_and_no_extras(tmp_path: Path) -> None:
    lock = tmp_path / "pylock.toml"
    wheel = '" } }]\n'
    lock.write_text(
        'lock-version = "1.0"\ncreated-by = "x"\ndefault-groups = ["main"]\n'
        + "".join(
            f'[[packages]]\nname = "p{i}"\nversion = "1"\nmarker = "{marker}"\n'
            f'wheels = [{{ url = "https://x/p{i}-1-py3-none-any.whl", hashes = {{ sha256 = "'
            + f"{i}" * 64
            + wheel
            for i, marker in enumerate(
                [
                    "'main' in dependency_groups",
                    "'dev' in dependency_groups",
                    "'x' in extras",
                    "python_version >= '3'",
                ]
            )
        )
    )

    parsed = requirements.parse_files([lock])
    environment = {"python_version": "3.12", "python_full_version": "3.12.0"}
    assert [line.applies(environment) for line in parsed.lines] == [True, False, False, True]
