#!/usr/bin/env python3
"""Regenerate ``safepip/data/popular-names.txt``, the typosquat check's popular names.

Source: "top-pypi-packages" by Hugo van Kemenade, https://github.com/hugovk/top-pypi-packages
(https://hugovk.github.io/top-pypi-packages/), the most-downloaded PyPI projects of the last 30
days, computed from the public PyPI download statistics on Google BigQuery. Download one of:

* ``top-pypi-packages.min.json`` / ``top-pypi-packages-30-days.min.json``:
  ``{"last_update": "...", "rows": [{"download_count": N, "project": "name"}, ...]}``;
* ``top-pypi-packages.csv``: columns ``download_count,project``, most downloaded first
  (``download_count`` may be missing: the row order is the rank);
* or, where the workplace ``env`` tool is installed, its ``packages/pypi.tsv``: tab-separated, with
  columns ``name`` and ``rank_among_15000_most_downloaded``.

Usage::

    python scripts/update_popular_names.py top-pypi-packages.min.json \\
        --source-note "hugovk/top-pypi-packages@<commit>" [--limit 15000] [-o OUT]

The output has one canonical (PEP 503) name a line, most popular first, after a ``#`` header that
names the source, the snapshot date and the number of names. Exits 2 on unreadable or malformed
input, with a message on stderr.
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import io
import json
import sys
from pathlib import Path

from packaging.utils import canonicalize_name

DEFAULT_OUT = Path(__file__).resolve().parent.parent / "safepip" / "data" / "popular-names.txt"
SOURCE_URL = "https://github.com/hugovk/top-pypi-packages"


class InputError(Exception):
    """The input file is not one of the documented formats."""


def names_from_json(text: str) -> tuple[list[str], str | None]:
    """Names in rank order and the ``last_update`` date from hugovk's JSON."""
    data = json.loads(text)
    rows = data.get("rows") if isinstance(data, dict) else None
    if not isinstance(rows, list):
        raise InputError('expected an object with a "rows" list')
    ordered = sorted(rows, key=lambda row: -int(row.get("download_count", 0)))
    return [str(row["project"]) for row in ordered], data.get("last_update")


def names_from_csv(text: str) -> list[str]:
    """Names from hugovk's CSV (``download_count,project``), in file order (= rank order)."""
    reader = csv.DictReader(io.StringIO(text))
    if reader.fieldnames is None or "project" not in reader.fieldnames:
        raise InputError('expected a CSV header with a "project" column')
    return [row["project"] for row in reader if row.get("project")]


def names_from_tsv(text: str) -> list[str]:
    """Names from the ``env`` tool's ``pypi.tsv``, by ``rank_among_15000_most_downloaded``."""
    reader = csv.DictReader(io.StringIO(text), delimiter="\t")
    fields = reader.fieldnames or []
    rank_col = "rank_among_15000_most_downloaded"
    name_col = "name" if "name" in fields else (fields[0] if fields else "")
    if rank_col not in fields:
        raise InputError(f'expected a TSV header with a "{rank_col}" column')
    ranked = [(int(row[rank_col]), row[name_col]) for row in reader if row.get(rank_col)]
    return [name for _, name in sorted(ranked)]


def load(path: Path) -> tuple[list[str], str | None]:
    """Names in rank order, and the snapshot date when the input records one."""
    text = path.read_text(encoding="utf-8")
    if path.suffix == ".json":
        return names_from_json(text)
    if path.suffix == ".tsv":
        return names_from_tsv(text), None
    return names_from_csv(text), None


def render(names: list[str], *, source_note: str, date: str, limit: int) -> str:
    """The text of popular-names.txt: header, then canonical names without duplicates."""
    seen: dict[str, None] = {}
    for name in names:
        seen.setdefault(canonicalize_name(name), None)
        if len(seen) >= limit:
            break
    header = [
        "# Popular PyPI project names for safepip's typosquat check, most downloaded first.",
        f"# Source: {SOURCE_URL} ({source_note}),",
        "# 30-day downloads from the public PyPI BigQuery dataset.",
        f"# Snapshot: {date}. Names: {len(seen)}. Regenerate: scripts/update_popular_names.py",
    ]
    return "\n".join([*header, *seen]) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("input", type=Path, help="top-pypi-packages JSON or CSV, or pypi.tsv")
    parser.add_argument("-o", "--output", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--limit", type=int, default=15_000, help="keep this many names")
    parser.add_argument("--source-note", default="", help="e.g. the commit of the download")
    parser.add_argument("--date", help="snapshot date, when the input does not record it")
    args = parser.parse_args(argv)
    try:
        names, date = load(args.input)
    except (OSError, UnicodeDecodeError, ValueError, KeyError, InputError) as exc:
        print(f"error: {args.input}: {exc}", file=sys.stderr)
        return 2
    if not names:
        print(f"error: {args.input}: no project names", file=sys.stderr)
        return 2
    when = args.date or date or dt.date.today().isoformat()
    text = render(
        names, source_note=args.source_note or args.input.name, date=when, limit=args.limit
    )
    args.output.write_text(text, encoding="utf-8")
    print(f"wrote {args.output}: {text.count(chr(10)) - 4} names", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
