"""Run by the *target* interpreter: byte-compile installed distributions, record the ``.pyc`` files.

:mod:`safepip.bytecode` runs this file's text as ``python -I -S -W ignore -c TEXT`` (``-c``, not a
path: safepip may run from a zip, and ``spawn`` / ``forkserver`` workers then have no main module
to re-import). The target may be older than safepip and have nothing installed, so this uses the
standard library only and nothing newer than Python 3.7 (annotations are strings).

``-S``: ``site`` would run the ``.pth`` files and ``sitecustomize`` of the packages just installed,
which pip never does (it compiles in its own process, started before they existed). Without
``site`` a venv's interpreter reports the base installation's folders, so the folders pip installs
to are asked for *before* pip runs, by ``python -I -W ignore -c TEXT layout``: stdout
``{"purelib", "platlib", "scripts", "data": folder, "sites": [folders that may hold a
.dist-info]}``; only startup files that were there before the install run then, as in pip.

stdin: ``{"layout": {those folders, and "target": true for a --target folder, whose "scripts" and
"data" are null}, "distributions": [{"dist_info": name of the .dist-info folder, "files": [[scheme
key, path], ...]}]}``: the ``.py`` files pip installs from the wheel, a key being ``root`` (the
folder holding the .dist-info), ``purelib``, ``platlib``, ``scripts`` or ``data``, the path
relative to that key's folder as pip joins it. stdout: ``{"distributions": n, "sources": n,
"compiled": n}``. A distribution that cannot be found, or a RECORD that cannot be read or written,
ends the run with a non-zero status and the reason on stderr.

What pip does for each ``.py`` file it installed from the wheel, and so what this does (pip's
``_internal/operations/install/wheel.py``): ``compileall.compile_file(path, force=True,
quiet=True)`` with warnings ignored and the interpreter's own optimisation level and invalidation
mode; a file that does not compile is skipped silently; each ``.pyc`` written gets the RECORD row
``(path relative to the folder holding the .dist-info, "", "")``; rows are sorted and written by
``csv.writer``. Only those files: the installed RECORD also keeps the wheel's rows for files pip
never installed (``/etc/x.py``, ``../../x.py``), which are never compiled.
"""

# PTH: paths stay strings built as pip builds them, since a .pyc records the path it was compiled
# from. B905: zip(strict=) is Python 3.10; the target interpreter may be older.
# ruff: noqa: PTH101, PTH105, PTH108, PTH110, PTH113, PTH116, PTH117, PTH118, PTH120, PTH123, B905

from __future__ import annotations

import compileall
import contextlib
import csv
import functools
import importlib.util
import json
import os
import sys
import tempfile
from collections.abc import Iterable

#: Below this many files, starting worker processes costs more than it saves.
_SERIAL_LIMIT = 64
#: Chunks per worker: small enough to balance files of very different sizes, large enough that
#: inter-process traffic stays negligible.
_CHUNKS_PER_WORKER = 8
#: pip's scheme keys that a wheel's ``.data`` folder may install ``.py`` files to (``headers``
#: aside: safepip does not compile there).
_SCHEME_KEYS = ("purelib", "platlib", "scripts", "data")


def main() -> None:
    if sys.argv[1:] == ["layout"]:
        json.dump(_layout(), sys.stdout)
        return
    # safepip starts this run while the installer still runs and hands it its work afterwards:
    # the worker pool's modules (~30 ms of imports) are loaded meanwhile.
    _import_pool()
    request = json.load(sys.stdin)
    layout = request["layout"]
    inside_target = layout["target"]
    dirs = _unique(layout["sites"])
    folders: dict[str, str | None] = {key: layout[key] for key in _SCHEME_KEYS}
    jobs: list[tuple[str, str, list[list[str]], list[str]]] = []
    for distribution in request["distributions"]:
        lib, record = _locate(distribution["dist_info"], dirs)
        rows = _read(record)
        installed = _installed(distribution["files"], lib, folders)
        jobs.append((lib, record, rows, _sources(lib, rows, installed, inside_only=inside_target)))
    sources = _unique(path for _, _, _, paths in jobs for path in paths)
    compiled = dict(zip(sources, _compile_all(sources)))
    written = 0
    for lib, record, rows, paths in jobs:
        # A .pyc the wheel itself listed (with its hash) gets a second row, as pip gives it;
        # only an identical row is not repeated, so that a second run changes nothing.
        present = {tuple(row) for row in rows}
        added: list[tuple[str, ...]] = []
        for path in paths:
            pyc = importlib.util.cache_from_source(path)
            row = (_record_path(pyc, lib), "", "")
            if compiled[path] and os.path.exists(pyc):
                written += 1
                if row not in present:
                    present.add(row)
                    added.append(row)
        if added:
            # pip sorts all rows, and so would have placed these among the others.
            _write(record, sorted([tuple(row) for row in rows] + added))
    json.dump(
        {"distributions": len(jobs), "sources": len(sources), "compiled": written}, sys.stdout
    )


def _layout() -> dict[str, object]:
    """Where pip installs for this interpreter: its scheme's folders; purelib, platlib, site."""
    import site  # noqa: PLC0415 (imported here: with -S, importing site must not be needed)
    import sysconfig  # noqa: PLC0415

    paths = sysconfig.get_paths()
    extra: list[str] = getattr(site, "getsitepackages", list)()  # old virtualenv's site.py lacks it
    layout: dict[str, object] = {key: paths[key] for key in _SCHEME_KEYS}
    layout["sites"] = [paths["purelib"], paths["platlib"], *extra]
    return layout


def _unique(items: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(items))


def _locate(info: str, dirs: list[str]) -> tuple[str, str]:
    """(folder holding ``info``, its RECORD) for the first of ``dirs`` that has it."""
    for lib in dirs:
        record = os.path.join(lib, info, "RECORD")
        if os.path.isfile(record):
            return lib, record
    raise SystemExit("no {}/RECORD in {}".format(info, ", ".join(dirs)))


def _read(record: str) -> list[list[str]]:
    with open(record, newline="", encoding="utf-8") as file:
        return [row for row in csv.reader(file) if row]


def _installed(files: list[list[str]], lib: str, folders: dict[str, str | None]) -> set[str]:
    """The RECORD paths pip gives the ``.py`` files it installs from the wheel (``installed``).

    pip joins a wheel member's path to its scheme key's folder and records the result relative to
    ``lib`` (``_fs_to_record_path``); a key with no folder (scripts and data with ``--target``)
    names nothing here.
    """
    found = set()
    for key, relative in files:
        folder = lib if key == "root" else folders[key]
        if folder is not None:
            found.add(_record_path(os.path.join(folder, relative), lib))
    return found


def _sources(
    lib: str, rows: list[list[str]], installed: set[str], *, inside_only: bool
) -> list[str]:
    """The ``.py`` files pip installed, in pip's order (sorted RECORD paths).

    A RECORD row counts only if it is the path pip recorded for a file it installed from the
    wheel: pip keeps the wheel's rows for files it never installed (``/etc/x.py``,
    ``../../x.py``, ``pkg/./mod.py``), and compiling those would write, and record, ``.pyc``
    files outside the installation or twice. With ``--target``, pip wrote RECORD paths relative
    to a temporary folder, so a path leading out of the target folder (a ``.data/scripts`` file:
    ``../../bin/x.py``) no longer names what pip installed: it is skipped rather than followed out
    of the folder.
    """
    paths = []
    for relative in sorted({row[0] for row in rows} & installed):
        if inside_only and _leaves_folder(relative):
            continue
        path = os.path.join(lib, relative)  # the string pip compiles, hence the same co_filename
        if os.path.isfile(path):
            paths.append(path)
    return paths


def _leaves_folder(relative: str) -> bool:
    normal = os.path.normpath(relative)
    return os.path.isabs(normal) or normal.split(os.sep, 1)[0] == os.pardir


def _import_pool() -> None:
    """Import the process pool now; a platform without it compiles serially (see below)."""
    with contextlib.suppress(ImportError):
        import concurrent.futures.process  # noqa: F401, PLC0415


def _compile_all(paths: list[str]) -> list[bool]:
    """``compile_file`` on every path, on every core when there are enough of them."""
    # quiet=2 returns what quiet=True does; it only skips the messages pip sends to its debug log.
    compile_one = functools.partial(compileall.compile_file, force=True, quiet=2)
    workers = _cpu_count()
    if workers > 1 and len(paths) >= _SERIAL_LIMIT:
        try:
            from concurrent.futures import ProcessPoolExecutor  # noqa: PLC0415

            pool = ProcessPoolExecutor(workers)
        except (ImportError, NotImplementedError):  # a platform without working semaphores
            pass
        else:
            with pool:
                chunk = max(1, len(paths) // (workers * _CHUNKS_PER_WORKER))
                return list(pool.map(compile_one, paths, chunksize=chunk))
    return [compile_one(path) for path in paths]


def _cpu_count() -> int:
    """The CPUs this process may run on (a container's limit), not the machine's."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def _record_path(path: str, lib: str) -> str:
    """pip's ``_fs_to_record_path``: relative to ``lib`` when on the same drive, ``/``-separated."""
    if os.path.splitdrive(path)[0].lower() == os.path.splitdrive(lib)[0].lower():
        path = os.path.relpath(path, lib)
    return path.replace(os.path.sep, "/")


def _write(record: str, rows: list[tuple[str, ...]]) -> None:
    """Replace ``record`` atomically, keeping its permission bits (pip's: 0o666 & ~umask)."""
    mode = os.stat(record).st_mode & 0o777
    descriptor, temporary = tempfile.mkstemp(dir=os.path.dirname(record), prefix=".RECORD-")
    try:
        with os.fdopen(descriptor, "w", newline="", encoding="utf-8") as file:
            csv.writer(file).writerows(rows)
        os.chmod(temporary, mode)
        os.replace(temporary, record)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)
        raise


if __name__ == "__main__":
    main()
