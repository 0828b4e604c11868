"""A ``pip`` command in an environment whose ``install`` goes through safepip.

Tools that run ``pip install`` themselves (build scripts, IDEs, notebooks' ``%pip``, installers
of plugins) then get vetted too. :func:`install` writes, in the environment's scripts folder, a
``/bin/sh`` script under each name pip's own launchers use there (``pip``, ``pip3``,
``pip3.11``): for ``install`` it runs ``<safepip's python> -I -m safepip install --python <that
environment's interpreter>`` with the remaining arguments (options given before ``install``
follow it, so ``pip -q install x`` works); every other command runs the launcher it replaced
(kept beside it as ``.pip.safepip-orig``), or ``<interpreter> -m pip`` when there was none.
:func:`remove` puts the originals back.

What a shim cannot catch (README says so): ``python -m pip install`` and any program that
imports pip or runs another pip executable; a tool that recreates the environment; pip
upgrading itself (``pip install -U pip`` goes through safepip, and must be on the list, but a
later ``ensurepip`` rewrites the launchers).

The environment's folders are learned with ``python -I -S`` (:func:`safepip.installed.environment`),
so no code of the environment runs.
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import shlex
import stat
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from safepip import installed
from safepip.errors import UsageError

#: The second line of every shim: how :func:`remove` knows a file is one.
MARKER: Final = "# safepip shim: `pip install` goes through safepip"
_NAMES: Final = re.compile(r"pip(\d+(\.\d+)?)?")
#: pip's options (before the command) that take a value: the word after them is not the command.
_VALUED: Final = (
    "--python --log --log-file --proxy --retries --timeout --exists-action --trusted-host "
    "--cert --client-cert --cache-dir --use-feature --use-deprecated --keyring-provider"
)

_TEMPLATE: Final = """#!/bin/sh
{marker}; every other command runs the real pip.
# Written by `safepip shim --python {target_shown}`; add `--remove` to that command to undo it.
command=""
skip=0
before=0
for arg in "$@"; do
    if [ "$skip" = 1 ]; then skip=0; before=$((before + 1)); continue; fi
    case "$arg" in
        {valued}) skip=1 ;;
        --*=*|-*) ;;
        *) command="$arg"; break ;;
    esac
    before=$((before + 1))
done
if [ "$command" = install ]; then
    # Options before `install` go after it: safepip's own parser reads them there.
    count=$#
    set -- "$@" install --python {target}
    index=0
    for arg in "$@"; do
        [ "$index" -ge "$count" ] && break
        [ "$index" -lt "$before" ] && set -- "$@" "$arg"
        index=$((index + 1))
    done
    index=0
    for arg in "$@"; do
        [ "$index" -ge "$count" ] && break
        [ "$index" -gt "$before" ] && set -- "$@" "$arg"
        index=$((index + 1))
    done
    shift "$count"
    exec {safepip} -I -m safepip "$@"
fi
if [ -x {original} ]; then
    exec {original} "$@"
fi
exec {target} -m pip "$@"
"""


@dataclass(frozen=True)
class Shimmed:
    """What :func:`install` or :func:`remove` did, in ``folder`` (the scripts folder)."""

    folder: Path
    names: tuple[str, ...]


def install(python: str, *, safepip_python: str, environ: Mapping[str, str]) -> Shimmed:
    """Put the shim in the scripts folder of the interpreter ``python``.

    Each existing launcher (``pip``, ``pip3``, ``pip3.X``) is kept as ``.<name>.safepip-orig``
    and replaced atomically; ``pip`` is written even where there was none. Running it twice
    rewrites the shims and keeps the originals.

    Raises:
        UsageError: ``python`` cannot be run, or its scripts folder cannot be written.
    """
    target = str(Path(python).absolute())
    folder = _scripts(target, environ)
    names = sorted({"pip", *(p.name for p in folder.iterdir() if _NAMES.fullmatch(p.name))})
    try:
        for name in names:
            path = folder / name
            backup = folder / f".{name}.safepip-orig"
            if _is_launcher_file(path) and not _is_shim(path):
                path.replace(backup)  # a symlink is kept as a symlink
            text = _TEMPLATE.format(
                marker=MARKER,
                target_shown=target.replace("\n", " "),
                valued="|".join(_VALUED.split()),
                target=shlex.quote(target),
                safepip=shlex.quote(safepip_python),
                original=shlex.quote(str(backup)),
            )
            _write(path, text)
    except OSError as exc:
        raise UsageError(
            f"cannot write the shim into {folder}: {exc.strerror or exc}",
            hint="run safepip shim as the user who owns that environment",
        ) from exc
    return Shimmed(folder, tuple(names))


def remove(python: str, *, environ: Mapping[str, str]) -> Shimmed:
    """Remove every shim from the scripts folder of ``python`` and put back the originals.

    Raises:
        UsageError: ``python`` cannot be run, or its scripts folder cannot be written.
    """
    folder = _scripts(str(Path(python).absolute()), environ)
    removed: list[str] = []
    try:
        for path in sorted(folder.iterdir()):
            if not (_NAMES.fullmatch(path.name) and _is_shim(path)):
                continue
            backup = folder / f".{path.name}.safepip-orig"
            if backup.is_symlink() or backup.exists():
                backup.replace(path)
            else:
                path.unlink()
            removed.append(path.name)
    except OSError as exc:
        raise UsageError(
            f"cannot remove the shim from {folder}: {exc.strerror or exc}",
            hint="run safepip shim --remove as the user who owns that environment",
        ) from exc
    return Shimmed(folder, tuple(removed))


def _scripts(python: str, environ: Mapping[str, str]) -> Path:
    scripts = installed.environment(python, environ=environ).folders.scripts
    if scripts is None or not Path(scripts).is_dir():
        raise UsageError(
            f"--python {python}: its scripts folder {scripts} does not exist",
            hint="pass the interpreter of a virtual environment, for example .venv/bin/python",
        )
    return Path(scripts)


def _is_launcher_file(path: Path) -> bool:
    return path.is_symlink() or path.exists()


def _is_shim(path: Path) -> bool:
    """True for a regular file whose second line is the shim's marker."""
    try:
        status = path.lstat()
        if not stat.S_ISREG(status.st_mode) or status.st_size > 64 * 1024:
            return False
        lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        return False
    return len(lines) > 1 and lines[1].startswith(MARKER)


def _write(path: Path, text: str) -> None:
    """Replace ``path`` with ``text``, mode 0755, atomically."""
    tmp = path.with_name(f".{path.name}.tmp-{secrets.token_hex(6)}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o755)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        tmp.chmod(0o755)
        tmp.replace(path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise
