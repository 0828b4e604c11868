"""A real nginx serving a folder on 127.0.0.1, as publishers serve a list at scale.

The test starts its own nginx (Debian's ``nginx`` package) with a generated config in a
temporary folder, on a free port, as a child process that does not daemonise
(``daemon off; master_process off``), and stops it on exit: nothing of the system's nginx
(``/etc/nginx``, its service, its logs) is read or touched. nginx writes ``ETag`` and
``Last-Modified`` and answers ``If-None-Match`` / ``If-Modified-Since`` with 304, which is what
the conditional fetch of the list is tested against.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from types import TracebackType

#: Where Debian puts nginx; ``PATH`` may not hold /usr/sbin for a non-root user.
_CANDIDATES = ("/usr/sbin/nginx", "/usr/local/sbin/nginx", "/usr/local/nginx/sbin/nginx")
_START_SECONDS = 10.0


def nginx_binary() -> str | None:
    """The nginx executable, or ``None`` when nginx is not installed."""
    found = shutil.which("nginx")
    if found:
        return found
    return next((c for c in _CANDIDATES if os.access(c, os.X_OK)), None)


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


class Nginx:
    """``with Nginx(folder) as server:`` serves ``folder`` at ``server.url``.

    ``server.requests()`` returns one ``(path, status, if_none_match, if_modified_since)`` per
    request, from nginx's own access log.
    """

    def __init__(self, root: Path) -> None:
        binary = nginx_binary()
        if binary is None:
            raise RuntimeError("nginx is not installed")
        self.binary = binary
        self.root = Path(root).resolve()
        self.home = Path(tempfile.mkdtemp(prefix="nginx-"))
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}/"
        self._process: subprocess.Popen[bytes] | None = None

    def _config(self) -> str:
        h = self.home
        # As root nginx would switch its worker to "nobody", who cannot read a pytest folder.
        user = "user root;\n" if os.geteuid() == 0 else ""
        return (
            f"daemon off;\nmaster_process off;\n{user}pid {h}/nginx.pid;\n"
            f"error_log {h}/error.log;\nevents {{ worker_connections 64; }}\n"
            "http {\n"
            "  log_format cond escape=none\n"
            "    '$uri\\t$status\\t$http_if_none_match\\t$http_if_modified_since';\n"
            f"  access_log {h}/access.log cond;\n"
            f"  client_body_temp_path {h}/body;\n  proxy_temp_path {h}/proxy;\n"
            f"  fastcgi_temp_path {h}/fastcgi;\n  uwsgi_temp_path {h}/uwsgi;\n"
            f"  scgi_temp_path {h}/scgi;\n"
            f"  server {{ listen 127.0.0.1:{self.port}; root {self.root}; }}\n"
            "}\n"
        )

    def __enter__(self) -> Nginx:
        conf = self.home / "nginx.conf"
        conf.write_text(self._config())
        log = self.home / "error.log"
        argv = [self.binary, "-p", str(self.home), "-c", str(conf), "-e", str(log)]
        self._process = subprocess.Popen(
            argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        deadline = time.monotonic() + _START_SECONDS
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                error = log.read_text() if log.exists() else ""
                self.close()
                raise RuntimeError(f"nginx did not start: {error.strip()}")
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return self
            except OSError:
                time.sleep(0.05)
        self.close()
        raise RuntimeError(f"nginx did not listen on 127.0.0.1:{self.port}")

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        """Stop nginx (SIGQUIT, then SIGKILL) and remove its folder."""
        if self._process is not None and self._process.poll() is None:
            self._process.send_signal(signal.SIGQUIT)
            try:
                self._process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
        self._process = None
        shutil.rmtree(self.home, ignore_errors=True)

    def requests(self) -> list[tuple[str, int, str, str]]:
        """What nginx logged: path, status, If-None-Match and If-Modified-Since (``-``: none)."""
        log = self.home / "access.log"
        if not log.exists():
            return []
        rows = []
        for line in log.read_text().splitlines():
            path, status, etag, since = line.split("\t")
            rows.append((path, int(status), etag, since))
        return rows
