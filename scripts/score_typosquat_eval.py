#!/usr/bin/env python3
"""Score the bundled typosquat check on a half of the evaluation set, and on benign names.

Prints recall overall, per family and per target-rank band, how often the right target is named,
and the flags on both bundled rankings and on a sample of other PyPI names. The set is built by
``scripts/build_typosquat_eval.py`` (outside the repo); tune on ``train.tsv``, report on
``test.tsv``.

Usage::

    python scripts/score_typosquat_eval.py EVAL_DIR/train.tsv [--benign FILE] [--misses]
"""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from pathlib import Path

from safepip.typosquat import TyposquatIndex, bundled_rankings

ROOT = Path(__file__).resolve().parent.parent
RANDOM_SAMPLE = ROOT / "tests" / "data" / "pypi-names-random-sample.txt"
BANDS = ((1, 100), (101, 1_000), (1_001, 5_000), (5_001, 15_000))


def names_of(path: Path) -> list[str]:
    """The names of a file, one a line, ``#`` comments skipped."""
    text = path.read_text(encoding="utf-8")
    return [ln.strip() for ln in text.splitlines() if ln.strip() and not ln.startswith("#")]


def band(rank: int) -> str:
    return next((f"{lo:,}-{hi:,}" for lo, hi in BANDS if lo <= rank <= hi), "15,001+")


def table(title: str, hits: Counter[str], totals: Counter[str]) -> None:
    print(f"\n{title:<16} {'cases':>6} {'caught':>7} {'recall':>7}")
    for k in sorted(totals, key=lambda k: -totals[k]):
        print(f"{k:<16} {totals[k]:>6} {hits[k]:>7} {hits[k] / totals[k]:>7.1%}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("tsv", type=Path)
    parser.add_argument("--benign", type=Path, default=RANDOM_SAMPLE)
    parser.add_argument("--misses", action="store_true", help="list misses and wrong targets")
    args = parser.parse_args()
    index = TyposquatIndex.bundled()
    rows = [ln.split("\t") for ln in args.tsv.read_text(encoding="utf-8").splitlines()[1:] if ln]
    fam_total: Counter[str] = Counter()
    fam_hit: Counter[str] = Counter()
    band_total: Counter[str] = Counter()
    band_hit: Counter[str] = Counter()
    right = 0
    for name, target, rank, family, *_ in rows:
        verdict = index.check(name)
        fam_total[family] += 1
        band_total[band(int(rank))] += 1
        if verdict.verdict == "typosquat":
            fam_hit[family] += 1
            band_hit[band(int(rank))] += 1
            right += verdict.similar_to == target
            if args.misses and verdict.similar_to != target:
                print(f"wrong target: {name} -> {verdict.similar_to} (want {target})")
        elif args.misses:
            print(f"miss: {name} ({target}, rank {rank}, {family})")
    hits = sum(fam_hit.values())
    print(
        f"{args.tsv}: recall {hits}/{len(rows)} ({hits / len(rows):.1%}); "
        f"right target {right}/{hits} ({right / max(hits, 1):.1%})"
    )
    table("family", fam_hit, fam_total)
    table("target rank", band_hit, band_total)
    for label, names in (
        *((f"ranking {i + 1}", ranking) for i, ranking in enumerate(bundled_rankings())),
        (str(args.benign), names_of(args.benign)),
    ):
        flagged = [(n, index.check(n)) for n in names]
        flagged = [(n, v) for n, v in flagged if v.verdict == "typosquat"]
        print(f"\nflags on {label}: {len(flagged)}/{len(names)} ({len(flagged) / len(names):.2%})")
        if args.misses:
            for n, v in flagged:
                print(f"  {n} -> {v.similar_to}: {v.reason}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
