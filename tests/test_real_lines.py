"""Real ``pip install`` lines, with ``pip`` replaced by ``safepip``: do they behave as a user
expects?

``tests/data/pip_install_lines.jsonl`` holds 120 lines from 74 public repositories (Dockerfiles,
CI workflows and scripts, Makefiles, READMEs), each with its repository and path, as found with
the code search of public GitHub sources. Each line is run as written, with ``pip`` (``pip3``,
``pip3.7``, ``python -m pip``) replaced by ``safepip`` and ``--dry-run`` added, against a signed
index on disk that lists a wheel of every project the lines name (at the versions they pin).

What "behaves as a user expects" means, per line (the ``expect`` field, decided when the line was
collected, before it was run):

- ``install``: exit 0, and every project the line names is among what would be installed;
- ``refuse``: the line asks for what no list can vouch for (an editable or path build of the
  project itself, a VCS URL, a wheel just built locally): exit 1, naming it;
- ``usage``: pip itself rejects the line today (``--install-option`` was removed in pip 23.1):
  exit 2, naming the flag.

Environment stand-ins, all local: requirements and constraints files the lines name are created
with a few listed projects; every ``http(s)://`` source a line names (``-i``,
``--extra-index-url``) is a local folder that offers nothing, so the listed files come from the
configured index, as they would when a mirror lacks them; absolute paths live in a scratch
folder; a ``dist/`` folder holds a wheel built locally (not the listed one). ``--dry-run`` stops
before pip: placing files (``--target``, ``--prefix``, ``--user``) is tested by
``tests/test_pipflags.py`` into real venvs.

The split: a line belongs to the *report* half when the first hex digit of the sha256 of its
repository name is 8 or above, else to the *tune* half (misses there were used to fix safepip).
``REAL_LINES_REPORT=FILE`` writes the per-line outcome.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shlex
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name

from safepip._cli import build_parser, main
from tests.keys import Keyring
from tests.site import Site, make_site
from tests.wheels import make_wheel

pytestmark = pytest.mark.e2e

DATA = Path(__file__).parent / "data" / "pip_install_lines.jsonl"
LINES = [json.loads(text) for text in DATA.read_text(encoding="utf-8").splitlines() if text]

#: What the requirements files the lines name hold (their real contents are not known).
FILES = {
    "requirements": "flask\nrequests==2.31.0\n",
    "dev": "pytest\nblack\n",
    "constraints": "requests==2.31.0\n",
}

#: Lines that do not behave as a user expects, and why (the test fails if this is not exact).
KNOWN_MISSES: dict[str, str] = {}


@dataclass(frozen=True)
class Outcome:
    line: str
    half: str
    expect: str
    code: int
    ok: bool
    detail: str


def half(repo: str) -> str:
    return "report" if hashlib.sha256(repo.encode()).hexdigest()[0] >= "8" else "tune"


def pip_argv(line: str) -> list[str]:
    """The words after ``pip`` of ``line`` (environment assignments, ``sudo`` and make's ``@``
    dropped; ``pip``, ``pip3.7``, ``python3 -m pip`` all recognised)."""
    words = shlex.split(line)
    while words and (re.fullmatch(r"[A-Za-z_]\w*=.*", words[0]) or words[0] == "sudo"):
        words = words[1:]
    head = words[0].lstrip("@")
    if re.fullmatch(r"pip[0-9.]*", head):
        return words[1:]
    assert re.fullmatch(r"python[0-9.]*", head) and words[1:3] == ["-m", "pip"], line
    return words[3:]


def localised(word: str, scratch: Path, offline: Path) -> str:
    """``word`` with an absolute path moved under ``scratch`` and a web source to ``offline``."""
    if word.startswith("-") and "=" in word:
        flag, _, value = word.partition("=")
        return f"{flag}={localised(value, scratch, offline)}"
    if re.match(r"https?://", word):
        rest = word.split("://", 1)[1]
        return (offline / rest).as_uri() + "/"
    if word.startswith("/"):
        return str(scratch / word.lstrip("/"))
    return word


def requested(argv: list[str]) -> list[Requirement]:
    """The requirements named on the command line, read by safepip's own parser."""
    args, _ = build_parser().parse_known_args(["install", *[a for a in argv if a != "install"]])
    found = []
    for spec in args.specs:
        try:
            found.append(Requirement(spec))
        except InvalidRequirement:
            continue  # a URL or a path: refused by the line itself
    return found


def universe() -> dict[str, set[str]]:
    """Every project the lines and the stand-in files name, with the versions to list."""
    projects: dict[str, set[str]] = {}
    texts = [r for text in FILES.values() for r in text.split()]
    for requirement in [*map(Requirement, texts), *(
        r for row in LINES for r in requested(pip_argv(row["line"]))
    )]:  # fmt: skip
        pinned = [s.version for s in requirement.specifier if s.operator == "=="]
        projects.setdefault(canonicalize_name(requirement.name), set()).update(pinned or ["1.0"])
    return projects


@pytest.fixture
def world(tmp_path: Path, keyring: Keyring, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A signed index on disk listing :func:`universe`, and a project folder using it."""
    monkeypatch.setenv("GNUPGHOME", str(keyring.home))
    site: Site = make_site(tmp_path, keyring, {})
    projects = universe()
    for name, versions in projects.items():
        for version in versions:
            make_wheel(site.wheels, name, version)
    project = tmp_path / "project"
    # The publisher means every one of these names (pystark is not a typo of pyspark here).
    config = site.write_config(project, str(site.list_path), allow_names=sorted(projects))
    assert main(["publish", str(site.wheels), "--out", str(site.out), "-q", "--config",
                 str(config), "--key", site.fingerprint(), "--serial", "1"]) == 0  # fmt: skip
    make_wheel(project / "dist", "wheel", "1.0", modules={"wheel/__init__.py": "# local build\n"})
    monkeypatch.chdir(project)
    yield project


def stand_ins(argv: list[str], folder: Path) -> None:
    """Create the requirements and constraints files ``argv`` names."""
    for flag, value in zip(argv, [*argv[1:], ""], strict=True):
        for option in ("-r", "--requirement", "-c", "--constraint"):
            if flag == option or flag.startswith(f"{option}="):
                name = value if flag == option else flag.split("=", 1)[1]
                path = folder / name
                kind = "constraints" if "constraint" in name else "requirements"
                kind = "dev" if "dev" in name else kind
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_text(FILES[kind])


def run_line(
    row: dict[str, str], project: Path, capsys: pytest.CaptureFixture[str], number: int
) -> Outcome:
    argv = [localised(w, project / "root", project / "offline") for w in pip_argv(row["line"])]
    stand_ins(argv, project)
    # Each line runs as on a machine of its own: no wheel cache filled by an earlier line.
    os.environ["XDG_CACHE_HOME"] = str(project / "cache" / str(number))
    code = main([*argv, "--dry-run"])
    captured = capsys.readouterr()
    out, err = captured.out, captured.err
    expect = row["expect"]
    if expect == "install":
        names = {canonicalize_name(r.name) for r in requested(argv)}
        would = set(re.findall(r"^would install (\S+) ", out, re.MULTILINE))
        ok = code == 0 and names <= would
    else:
        ok = code == {"refuse": 1, "usage": 2}[expect] and "error: " in err
    detail = (err.strip().splitlines() or [""])[-1] if not ok else ""
    return Outcome(row["line"], half(row["repo"]), expect, code, ok, detail)


def test_real_pip_install_lines_behave_as_users_expect(
    world: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert len(LINES) >= 100 and all(row["repo"] and row["path"] for row in LINES)
    outcomes = [run_line(row, world, capsys, number) for number, row in enumerate(LINES)]
    report = os.environ.get("REAL_LINES_REPORT")
    if report:
        Path(report).write_text(
            "\n".join(json.dumps(o.__dict__) for o in outcomes) + "\n", encoding="utf-8"
        )
    misses = {o.line: o.detail for o in outcomes if not o.ok}
    assert set(misses) == set(KNOWN_MISSES), misses
    for name in ("tune", "report"):
        part = [o for o in outcomes if o.half == name]
        rate = sum(o.ok for o in part) / len(part)
        assert rate >= 0.95, f"{name} half: {rate:.1%} of {len(part)} lines"
