"""The examples run, so they cannot rot: the pre-commit hook, the Dockerfile, the CI workflow.

No test here touches the internet. What a user's run would fetch from PyPI (the hook
environment pre-commit builds, safepip's bootstrap dependencies, the real wheels of the Docker
example's lock file) comes from the wheelhouse that ``scripts/test`` downloads at set-up time,
with ``--require-hashes`` where the example pins hashes; pre-commit itself is a dev dependency.
Without that wheelhouse these tests are skipped, with the reason. No pip call here sees the
machine's pip configuration or any inherited ``PIP_*`` variable but the ones set here.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from safepip._cli import main
from tests.keys import Keyring
from tests.server import LoopbackServer
from tests.site import Site, make_site

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parent.parent
DOCKER = ROOT / "examples" / "docker"
WORKFLOW = ROOT / "examples" / "github-actions" / "safepip.yml"
WHEELHOUSE = Path(os.environ.get("SAFEPIP_WHEELHOUSE", ROOT / ".wheelhouse"))
EXAMPLE_WHEELS = WHEELHOUSE / "examples"


# -- helpers -----------------------------------------------------------------------------------


def require_wheelhouse(what: str, folder: Path, pattern: str) -> None:
    if not any(folder.glob(pattern)):
        pytest.skip(f"{what}: no {pattern} in {folder} (scripts/test downloads it)")


def offline_pip(find_links: Path) -> dict[str, str]:
    """pip settings that make PyPI the wheelhouse: no index, only these files."""
    return {"PIP_NO_INDEX": "1", "PIP_FIND_LINKS": str(find_links)}


def clean_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """os.environ without any ``PIP_*`` and with no pip config file, plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PIP_")}
    env["PIP_CONFIG_FILE"] = os.devnull
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    env.update(extra or {})
    return env


def run(
    argv: list[str], *, check: bool = True, **kwargs: object
) -> subprocess.CompletedProcess[str]:
    """Run ``argv``; on failure (with ``check``) fail the test showing its output."""
    result = subprocess.run(
        argv,
        capture_output=True,
        text=True,
        check=False,
        timeout=600,
        **kwargs,  # type: ignore[call-overload]
    )
    if check and result.returncode != 0:
        pytest.fail(
            f"{shlex.join(argv)} exited {result.returncode}\n"
            f"--- stdout\n{result.stdout}\n--- stderr\n{result.stderr}"
        )
    return result


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def publish(
    site: Site, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """``safepip publish`` the site's wheel folder, signed with the test key."""
    monkeypatch.setenv("GNUPGHOME", str(site.keyring.home))
    argv = ["publish", str(site.wheels), "--out", str(site.out), "--key", site.fingerprint()]
    code = main([*argv, *site.pins()])
    captured = capsys.readouterr()
    assert code == 0, captured.err


def hashed_line(site: Site, name: str, version: str) -> str:
    wheel = site.out / f"{name}-{version}-py3-none-any.whl"
    return f"{name}=={version} --hash=sha256:{sha256(wheel)}"


@pytest.fixture(scope="session")
def safepip_wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The safepip wheel of this checkout, built offline by its own backend (flit_core)."""
    pytest.importorskip("flit_core.buildapi", reason="building safepip's wheel needs flit_core")
    out = tmp_path_factory.mktemp("safepip-wheel")
    code = "import sys, flit_core.buildapi as b; print(b.build_wheel(sys.argv[1]))"
    result = run([sys.executable, "-c", code, str(out)], cwd=ROOT)
    return out / result.stdout.strip().splitlines()[-1]


# -- pre-commit --------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def pre_commit(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, Path]]:
    """The real pre-commit (a dev dependency), and a pip cache shared by its hook envs."""
    executable = Path(sys.executable).parent / "pre-commit"
    if not executable.exists():
        pytest.skip(f"pre-commit is not installed beside {sys.executable} (pip install -e .[dev])")
    root = tmp_path_factory.mktemp("pre-commit")
    try:
        yield executable, root / "pip-cache"
    finally:
        shutil.rmtree(root, ignore_errors=True)


def checkout_snapshot(dest: Path) -> Path:
    """A one-commit git repository holding this checkout's working tree as ``git add -A`` sees it.

    ``pre-commit try-repo`` on a dirty repository commits tracked changes only (``git add -u``):
    a new, untracked ``.pre-commit-hooks.yaml`` or module would be missing. The snapshot holds
    exactly what the next commit of this checkout would hold.
    """
    listed = run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=ROOT
    ).stdout.split("\0")
    for name in filter(None, listed):
        source = ROOT / name
        if source.is_file():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, dest / name)
    git_init(dest)
    return dest


def git_init(repo: Path) -> None:
    run(["git", "init", "-q", "-b", "main", str(repo)])
    run(["git", "add", "-A"], cwd=repo)
    run(["git", "commit", "-q", "--no-gpg-sign", "-m", "snapshot"], cwd=repo, env=git_env())


def git_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """An environment for git and pre-commit: a fixed identity, no user or system git config."""
    identity = {
        "GIT_AUTHOR_NAME": "safepip tests",
        "GIT_AUTHOR_EMAIL": "tests@example.test",
        "GIT_COMMITTER_NAME": "safepip tests",
        "GIT_COMMITTER_EMAIL": "tests@example.test",
        "GIT_CONFIG_GLOBAL": os.devnull,
        "GIT_CONFIG_NOSYSTEM": "1",
    }
    return clean_env({**identity, **(extra or {})})


def test_pre_commit_hook_with_try_repo(
    tmp_path: Path,
    keyring: Keyring,
    pre_commit: tuple[Path, Path],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """``pre-commit try-repo <this checkout> safepip-check`` passes a good lock file, fails a bad
    one naming ``requirements.txt:LINE``, and never sees files outside ``files:``."""
    executable, pip_cache = pre_commit
    # The hook environment installs safepip from the snapshot: its dependencies, and flit_core to
    # build it, come from the wheelhouse.
    require_wheelhouse("the hook environment", WHEELHOUSE, "flit_core-*.whl")
    site = make_site(tmp_path, keyring)
    publish(site, monkeypatch, capsys)
    hooks_repo = checkout_snapshot(tmp_path / "safepip-checkout")

    project = tmp_path / "project"
    project.mkdir()
    site.write_config(project, str(site.list_path))  # a local list: the hook runs offline
    good = hashed_line(site, "alpha", "1.0") + "\n" + hashed_line(site, "beta", "2.0") + "\n"
    (project / "requirements.txt").write_text(good)
    (project / "requirements").mkdir()
    (project / "requirements" / "dev.txt").write_text(hashed_line(site, "gamma", "0.1") + "\n")
    (project / "notes.txt").write_text("beta==2.0\n")  # would fail: the hook must not see it
    git_init(project)

    env = git_env(
        {
            "PIP_CACHE_DIR": str(pip_cache),
            "PRE_COMMIT_HOME": str(tmp_path / "pc"),
            **offline_pip(WHEELHOUSE),
        }
    )

    def try_repo(*files: str) -> subprocess.CompletedProcess[str]:
        argv = [str(executable), "try-repo", str(hooks_repo), "safepip-check", "--verbose"]
        return run([*argv, "--files", *files], check=False, cwd=project, env=env)

    result = try_repo("requirements.txt", "requirements/dev.txt", "notes.txt")
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert re.search(r"safepip check .*Passed", output), output
    # Both requirements files were judged, in one run; notes.txt never reached the hook.
    assert "ok: 3 requirement(s) in 2 file(s) vetted" in output, output

    (project / "requirements.txt").write_text(
        hashed_line(site, "alpha", "1.0") + "\n"
        "beta==2.0\n"  # unhashed
        f"gamma==0.1 --hash=sha256:{'0' * 64}\n"  # a hash that is not on the list
    )
    result = try_repo("requirements.txt", "notes.txt")
    output = result.stdout + result.stderr
    assert result.returncode == 1, output
    assert re.search(r"safepip check .*Failed", output), output
    assert "requirements.txt:2: no-hash:" in output
    assert "requirements.txt:3: hash-not-in-list:" in output
    assert "requirements.txt:1:" not in output
    assert "notes.txt" not in output


def test_pre_commit_files_validate(pre_commit: tuple[Path, Path]) -> None:
    """The hook manifest and the project's own config are valid for the real pre-commit."""
    executable, _ = pre_commit
    run([str(executable), "validate-manifest", str(ROOT / ".pre-commit-hooks.yaml")])
    run([str(executable), "validate-config", str(ROOT / ".pre-commit-config.yaml")])
    manifest = (ROOT / ".pre-commit-hooks.yaml").read_text()
    for line in (
        "- id: safepip-check",
        "entry: safepip check",
        "language: python",
        r"files: ^requirements.*\.txt$",
        "pass_filenames: true",
    ):
        assert re.search(rf"^\s*{re.escape(line)}\s*$", manifest, re.MULTILINE), line


def test_project_pre_commit_config_uses_existing_tools() -> None:
    """Each ``language: system`` entry of .pre-commit-config.yaml is a tool of the dev venv."""
    config = (ROOT / ".pre-commit-config.yaml").read_text()
    entries = re.findall(r"^\s*entry:\s*(.+)$", config, re.MULTILINE)
    assert entries, "no hooks found"
    for entry in entries:
        tool, *args = shlex.split(entry)
        path = Path(sys.executable).parent / tool
        executable = str(path) if path.exists() else shutil.which(tool)
        if executable is None:
            pytest.skip(f"{tool} is not installed in this environment")
        result = run([executable, *args, "--help"], check=False)
        assert result.returncode == 0, f"{entry}: {result.stderr}"


# -- Dockerfile --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Instruction:
    keyword: str
    arguments: str
    line: int


def parse_dockerfile(text: str) -> list[Instruction]:
    """Instructions with continuation lines joined and comment lines dropped, as Docker does."""
    instructions: list[Instruction] = []
    buffer, start = "", 0
    for number, raw in enumerate(text.splitlines(), start=1):
        stripped = raw.strip()
        if not buffer and (not stripped or stripped.startswith("#")):
            continue
        if buffer and stripped.startswith("#"):
            continue  # a comment inside a continued instruction
        if not buffer:
            start = number
        if stripped.endswith("\\"):
            buffer += stripped[:-1] + " "
            continue
        buffer += stripped
        keyword, _, arguments = buffer.partition(" ")
        instructions.append(Instruction(keyword.upper(), arguments.strip(), start))
        buffer = ""
    assert not buffer, "the Dockerfile ends inside a continued line"
    return instructions


def expand(text: str, variables: Mapping[str, str]) -> str:
    """Docker's ``$VAR`` / ``${VAR}`` substitution in ENV, COPY, WORKDIR and FROM."""

    def value(match: re.Match[str]) -> str:
        return variables.get(match.group(1) or match.group(2), "")

    return re.sub(r"\$\{(\w+)\}|\$(\w+)", value, text)


@dataclass
class DockerBuild:
    """Runs a Dockerfile's instructions in a folder standing in for the image's filesystem.

    Substitutions, all of them here:
    * the base image is this machine: ``python`` on PATH is the interpreter running the tests
      (no other tool of its installation), with /usr/bin and /bin for sh, sha256sum and gpg;
    * container paths under MAPPED live under ``rootfs``: the RUN commands are rewritten, and a
      path outside MAPPED fails the test (add it here, if the Dockerfile gains one);
    * ``apt-get`` steps are not run (they would change this machine): what they install must be
      on this machine already (asserted);
    * stages share one filesystem, so ``COPY --from`` of a path onto itself is a no-op;
    * HOME is ``rootfs/root`` and pip has no config file, as in a fresh image;
    * PyPI is ``pypi``, a folder of wheels (PIP_NO_INDEX, PIP_FIND_LINKS): the bootstrap step's
      pip still checks every file against the hashes of bootstrap.txt. safepip ignores both
      variables (it scrubs PIP_* from pip's environment).
    """

    MAPPED = ("/opt", "/app", "/tmp", "/root")
    context: Path
    rootfs: Path
    build_args: Mapping[str, str]
    pypi: Path | None = None
    outputs: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)
    args: dict[str, str] = field(default_factory=dict)
    global_args: dict[str, str] = field(default_factory=dict)
    workdir: str = "/"
    stages: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        bin_dir = self.rootfs / "image-bin"
        bin_dir.mkdir(parents=True)
        base = getattr(sys, "_base_executable", sys.executable)
        for name in ("python", "python3"):
            (bin_dir / name).symlink_to(base)
        (self.rootfs / "root").mkdir()
        (self.rootfs / "tmp").mkdir()
        self.base_env = {
            "PATH": f"{bin_dir}:/usr/bin:/bin",
            "HOME": str(self.rootfs / "root"),
            "TMPDIR": str(self.rootfs / "tmp"),
            "LANG": "C.UTF-8",
            "PIP_CONFIG_FILE": os.devnull,
            **(offline_pip(self.pypi) if self.pypi is not None else {"PIP_NO_INDEX": "1"}),
        }

    def host(self, container_path: str) -> Path:
        """The host path of an absolute or WORKDIR-relative container path."""
        path = (
            container_path if container_path.startswith("/") else f"{self.workdir}/{container_path}"
        )
        return self.rootfs / os.path.normpath(path).lstrip("/")

    def rewrite(self, command: str) -> str:
        """Map container paths into rootfs, refusing any absolute path outside MAPPED."""
        # After a `:` too (PATH=a:/opt/x), but never the `//` of a URL.
        pattern = r"(?<![\w$}./-])(/(?!/)[\w./-]*)"
        for path in re.findall(pattern, command):
            assert path.startswith(self.MAPPED), f"unmapped container path {path!r} in {command!r}"
        roots = "|".join(re.escape(m) for m in self.MAPPED)
        return re.sub(rf"(?<![\w$}}./-])(?=(?:{roots})(?:/|\b))", str(self.rootfs), command)

    def variables(self) -> dict[str, str]:
        return {**self.args, **self.env}

    def run(self, instructions: list[Instruction]) -> None:
        for instruction in instructions:
            handler = getattr(self, f"do_{instruction.keyword.lower()}", None)
            assert handler is not None, f"line {instruction.line}: {instruction.keyword} unknown"
            handler(instruction.arguments)

    def do_arg(self, arguments: str) -> None:
        name, has_default, default = arguments.partition("=")
        value = self.build_args.get(name, default if has_default else None)
        if not self.stages:
            if value is not None:
                self.global_args[name] = value
        elif value is not None:
            self.args[name] = expand(value, self.variables())
        elif name in self.global_args:
            self.args[name] = self.global_args[name]

    def do_from(self, arguments: str) -> None:
        image, _, name = expand(arguments, self.global_args).partition(" AS ")
        assert image.startswith("python:"), f"the stages are built FROM a python image: {image}"
        self.stages.append(name.strip())
        self.env, self.args, self.workdir = dict(self.base_env), {}, "/"

    def do_env(self, arguments: str) -> None:
        for pair in shlex.split(arguments):
            name, _, value = pair.partition("=")
            self.env[name] = expand(self.rewrite(value), self.variables())

    def do_workdir(self, arguments: str) -> None:
        self.workdir = os.path.normpath(Path(self.workdir, expand(arguments, self.variables())))
        self.host(self.workdir).mkdir(parents=True, exist_ok=True)

    def do_copy(self, arguments: str) -> None:
        words = [expand(w, self.variables()) for w in shlex.split(arguments)]
        source_stage = next((w.split("=", 1)[1] for w in words if w.startswith("--from=")), None)
        words = [w for w in words if not w.startswith("--")]
        *sources, dest = words
        if source_stage is not None:
            assert source_stage in self.stages, f"COPY --from={source_stage}: no such stage"
            assert sources == [dest], "only COPY --from of a path onto itself is emulated"
            assert self.host(dest).exists(), f"COPY --from={source_stage}: {dest} was not built"
            return
        target = self.host(dest)
        for source in sources:
            path = self.context / source
            assert path.exists(), f"COPY {source}: not in the build context"
            if path.is_dir():
                shutil.copytree(path, target, dirs_exist_ok=True)
            elif dest.endswith("/") or len(sources) > 1:
                target.mkdir(parents=True, exist_ok=True)
                shutil.copy2(path, target / path.name)
            else:
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(path, target)

    def do_run(self, arguments: str) -> None:
        if arguments.startswith("apt-get "):
            for package in ("gpg", "gpgconf"):
                assert shutil.which(package), f"{package} (installed by apt-get) is missing here"
            self.skipped.append(arguments)
            return
        command = self.rewrite(arguments)
        cwd = self.host(self.workdir)
        result = run(["/bin/sh", "-c", command], cwd=cwd, env={**self.env, **self.args})
        self.outputs.append(result.stdout + result.stderr)

    def do_user(self, arguments: str) -> None:
        """Not emulated: the test runs as whoever runs the tests."""

    def do_cmd(self, arguments: str) -> None:
        """Recorded in the image only."""


def test_dockerfile_run_steps(
    tmp_path: Path,
    keyring: Keyring,
    safepip_wheel: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """examples/docker/Dockerfile, step by step, against a signed index on 127.0.0.1.

    The build context is assembled as the example's README says: the example folder,
    requirements/bootstrap.txt and the safepip wheel of this checkout in safepip/, the
    publisher's key in keys/, its fingerprint in safepip.toml. The index serves the real PyPI
    wheels of the example's lock file (downloaded with --require-hashes, so its hashes are
    proven real), signed with a test key. SAFEPIP_LIST points at it, as ``--build-arg`` would.
    """
    require_wheelhouse("the Docker example's wheels", EXAMPLE_WHEELS, "requests-*.whl")
    site = make_site(tmp_path, keyring, {})
    run(
        [sys.executable, "-m", "pip", "download", "-q", "--require-hashes", "--no-deps",
         "--only-binary", ":all:", "-d", str(site.wheels), "-r", str(DOCKER / "requirements.txt")],
        env=clean_env({"PIP_NO_CACHE_DIR": "1", **offline_pip(EXAMPLE_WHEELS)}),
    )  # fmt: skip
    publish(site, monkeypatch, capsys)

    context = tmp_path / "context"
    shutil.copytree(DOCKER, context)
    shutil.copy2(ROOT / "requirements" / "bootstrap.txt", context / "safepip" / "bootstrap.txt")
    shutil.copy2(safepip_wheel, context / "safepip" / safepip_wheel.name)
    shutil.copy2(site.keyring.keys[site.signer].public_file, context / "keys" / "publisher.asc")
    toml = (context / "safepip.toml").read_text()
    placeholder = re.findall(r'trusted-keys = \["([0-9A-F]{40})"\]', toml)
    assert len(placeholder) == 1, "safepip.toml should pin exactly one placeholder fingerprint"
    (context / "safepip.toml").write_text(toml.replace(placeholder[0], site.fingerprint()))

    instructions = parse_dockerfile((DOCKER / "Dockerfile").read_text())
    defaults = {
        name: default
        for i in instructions
        if i.keyword == "ARG"
        for name, _, default in [i.arguments.partition("=")]
    }
    assert defaults["SAFEPIP_WHEEL"] == safepip_wheel.name, "update the Dockerfile's default"

    with LoopbackServer(site.out) as server:
        build = DockerBuild(
            context=context,
            rootfs=tmp_path / "rootfs",
            build_args={
                "SAFEPIP_SHA256": sha256(safepip_wheel),
                "SAFEPIP_LIST": server.url + "sha256sums.txt",
            },
            pypi=EXAMPLE_WHEELS,
        )
        build.run(instructions)
        requested = server.requests

    assert build.stages == ["safepip", "app"]
    assert [s.split()[:2] for s in build.skipped] == [["apt-get", "update"]]
    log = "\n".join(build.outputs)
    assert "safepip 0.1.0" in log
    assert "installed 5 vetted package(s)" in log
    # Into the activated app venv, never safepip's own.
    assert f"into {build.rootfs}/opt/venv ({build.rootfs}/opt/venv/bin/python)" in log
    assert f"requests from {build.rootfs}/opt/venv/" in log
    assert "/sha256sums.txt" in requested and "/sha256sums.txt.asc" in requested
    assert sorted(r for r in requested if r.endswith(".whl")) == sorted(
        "/" + p.name for p in site.wheels.glob("*.whl")
    )


def test_dockerfile_refuses_a_wheel_with_another_hash(tmp_path: Path) -> None:
    """The safepip stage fails closed: without the right SAFEPIP_SHA256 nothing is installed."""
    instructions = parse_dockerfile((DOCKER / "Dockerfile").read_text())
    (check,) = [i for i in instructions if i.keyword == "RUN" and "sha256sum" in i.arguments]
    for attempt, value in enumerate(("", "0" * 64)):
        build = DockerBuild(context=tmp_path, rootfs=tmp_path / f"rootfs{attempt}", build_args={})
        wheel = build.rootfs / "tmp" / "safepip" / "safepip-0.1.0-py3-none-any.whl"
        wheel.parent.mkdir(parents=True)
        wheel.write_bytes(b"not the reviewed wheel")
        env = {**build.base_env, "SAFEPIP_WHEEL": wheel.name, "SAFEPIP_SHA256": value}
        result = run(["/bin/sh", "-c", build.rewrite(check.arguments)], check=False, env=env)
        assert result.returncode != 0
        output = result.stdout + result.stderr
        assert "did NOT match" in output or "no properly formatted" in output, output
        assert not (build.rootfs / "opt").exists(), "pip ran after a failed checksum"


# -- GitHub Actions ----------------------------------------------------------------------------


def workflow_commands(text: str) -> list[str]:
    """The shell commands of every ``run:`` step (one-line and ``|`` blocks, ``\\`` joined)."""
    lines = text.splitlines()
    script: list[str] = []
    for index, line in enumerate(lines):
        match = re.match(r"^(\s*)(?:- )?run:\s*(.*)$", line)
        if not match:
            continue
        indent, rest = len(match.group(1)), match.group(2).strip()
        if rest != "|":
            script.append(rest)
            continue
        for following in lines[index + 1 :]:
            if following.strip() and len(following) - len(following.lstrip()) <= indent:
                break
            script.append(following.strip())
    joined = "\n".join(script).replace("\\\n", " ")
    return [" ".join(command.split()) for command in joined.splitlines() if command.strip()]


def safepip_invocations(commands: list[str]) -> list[list[str]]:
    """The argv after ``safepip`` of every command that runs it."""
    found = []
    for command in commands:
        words = shlex.split(command.replace(">", " > "))
        for i, word in enumerate(words):
            if Path(word).name == "safepip" and i + 1 < len(words):
                tail = words[i + 1 :]
                found.append(tail[: tail.index(">")] if ">" in tail else tail)
    return found


def test_workflow_runs_only_real_safepip_commands_and_flags() -> None:
    """Every ``safepip`` command line of the workflow names a real command and real flags."""
    text = WORKFLOW.read_text()
    invocations = safepip_invocations(workflow_commands(text))
    assert [argv[0] for argv in invocations] == ["check", "install"]
    install = invocations[1]
    assert {"-r", "--format"} <= set(install), install
    assert install[install.index("--format") + 1] == "json"
    assert "safepip-report.json" in text
    for argv in invocations:
        command = argv[0]
        result = run([sys.executable, "-m", "safepip", command, "--help"], check=False)
        assert result.returncode == 0, f"safepip {command}: {result.stderr}"
        for flag in (w.split("=", 1)[0] for w in argv[1:] if w.startswith("-")):
            assert re.search(rf"(?<![\w-]){re.escape(flag)}(?![\w-])", result.stdout), (
                f"safepip {command} has no {flag}"
            )


def test_workflow_installs_safepip_from_hashes_and_pins_actions() -> None:
    """Bootstrap from hashes, actions pinned by commit SHA, read-only token."""
    text = WORKFLOW.read_text()
    commands = workflow_commands(text)
    bootstrap = next(c for c in commands if "bootstrap.txt" in c)
    for option in ("--require-hashes", "--only-binary :all:", "--no-deps"):
        assert option in bootstrap, option
    assert any("sha256sum --check --strict" in c for c in commands)
    assert any("--no-index --no-deps" in c and "SAFEPIP_WHEEL" in c for c in commands)
    uses = re.findall(r"uses:\s*(\S+)(.*)$", text, re.MULTILINE)
    assert {u.split("@")[0] for u, _ in uses} == {
        "actions/checkout",
        "actions/setup-python",
        "actions/upload-artifact",
    }
    for action, comment in uses:
        assert re.fullmatch(r"[\w.-]+/[\w.-]+@[0-9a-f]{40}", action), f"not pinned by SHA: {action}"
        assert re.fullmatch(r"\s*# v\d+(\.\d+)*", comment), f"{action}: name the tag in a comment"
    assert re.search(r"^permissions:\n\s+contents: read$", text, re.MULTILINE)
    assert "persist-credentials: false" in text
    assert "SAFEPIP_WHEEL: safepip-" in text
    version = re.search(r'^version = "(.+)"$', (ROOT / "pyproject.toml").read_text(), re.MULTILINE)
    assert version is not None
    assert f"SAFEPIP_WHEEL: safepip-{version.group(1)}-py3-none-any.whl" in text


def test_workflow_steps_after_the_bootstrap_run(
    tmp_path: Path,
    keyring: Keyring,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """The workflow's check and install steps, run as written in a project served on 127.0.0.1.

    ``safepip`` on PATH is this checkout's (the bootstrap step that puts it there is the same
    pip sequence as the Dockerfile's, which test_dockerfile_run_steps runs); ``python`` is the
    interpreter running the tests, as setup-python's would be.
    """
    site = make_site(tmp_path, keyring)
    publish(site, monkeypatch, capsys)
    commands = workflow_commands(WORKFLOW.read_text())
    after = next(i for i, c in enumerate(commands) if "GITHUB_PATH" in c) + 1
    steps = commands[after:]
    assert any(c.startswith("safepip install") for c in steps), steps

    shims = tmp_path / "bin"
    shims.mkdir()
    (shims / "python").symlink_to(getattr(sys, "_base_executable", sys.executable))
    shim = f'#!/bin/sh\nexec {shlex.quote(sys.executable)} -m safepip "$@"\n'
    (shims / "safepip").write_text(shim)
    (shims / "safepip").chmod(0o755)
    env = clean_env({"PATH": f"{shims}:/usr/bin:/bin"})
    project = tmp_path / "project"

    with LoopbackServer(site.out) as server:
        site.write_config(project, server.url + "sha256sums.txt")
        (project / "requirements.txt").write_text(
            hashed_line(site, "alpha", "1.0") + "\n" + hashed_line(site, "beta", "2.0") + "\n"
        )
        (project / "requirements-dev.txt").write_text(hashed_line(site, "gamma", "0.1") + "\n")
        for command in steps:
            run(["/bin/sh", "-ec", command], cwd=project, env=env)

        report = json.loads((project / "safepip-report.json").read_text())
        assert report["exit_code"] == 0 and report["rejected"] == []
        assert [a["filename"] for a in report["artifacts"]] == [
            "alpha-1.0-py3-none-any.whl",
            "beta-2.0-py3-none-any.whl",
        ]
        (site_packages,) = (project / ".venv").glob("lib/python*/site-packages")
        assert (site_packages / "alpha" / "__init__.py").is_file()
        assert not (site_packages / "gamma").exists()

        (project / "requirements-dev.txt").write_text("gamma==0.1\n")
        check = next(c for c in steps if c.startswith("safepip check"))
        result = run(["/bin/sh", "-ec", check], check=False, cwd=project, env=env)
        assert result.returncode == 1
        assert "requirements-dev.txt:1: no-hash:" in result.stdout
