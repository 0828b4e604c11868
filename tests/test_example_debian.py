"""examples/debian: a .deb of a venv installed by safepip from vetted wheels, built twice in two
folders, identical. Offline: the wheels are made here, signed into a list here."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from safepip._cli import main
from tests.keys import Keyring
from tests.site import Site
from tests.wheels import make_wheel, sha256_of

pytestmark = pytest.mark.skipif(shutil.which("dpkg-deb") is None, reason="needs dpkg-deb")

SCRIPT = Path(__file__).resolve().parent.parent / "examples" / "debian" / "build-deb.sh"


def test_deb_of_a_vetted_venv_builds_twice_identically(
    tmp_path: Path,
    keyring: Keyring,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("GNUPGHOME", str(keyring.home))
    wheels = tmp_path / "wheels"
    make_wheel(wheels, "greet", "1.0", modules={"greet/__init__.py": "WORD = 'hello'\n"})
    make_wheel(
        wheels, "hello", "1.0", requires=["greet>=1"],
        modules={
            "hello/__init__.py": "import greet\ndef main():\n    print(greet.WORD)\n",
            "hello-1.0.dist-info/entry_points.txt": "[console_scripts]\nhello = hello:main\n",
        },
    )  # fmt: skip
    site = Site(wheels, tmp_path / "site", keyring)
    code = main(["publish", str(wheels), "--out", str(site.out), "--key", site.fingerprint(),
                 *site.pins()])  # fmt: skip
    assert code == 0, capsys.readouterr().err
    project = tmp_path / "project"
    site.write_config(project, str(site.list_path))
    lock = project / "requirements.txt"
    lock.write_text(
        "".join(
            f"{name}==1.0 --hash=sha256:{sha256_of(wheels / f'{name}-1.0-py3-none-any.whl')}\n"
            for name in ("greet", "hello")
        )
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("PIP_")}
    env.update(
        PIP_CONFIG_FILE=os.devnull,
        SAFEPIP=f"{sys.executable} -m safepip",
        PYTHON=sys.executable,
        REQUIREMENTS=str(lock),
        SOURCE_DATE_EPOCH="1700000000",
    )
    debs = []
    for folder in ("first", "second/deeper"):
        deb = tmp_path / f"{folder.replace('/', '-')}.deb"
        done = subprocess.run(
            [str(SCRIPT), str(tmp_path / folder), str(deb)],
            cwd=project, env=env, capture_output=True, text=True, check=False,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr + done.stdout
        debs.append(deb)
    if debs[0].read_bytes() != debs[1].read_bytes():
        trees = []
        for deb in debs:
            tree = deb.with_suffix(".tree")
            subprocess.run(["dpkg-deb", "-R", str(deb), str(tree)], check=True)
            trees.append(tree)
        diff = subprocess.run(
            ["diff", "-r", *map(str, trees)], capture_output=True, text=True, check=False
        )
        listings = [
            subprocess.run(
                ["dpkg-deb", "-c", str(d)], capture_output=True, text=True, check=False
            ).stdout
            for d in debs
        ]
        raise AssertionError(f"the two builds differ:\n{diff.stdout[:3000]}\n{listings}")

    listing = subprocess.run(
        ["dpkg-deb", "-c", str(debs[0])], capture_output=True, text=True, check=True
    ).stdout
    assert "./opt/hello/venv/bin/hello" in listing
    assert "root/root" in listing
    assert "/pip/" not in listing and "setuptools" not in listing
    assert ".pyc" not in listing
    unpacked = tmp_path / "unpacked"
    subprocess.run(["dpkg-deb", "-x", str(debs[0]), str(unpacked)], check=True)
    script = (unpacked / "opt/hello/venv/bin/hello").read_text()
    assert script.startswith("#!/opt/hello/venv/bin/python")
    for path in unpacked.rglob("*"):
        if path.is_file() and not path.is_symlink():
            assert str(tmp_path).encode() not in path.read_bytes(), path
