"""Byte-compilation of the distributions pip just installed, on every core.

pip byte-compiles what it installs one file at a time: on a typical web application's closure
that is about half of its install time. safepip therefore runs pip with ``--no-compile``
(:func:`safepip.pip.install`) and compiles here instead, in parallel, to pip's end state:

- the same ``.pyc`` files: ``compileall.compile_file(path, force=True)`` run by the *target*
  interpreter (``.pyc`` files are version-specific), with its default optimisation level and
  invalidation mode and warnings ignored, for every installed ``.py`` file, from the same path
  string pip would pass; a file that does not compile (Python 2 syntax, say) is skipped silently;
- recorded as pip records them: a row ``path,,`` in the distribution's ``RECORD`` (path relative
  to the folder holding the ``.dist-info``), rows sorted, so ``pip uninstall`` removes them.

Only the ``.py`` files pip installed from each wheel are compiled: their destinations come from
the wheel's member list, mapped as pip maps them (:func:`_python_files`), because the installed
``RECORD`` also keeps the wheel's own rows for files pip never installed (``/etc/x.py``,
``../../x.py``); compiling those would write, and record for ``pip uninstall`` to delete, ``.pyc``
files anywhere. A ``.py`` file under ``<name>.data/headers`` (not seen in practice) is not
compiled: its folder depends on how the requirement spelled the project name.

The work runs in the target interpreter as ``python -I -S -W ignore -c <_bytecode_script.py>``:
``-S`` so that the ``.pth`` files and ``sitecustomize`` of the packages just installed do not run
(pip never runs them: it compiles in its own process, started before they existed). Without
``site``, a venv's interpreter reports the base installation's folders, so the folders pip
installs to are asked for before pip runs (:func:`target_layout`, ``python -I``, when only the
startup files already there run, as they do in pip's own process) and passed in. Both runs get
the environment pip itself gets (:func:`safepip.pip.scrubbed_environment`: ``SOURCE_DATE_EPOCH``,
which selects hash-based ``.pyc`` files, reaches the compile step as it reaches pip).
Distributions are named by the ``.dist-info`` folder of the vetted wheel pip installed, so
exactly those are compiled.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from safepip import process
from safepip.errors import BytecodeError, PipError
from safepip.pip import scrubbed_environment
from safepip.wheel import WheelError, dist_info_folder, member_names

__all__ = ["Compiled", "Layout", "compile_installed", "compiler", "layout_probe", "target_layout"]

_SCRIPT = "_bytecode_script.py"
#: The keys of a wheel's ``<name>.data`` folder whose ``.py`` files are compiled (pip's scheme keys
#: but ``headers``).
_DATA_KEYS = frozenset({"purelib", "platlib", "scripts", "data"})


@dataclass(frozen=True)
class Layout:
    """Where pip installs for the target interpreter, read before pip installs anything.

    ``sites`` are the folders that may hold an installed ``.dist-info`` (in search order), the
    others the folders of pip's scheme keys; with ``--target`` (``target``), every folder is the
    target folder but ``scripts`` and ``data``, which pip does not move there (``None``).
    """

    python: str
    target: bool
    sites: tuple[str, ...]
    purelib: str
    platlib: str
    scripts: str | None
    data: str | None

    def to_json(self) -> dict[str, object]:
        return {
            "target": self.target,
            "sites": list(self.sites),
            "purelib": self.purelib,
            "platlib": self.platlib,
            "scripts": self.scripts,
            "data": self.data,
        }


@dataclass(frozen=True)
class Compiled:
    """What :func:`compile_installed` did: distributions, ``.py`` files seen, ``.pyc`` written."""

    distributions: int
    sources: int
    compiled: int


def target_layout(
    python_target: str | None,
    target_dir: Path | None,
    *,
    environ: Mapping[str, str],
    log: Callable[[str], None] | None = None,
) -> Layout:
    """Where pip will install for ``python_target`` (default: safepip's interpreter).

    Call it before pip installs: it runs the target interpreter with ``site`` (``python -I``), so
    the startup files of the packages installed then would run. With ``target_dir`` nothing runs.

    Raises:
        PipError: the interpreter cannot be run or does not answer (nothing is installed yet).
    """
    with layout_probe(python_target, target_dir, environ=environ, log=log) as layout:
        return layout()


@contextlib.contextmanager
def layout_probe(
    python_target: str | None,
    target_dir: Path | None,
    *,
    environ: Mapping[str, str],
    log: Callable[[str], None] | None = None,
) -> Iterator[Callable[[], Layout]]:
    """:func:`target_layout`, started now and answered when the yielded function is called, so
    the target interpreter runs while the caller does other work.

    Call the function once, before pip installs (see :func:`target_layout`). A failure to start the
    interpreter is raised by the call too, not at the start: it comes where the answer is needed,
    after whatever the caller decides meanwhile. Leaving the block ends a probe still running.

    Raises:
        PipError: from the yielded function, as :func:`target_layout`.
    """
    python = str(Path(python_target).absolute()) if python_target is not None else sys.executable
    if target_dir is not None:
        folder = str(Path(target_dir).absolute())
        fixed = Layout(python, True, (folder,), folder, folder, None, None)
        yield lambda: fixed
        return
    script = resources.files("safepip").joinpath(_SCRIPT).read_text(encoding="utf-8")
    argv = [python, "-I", "-W", "ignore", "-c", script, "layout"]
    if log is not None:
        log(f"{python} -I -W ignore -c <safepip/{_SCRIPT}> layout")
    try:
        running = process.start(argv, env=scrubbed_environment(environ))
    except OSError as exc:
        failure = _layout_failure(python, f"cannot run it: {exc.strerror or exc}")
        failure.__cause__ = exc
    else:
        try:
            yield lambda: _layout_answer(python, running.wait())
        finally:
            running.stop()
        return

    def failed() -> Layout:
        raise failure

    yield failed


def _layout_answer(python: str, finished: process.Finished) -> Layout:
    """The :class:`Layout` the ``layout`` run of the script printed.

    Raises:
        PipError: it failed or printed something else.
    """
    if finished.returncode != 0:
        lines = [line.strip() for line in finished.stderr.splitlines() if line.strip()]
        raise _layout_failure(python, lines[-1] if lines else f"exit status {finished.returncode}")
    try:
        answer = json.loads(finished.stdout)
        sites = tuple(answer["sites"])
        folders = [answer[key] for key in ("purelib", "platlib", "scripts", "data")]
        if not all(isinstance(value, str) for value in (*sites, *folders)):
            raise TypeError("not a folder")
    except (ValueError, KeyError, TypeError) as exc:
        raise _layout_failure(python, f"unreadable answer {finished.stdout[:200]!r}") from exc
    return Layout(python, False, sites, *folders)


def compile_installed(
    wheels: Sequence[Path],
    layout: Layout,
    *,
    environ: Mapping[str, str],
    log: Callable[[str], None] | None = None,
) -> Compiled:
    """Byte-compile the installed distributions of ``wheels`` and record the ``.pyc`` files.

    ``wheels`` are the files pip just installed (their ``.dist-info`` folder names the installed
    distribution, their members the files to compile); ``layout`` is where pip installed them,
    from :func:`target_layout` called before pip ran.

    Raises:
        BytecodeError: a wheel cannot be read, or the compile run failed or crashed (the message
            says the packages are installed: they work without ``.pyc`` files).
    """
    if not wheels:
        return Compiled(0, 0, 0)
    with compiler(layout, environ=environ, log=log) as compile_wheels:
        return compile_wheels(wheels)


@contextlib.contextmanager
def compiler(
    layout: Layout,
    *,
    environ: Mapping[str, str],
    log: Callable[[str], None] | None = None,
) -> Iterator[Callable[[Sequence[Path]], Compiled]]:
    """:func:`compile_installed`, its interpreter started now: it starts and imports its modules
    while pip or uv installs, and reads its work only when the yielded function is called.

    Call the function once, after pip installed ``wheels``. Started before the install, the run
    sees none of it (``-S``: no ``site``, no ``.pth`` file) until it is handed its work. A
    failure to start the interpreter is raised by the call (as a :class:`BytecodeError`: the
    packages are installed by then). Leaving the block ends a run nobody handed work.

    Raises:
        BytecodeError: from the yielded function, as :func:`compile_installed`.
    """
    script = resources.files("safepip").joinpath(_SCRIPT).read_text(encoding="utf-8")
    argv = [layout.python, "-I", "-S", "-W", "ignore", "-c", script]
    try:
        running = process.start(argv, env=scrubbed_environment(environ), stdin=True)
    except OSError as exc:
        failure = _failure(f"cannot run {layout.python}: {exc.strerror or exc}")
        failure.__cause__ = exc
    else:
        try:
            yield lambda wheels: _compile(running, wheels, layout, log)
        finally:
            running.stop()
        return

    def failed(_: Sequence[Path]) -> Compiled:
        raise failure

    yield failed


def _compile(
    running: process.Running,
    wheels: Sequence[Path],
    layout: Layout,
    log: Callable[[str], None] | None,
) -> Compiled:
    """Hand the started compile run its work, wait for it, and read its summary.

    Raises:
        BytecodeError: a wheel cannot be read, or the run failed or crashed.
    """
    try:
        distributions = [_distribution(wheel) for wheel in wheels]
    except WheelError as exc:
        raise _failure(str(exc)) from exc
    request = {"layout": layout.to_json(), "distributions": distributions}
    if log is not None:
        log(
            f"{layout.python} -I -S -W ignore -c <safepip/{_SCRIPT}>: "
            f"{len(distributions)} distribution(s)"
        )
    finished = running.wait(json.dumps(request))
    if log is not None and finished.stderr.strip():
        log(finished.stderr.rstrip("\n"))
    if finished.returncode != 0:
        lines = [line.strip() for line in finished.stderr.splitlines() if line.strip()]
        raise _failure(lines[-1] if lines else f"exit status {finished.returncode}")
    try:
        summary = json.loads(finished.stdout)
        return Compiled(summary["distributions"], summary["sources"], summary["compiled"])
    except (ValueError, KeyError, TypeError) as exc:
        raise _failure(f"unreadable summary {finished.stdout[:200]!r}") from exc


def _distribution(wheel: Path) -> dict[str, object]:
    """The compile request's entry for ``wheel``: its ``.dist-info`` name and ``.py`` files.

    Raises:
        WheelError: not a readable zip, or not one top-level ``.dist-info`` folder.
    """
    names = member_names(wheel)  # one read of the zip's directory serves both
    return {"dist_info": dist_info_folder(wheel, names=names), "files": _python_files(names)}


def _python_files(names: Sequence[str]) -> list[tuple[str, str]]:
    """The ``.py`` files pip installs from a wheel of member ``names``: (scheme key or ``root``,
    path under it).

    As pip's ``_install_wheel`` maps a member: one under a top-level ``*.data`` folder,
    ``<x>.data/<key>/<path>``, goes to the folder of scheme key ``key`` (``scripts``: the scripts
    folder); any other goes to the folder that holds the ``.dist-info`` (``root``); the path is
    ``os.path.normpath`` of the member's. A member pip would refuse (a path out of its folder, an
    unknown key) is left out, as is a ``headers`` one.
    """
    found: set[tuple[str, str]] = set()
    for name in names:
        if name.endswith("/"):
            continue  # a folder
        normal = os.path.normpath(name)
        if name.split("/", 1)[0].endswith(".data"):
            parts = normal.split(os.sep, 2)
            if len(parts) != 3 or parts[1] not in _DATA_KEYS:
                continue
            key, relative = parts[1], parts[2]
        else:
            key, relative = "root", normal
        if relative.endswith(".py") and not _leaves_folder(relative):
            found.add((key, relative))
    return sorted(found)


def _leaves_folder(relative: str) -> bool:
    # Strings, as pip handles them (Path() would drop a trailing "/." and such).
    return os.path.isabs(relative) or relative.split(os.sep, 1)[0] == os.pardir  # noqa: PTH117 or relative.split(os.sep, 1)[0] == os.pardir


def _layout_failure(python: str, reason: str) -> PipError:
    return PipError(
        f"cannot ask {python} where pip installs (nothing was installed): "
        + " ".join(reason.split())[:300],
        hint="check that --python names a working Python interpreter",
    )


def _failure(reason: str) -> BytecodeError:
    return BytecodeError(
        "the vetted packages are installed, but byte-compiling them failed: "
        + " ".join(reason.split())[:300]
    )
