"""Where an install goes: the environment chosen the way uv chooses it for a tool that lives
outside the project (DESIGN.md §4).

safepip usually lives in an environment of its own (the Docker example installs it into
``/opt/safepip``), so "the current interpreter" is the wrong default: it would install the
application's dependencies next to safepip's and exit 0. In order:

1. ``--python PATH`` (an interpreter, or an environment folder holding ``bin/python``);
2. ``--system``: the first ``python3`` (else ``python``) on ``PATH``;
3. the active virtual environment (``VIRTUAL_ENV``);
4. a ``.venv`` holding ``bin/python`` in the current folder or one above it;
5. with ``--target``, ``--prefix``, ``--root`` or ``--user`` the files go there, and the
   interpreter whose tags and markers decide is the first ``python3`` on ``PATH``; a dry run
   with none of the above is judged for safepip's own interpreter (it installs nothing);
6. otherwise: refused, with a hint naming ``--python`` and ``--system``.

:func:`choose` is the decision; it reads only the file system (does a ``.venv`` exist) and the
values it is given (the CLI reads the environment).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from safepip.errors import UsageError

_BIN = "Scripts" if os.name == "nt" else "bin"
_PYTHON = "python.exe" if os.name == "nt" else "python"


@dataclass(frozen=True)
class Where:
    """What the user asked for on the command line (every field optional)."""

    python: str | None = None
    system: bool = False
    target: Path | None = None
    prefix: Path | None = None
    root: Path | None = None
    user: bool = False
    dry_run: bool = False


@dataclass(frozen=True)
class Destination:
    """The interpreter an install is for, and why it was chosen (``how``: ``--python``,
    ``--system``, ``VIRTUAL_ENV``, ``.venv``, ``--target`` …, or ``safepip``).

    ``python`` is an absolute path; ``None`` means safepip's own interpreter (pip then gets no
    ``--python``).
    """

    python: str | None
    how: str

    def describe(self, target: Path | None = None) -> str:
        """``into /x/.venv (/x/.venv/bin/python)``: where the files went, for the summary."""
        python = self.python or sys.executable
        if target is not None:
            return f"into {target} (for {python})"
        place = Path(python).parent.parent if Path(python).parent.name == _BIN else None
        return f"into {place} ({python})" if place is not None else f"into {python}"


def choose(
    where: Where,
    *,
    environ: Mapping[str, str],
    cwd: Path,
    which: Callable[[str], str | None],
) -> Destination:
    """The destination for ``where`` (see the module), given the process's environment
    variables, its working folder and a ``PATH`` lookup (``shutil.which``).

    Raises:
        UsageError: ``--python`` names nothing usable, ``VIRTUAL_ENV`` names a folder without
            an interpreter, ``--system`` finds no python on ``PATH``, or nothing was found.
    """
    if where.python is not None:
        return Destination(_interpreter(where.python, "--python"), "--python")
    if where.system:
        return Destination(_on_path(which, "--system"), "--system")
    active = environ.get("VIRTUAL_ENV", "")
    if active and not where.user:
        python = Path(active) / _BIN / _PYTHON
        if not python.exists():
            raise UsageError(
                f"VIRTUAL_ENV={active}: no {_BIN}/{_PYTHON} there",
                hint="activate a working virtual environment, or pass --python PATH",
            )
        return Destination(str(python.absolute()), "VIRTUAL_ENV")
    if not where.user:
        for folder in (cwd, *cwd.parents):
            python = folder / ".venv" / _BIN / _PYTHON
            if python.exists():
                return Destination(str(python.absolute()), ".venv")
    flag = next(
        (
            name
            for name, given in (
                ("--target", where.target is not None),
                ("--prefix", where.prefix is not None),
                ("--root", where.root is not None),
                ("--user", where.user),
            )
            if given
        ),
        None,
    )
    if flag is not None:
        return Destination(_on_path(which, flag), flag)
    if where.dry_run:
        return Destination(None, "safepip")
    raise UsageError(
        "no environment to install into: no --python, no active virtual environment "
        f"(VIRTUAL_ENV) and no .venv in {cwd} or above",
        hint="pass --python PATH (an interpreter or a venv), activate a venv, "
        "or --system for the first python3 on PATH",
    )


def _interpreter(given: str, flag: str) -> str:
    """The interpreter ``given`` names: itself, or ``bin/python`` of an environment folder."""
    path = Path(given)
    if path.is_dir():
        inner = path / _BIN / _PYTHON
        if not inner.exists():
            raise UsageError(
                f"{flag} {given}: is a folder without {_BIN}/{_PYTHON}",
                hint=f"pass an interpreter, for example {inner}",
            )
        path = inner
    return str(path.absolute())


def _on_path(which: Callable[[str], str | None], flag: str) -> str:
    found = which("python3") or which("python")
    if found is None:
        raise UsageError(
            f"{flag}: no python3 on PATH to install for",
            hint="pass --python PATH",
        )
    return str(Path(found).absolute())
