"""safepip on Python 3.10-3.13, each with the pip its `python -m venv` brings (23.0.1 and up).

safepip runs from a fresh venv of each interpreter found on this machine, its dependencies
installed offline from the wheelhouse that `scripts/test` downloads at set-up time, and
installs a locked and a loose request into a second venv from a signed loopback index.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from safepip._cli import main
from tests.keys import Keyring
from tests.server import LoopbackServer
from tests.site import Site, make_site

ROOT = Path(__file__).resolve().parents[1]
WHEELHOUSE = Path(os.environ.get("SAFEPIP_WHEELHOUSE", ROOT / ".wheelhouse"))
VERSIONS = ("3.10", "3.11", "3.12", "3.13")

pytestmark = pytest.mark.e2e


def find_python(version: str) -> str | None:
    """An interpreter of ``version`` that actually runs (pyenv shims may not, unselected)."""
    candidates = [shutil.which(f"python{version}")]
    pyenv = Path(os.environ.get("PYENV_ROOT", Path.home() / ".pyenv"))
    candidates += [str(p) for p in sorted(pyenv.glob(f"versions/{version}.*/bin/python{version}"))]
    for candidate in filter(None, candidates):
        probe = subprocess.run([candidate, "-c", "pass"], capture_output=True, check=False)
        if probe.returncode == 0:
            return candidate
    return None


def _env(tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PIP_", "PYTHON"))}
    env["PIP_CONFIG_FILE"] = os.devnull
    env["XDG_STATE_HOME"] = str(tmp_path / "state")
    return env


@pytest.fixture(scope="module")
def published(tmp_path_factory: pytest.TempPathFactory, keyring: Keyring) -> Site:
    site = make_site(tmp_path_factory.mktemp("compat"), keyring)
    env_before = os.environ.get("GNUPGHOME")
    os.environ["GNUPGHOME"] = str(keyring.home)
    try:
        code = main(["publish", str(site.wheels), "--out", str(site.out), "-q",
                     "--key", site.fingerprint(), *site.pins()])  # fmt: skip
    finally:
        if env_before is None:
            del os.environ["GNUPGHOME"]
        else:
            os.environ["GNUPGHOME"] = env_before
    assert code == 0
    return site


@pytest.mark.parametrize("version", VERSIONS)
def test_safepip_runs_with_the_bundled_pip(version: str, published: Site, tmp_path: Path) -> None:
    python = find_python(version)
    if python is None:
        pytest.skip(f"python{version} is not installed here")
    if not any(WHEELHOUSE.glob("resolvelib-*.whl")):
        pytest.skip(f"no wheelhouse at {WHEELHOUSE} (scripts/test downloads it)")
    env = _env(tmp_path)
    runner, target = tmp_path / "runner", tmp_path / "target"
    subprocess.run([python, "-m", "venv", str(runner)], check=True, env=env)
    subprocess.run([python, "-m", "venv", "--without-pip", str(target)], check=True, env=env)
    subprocess.run(
        [str(runner / "bin" / "python"), "-m", "pip", "install", "-q", "--no-index",
         "--find-links", str(WHEELHOUSE), "packaging", "python-gnupg", "resolvelib", "rich",
         "tomli; python_version < '3.11'"],
        check=True, env=env,
    )  # fmt: skip
    (site_packages,) = runner.glob("lib/python*/site-packages")
    (site_packages / "safepip-checkout.pth").write_text(f"{ROOT}\n")
    pip_version = subprocess.run(
        [str(runner / "bin" / "python"), "-m", "pip", "--version"],
        capture_output=True, text=True, check=True, env=env,
    ).stdout.split()[1]  # fmt: skip
    assert int(pip_version.split(".")[0]) >= 23
    locked = tmp_path / "locked.txt"
    locked.write_text(
        "".join(
            f"{e.name}=={e.version} --hash=sha256:{e.sha256}\n"
            for e in __import__("safepip.hashlist", fromlist=["parse"])
            .parse(published.list_path.read_bytes())
            .entries
            if e.name in ("alpha", "beta")
        )
    )
    with LoopbackServer(published.out) as server:
        common = [str(runner / "bin" / "python"), "-m", "safepip", "install",
                  "--python", str(target / "bin" / "python"),
                  "--list", server.url + "sha256sums.txt", *published.pins()]  # fmt: skip
        for request in (["-r", str(locked)], ["gamma"]):
            result = subprocess.run(
                [*common, *request], capture_output=True, text=True, env=env, check=False
            )
            assert result.returncode == 0, f"pip {pip_version}: {result.stderr}"
    names = sorted(
        p.name.split("-")[0] for p in target.glob("lib/python*/site-packages/*.dist-info")
    )
    assert names == ["alpha", "beta", "gamma"], f"python {version}, pip {pip_version}"
