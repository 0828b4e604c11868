"""install end to end, where the bytes travel: Ctrl-C, local lists, hostile pages, proxies.

A signed index on 127.0.0.1 (or on disk, or behind a real CONNECT proxy over HTTPS), real pip,
real venvs, a real SIGINT to a real safepip process.
"""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from safepip._cli import main
from tests.keys import Keyring
from tests.proxy import ConnectProxy
from tests.server import LoopbackServer
from tests.site import Site, make_site, published_and_served
from tests.tls import TEST_HOST, make_tls_files

pytestmark = pytest.mark.e2e

WHEELS = {"alpha": ("1.0", ("beta>=2",)), "beta": ("2.0", ()), "gamma": ("0.1", ())}
GAMMA = "gamma-0.1-py3-none-any.whl"
#: How long safepip may take from a Ctrl-C to its exit (the brief: "about a second").
STOP_SECONDS = 1.5


@dataclass
class Index:
    site: Site
    server: LoopbackServer
    client: Path
    venv: Path

    @property
    def python(self) -> str:
        return str(self.venv / "bin" / "python")

    def locked(self, *names: str) -> Path:
        lines = []
        for project in names:
            wheel = f"{project}-{WHEELS[project][0]}-py3-none-any.whl"
            digest = hashlib.sha256((self.site.out / wheel).read_bytes()).hexdigest()
            lines.append(f"{project}=={WHEELS[project][0]} --hash=sha256:{digest}")
        path = self.client / "locked.txt"
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


@pytest.fixture
def index(tmp_path: Path, keyring: Keyring, monkeypatch: pytest.MonkeyPatch) -> Iterator[Index]:
    monkeypatch.setenv("GNUPGHOME", str(keyring.home))
    for name in ("https_proxy", "HTTPS_PROXY", "http_proxy", "HTTP_PROXY", "no_proxy", "NO_PROXY"):
        monkeypatch.delenv(name, raising=False)
    site = make_site(tmp_path, keyring, WHEELS)
    with published_and_served(site, monkeypatch) as (server, client, venv):
        yield Index(site, server, client, venv)


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def install(index: Index, capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    return run(capsys, "install", "--python", index.python, *argv)


# --- Ctrl-C -------------------------------------------------------------------------------------


def interrupt(
    index: Index, tmp_path: Path, argv: list[str], request_path: str, *, twice: bool = False
) -> tuple[subprocess.CompletedProcess[str], float, Path]:
    """Start ``safepip argv`` as a process, wait until it asks for ``request_path``, send it
    SIGINT (twice: a second one shortly after), and return its result and how long it took
    from the first SIGINT to its exit. Its TMPDIR is returned too, for leftovers."""
    tmp = tmp_path / "proc-tmp"
    tmp.mkdir()
    env = {**os.environ, "TMPDIR": str(tmp)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "safepip", *argv],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
    )  # fmt: skip
    try:
        for _ in range(300):
            if request_path in index.server.requests:
                break
            time.sleep(0.05)
        else:
            pytest.fail(f"safepip never asked for {request_path}")
        time.sleep(0.3)  # well inside the transfer
        start = time.monotonic()
        proc.send_signal(signal.SIGINT)
        if twice:
            time.sleep(0.05)  # while the first one is being cleaned up after
            proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
        took = time.monotonic() - start
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err), took, tmp


@pytest.mark.parametrize(
    ("twice", "locked"),
    [(False, True), (True, True), (False, False)],
    ids=["once", "twice", "while-resolving"],
)
def test_ctrl_c_during_a_download_stops_at_once_and_leaves_nothing(
    index: Index, tmp_path: Path, twice: bool, locked: bool
) -> None:
    wheel = (index.site.out / GAMMA).read_bytes()
    index.server.trickle("/" + GAMMA, wheel, interval=0.05)  # the real bytes, slowly
    request = ["-r", str(index.locked("gamma"))] if locked else ["gamma"]
    argv = ["install", "--no-progress", "--python", index.python, *request]
    result, took, tmp = interrupt(index, tmp_path, argv, "/" + GAMMA, twice=twice)
    assert result.returncode == 130, result.stderr
    assert took < STOP_SECONDS, f"{took:.1f} s from Ctrl-C to exit"
    assert result.stderr.rstrip().endswith("error: interrupted")  # and nothing after it
    assert "Traceback" not in result.stderr
    assert list(tmp.iterdir()) == [], "the staging folder and its partial wheel are removed"
    assert index.installed() == []


def test_ctrl_c_while_reading_the_project_pages_stops_at_once(index: Index, tmp_path: Path) -> None:
    index.server.hang("/simple/gamma/")
    argv = ["install", "--dry-run", "-r", str(index.locked("gamma"))]
    result, took, tmp = interrupt(index, tmp_path, argv, "/simple/gamma/")
    assert result.returncode == 130, result.stderr
    assert took < STOP_SECONDS, f"{took:.1f} s from Ctrl-C to exit"
    assert "Traceback" not in result.stderr and "error: interrupted" in result.stderr
    assert list(tmp.iterdir()) == []


# --- a list given as a path or a file:// URL ----------------------------------------------------


def local(index: Index, form: str) -> str:
    """The list as a path (``path``) or a ``file://`` URL (``url``); the index is the list's
    folder + simple/, so the project pages are folders on disk. No server is asked."""
    index.server.close()
    path = index.site.list_path
    source = path.as_uri() if form == "url" else str(path)
    index.site.write_config(index.client, source)
    return source


@pytest.mark.parametrize("form", ["path", "url"])
def test_locked_install_from_a_local_list(
    index: Index, capsys: pytest.CaptureFixture[str], form: str
) -> None:
    local(index, form)
    code, out, err = install(index, capsys, "-r", str(index.locked("alpha", "beta")))
    assert code == 0, err
    assert "installed 2 vetted package(s): alpha==1.0, beta==2.0" in out
    assert index.installed() == ["alpha==1.0", "beta==2.0"]


def test_dry_run_from_a_local_list(index: Index, capsys: pytest.CaptureFixture[str]) -> None:
    local(index, "path")
    code, out, err = run(capsys, "install", "--dry-run", "-r", str(index.locked("gamma")))
    assert code == 0, err
    assert f"would install gamma 0.1 ({GAMMA})" in out
    assert index.installed() == []


def test_loose_install_from_a_local_list(index: Index, capsys: pytest.CaptureFixture[str]) -> None:
    local(index, "path")
    code, _out, err = install(index, capsys, "alpha")
    assert code == 0, err
    assert "Traceback" not in err
    assert index.installed() == ["alpha==1.0", "beta==2.0"]


def test_local_index_folder_without_a_page_is_exit_3(
    index: Index, capsys: pytest.CaptureFixture[str]
) -> None:
    local(index, "path")
    (index.site.out / "simple" / "gamma" / "index.html").unlink()
    code, _out, err = install(index, capsys, "-r", str(index.locked("gamma")))
    assert code == 3, err
    assert "simple/gamma/index.html: cannot open" in err and "internal error" not in err
    assert index.installed() == []


# --- a hostile index page -----------------------------------------------------------------------


def test_a_link_that_is_not_a_url_is_skipped_with_a_note(
    index: Index, capsys: pytest.CaptureFixture[str]
) -> None:
    page = (index.site.out / "simple" / "gamma" / "index.html").read_bytes()
    index.server.serve_bytes(
        "/simple/gamma/", page + b'<a href="http://[oops/gamma-0.2.tar.gz">x</a>'
    )
    code, _out, err = install(index, capsys, "-v", "-r", str(index.locked("gamma")))
    assert code == 0, err
    assert "skipped a link that is not a URL: 'http://[oops/gamma-0.2.tar.gz'" in err
    assert index.installed() == ["gamma==0.1"]


@pytest.mark.parametrize("locked", [True, False], ids=["locked", "loose"])
def test_a_listed_file_linked_to_file_url_is_refused(
    index: Index, capsys: pytest.CaptureFixture[str], locked: bool
) -> None:
    href = f"file:///etc/{GAMMA}"
    index.server.serve_bytes("/simple/gamma/", f'<a href="{href}">{GAMMA}</a>'.encode())
    request = ["-r", str(index.locked("gamma"))] if locked else ["gamma"]
    code, _out, err = install(index, capsys, *request)
    assert code == 3, err
    assert f"link '{href}'" in err and "refusing http:// -> file://" in err
    assert "Traceback" not in err
    assert index.installed() == []


@pytest.mark.parametrize("hostile", ["unparsable", "endless"])
def test_an_unreadable_page_is_exit_3(
    index: Index, capsys: pytest.CaptureFixture[str], hostile: str
) -> None:
    if hostile == "endless":
        index.server.endless("/simple/gamma/")  # over the 16 MiB cap for a page
    else:
        index.server.serve_bytes("/simple/gamma/", b"<![xyz]>")
    code, _out, err = install(index, capsys, "-r", str(index.locked("gamma")))
    assert code == 3, err
    assert ("not a readable project page" if hostile == "unparsable" else "cap") in err
    assert index.installed() == []


# --- proxies ------------------------------------------------------------------------------------


@pytest.fixture
def behind_proxy(
    index: Index, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[ConnectProxy, LoopbackServer]]:
    """The same site over HTTPS as https://safepip.test:<port>/, a name only the proxy can
    resolve, with a test CA configured as `cert`; https_proxy points at the proxy."""
    tls = make_tls_files(tmp_path)
    with (
        LoopbackServer(index.site.out, tls=(tls["cert"], tls["key"])) as server,
        ConnectProxy(hosts={TEST_HOST: "127.0.0.1"}) as proxy,
    ):
        url = f"https://{TEST_HOST}:{server.port}/sha256sums.txt"
        index.site.write_config(index.client, url, cert=str(tls["ca"]))
        monkeypatch.setenv("https_proxy", proxy.url)
        yield proxy, server


@pytest.mark.parametrize("locked", [True, False], ids=["locked", "loose"])
def test_install_through_a_connect_proxy(
    index: Index,
    behind_proxy: tuple[ConnectProxy, LoopbackServer],
    capsys: pytest.CaptureFixture[str],
    locked: bool,
) -> None:
    proxy, server = behind_proxy
    request = ["-r", str(index.locked("gamma"))] if locked else ["gamma"]
    code, _out, err = install(index, capsys, *request)
    assert code == 0, err
    assert index.installed() == ["gamma==0.1"]
    # The list, its signature, the project page and the wheel: each through its own tunnel.
    assert proxy.targets == [f"{TEST_HOST}:{server.port}"] * 4
    assert server.requests == [
        "/sha256sums.txt",
        "/sha256sums.txt.asc",
        "/simple/gamma/",
        f"/{GAMMA}",
    ]


def test_no_proxy_sends_the_host_direct(
    index: Index,
    behind_proxy: tuple[ConnectProxy, LoopbackServer],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    proxy, server = behind_proxy
    monkeypatch.setenv("NO_PROXY", "pypi.org,.test")
    code, _out, err = run(capsys, "verify")
    assert code == 3
    assert f"cannot resolve {TEST_HOST}" in err  # asked directly, not through the proxy
    assert proxy.targets == [] and server.requests == []


def test_a_dead_proxy_is_exit_3_naming_it(
    index: Index,
    behind_proxy: tuple[ConnectProxy, LoopbackServer],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("https_proxy", "http://127.0.0.1:9")  # discard: nothing listens
    code, _out, err = install(index, capsys, "-r", str(index.locked("gamma")))
    assert code == 3, err
    assert "the proxy http://127.0.0.1:9 (from https_proxy) refused the connection" in err
    assert "hint: check https_proxy" in err
    assert index.installed() == []


def test_a_loopback_list_ignores_the_proxy(
    index: Index, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("https_proxy", "http://127.0.0.1:9")
    monkeypatch.setenv("http_proxy", "http://127.0.0.1:9")
    code, _out, err = install(index, capsys, "-r", str(index.locked("gamma")))
    assert code == 0, err
    assert index.installed() == ["gamma==0.1"]
