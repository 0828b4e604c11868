#!/usr/bin/env python3
"""Build the typosquat evaluation set from public malware records (kept OUTSIDE the repo).

The records are git snapshots of public repositories (bare git directories, read with
``git``); nothing they hold is committed to safepip, only this script. It writes ``train.tsv``
(the tuning half), ``test.tsv`` (the reporting half) and ``README.md`` to the output folder.

Sources (each optional, at least one needed):

* ``--malregistry``: ``lxyeternal/pypi_malregistry`` (one top-level folder per malicious PyPI
  project; the date is that of the commit that first added the folder);
* ``--ecosystems``: ``ecosyste-ms/typosquatting-dataset`` (``typosquats.csv``, rows with
  ``ecosystem == pypi``; the target it gives is checked by the same rule as below);
* ``--typomind``: ``ldklab/typomind-release``
  (``result-data/Malicious-Package-Archive-With-Campaign.csv``, rows with ``Ecosystem == pip``).

Popularity: the union of the bundled hugovk snapshot (``safepip/data/popular-names.txt``) and
the top-15,000 ranking of a PyPI package list (``--pypi-tsv``, column
``rank_among_15000_most_downloaded``); a name's rank is the better of its two ranks.

The target-matching rule (independent of ``safepip.typosquat``: broader, and blind to how
popular the malicious name is). A malicious name M (canonical, PEP 503) that is itself in
neither ranking is matched to the popular names T whose letters without separators (the *key*)
relate to M's key in one of these ways, checked in this order; the first way that finds any T
decides the family, and among its Ts the most popular is the target:

1. ``separator``: the same key (``python-dateutil`` / ``pythondateutil``);
2. ``reordered``: the same words in another order (``dateutil-python``);
3. ``visual``: the same after mapping ``0``→``o``, ``1``→``l``, ``rn``→``m``, ``vv``→``w``,
   ``i``/``1``→``l``;
4. ``transposition`` / ``doubling`` / ``omission`` / ``addition`` / ``substitution``: one
   edit of the key (the key of T at least 4 letters);
5. ``affix``: M's key is T's key with one affix before or after it: ``python``, ``python3``,
   ``py``, ``py3``, ``lib``, ``dev``, ``api``, ``sdk``, ``utils``, ``tools``, ``client``,
   ``plus``, ``pro``, ``new``, ``official``, a digit (T's key at least 4 letters);
6. ``two-edits``: two edits of the key (the key of T at least 7 letters).

A target the source names itself (ecosyste-ms, typomind) wins when it is among the matches.
Names with no match are left out: they are malware, but not lookalikes of a popular name.

The split: by *target*. Every variant imitating the same popular name is in the same half, so a
flood of ``requests`` lookalikes (one campaign) never sits in both; a name goes to ``test`` when
the first byte of sha256("safepip-typosquat-eval:" + target) is odd. Targets are the campaign
key because the records rarely say which campaign a name belongs to, and a campaign is almost
always many variants of a few targets.

Usage::

    python scripts/build_typosquat_eval.py --pypi-tsv PYPI_TSV \\
        [--malregistry GITDIR] [--ecosystems GITDIR] [--typomind GITDIR] [-o /work/typosquat-eval]
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import io
import subprocess
import sys
from collections import Counter, defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parent.parent
HUGOVK = ROOT / "safepip" / "data" / "popular-names.txt"
AFFIXES = (
    "python3",
    "python",
    "py3",
    "py",
    "lib",
    "dev",
    "api",
    "sdk",
    "utils",
    "tools",
    "client",
    "plus",
    "pro",
    "new",
    "official",
    *"0123456789",
)
VISUAL = (("0", "o"), ("1", "l"), ("i", "l"), ("rn", "m"), ("vv", "w"))
HEADER = ("name", "target", "target_rank", "family", "source", "date", "group")


@dataclass(frozen=True)
class Case:
    """One malicious name, its target and how it imitates it."""

    name: str
    target: str
    rank: int
    family: str
    source: str
    date: str


def git(gitdir: Path, *args: str) -> str:
    """Output of ``git --git-dir=gitdir args``; raises CalledProcessError on failure."""
    return subprocess.run(
        ["git", f"--git-dir={gitdir}", *args], check=True, capture_output=True, text=True
    ).stdout


def popular_ranks(pypi_tsv: Path) -> dict[str, int]:
    """Canonical popular name → best 1-based rank over the hugovk and the pypi.tsv rankings."""
    ranks: dict[str, int] = {}
    hugovk = [ln for ln in HUGOVK.read_text(encoding="utf-8").splitlines() if ln and ln[0] != "#"]
    for r, name in enumerate(hugovk, start=1):
        ranks.setdefault(canonicalize_name(name), r)
    with pypi_tsv.open(encoding="utf-8") as rows:
        header = next(rows).rstrip("\n").split("\t")
        col = header.index("rank_among_15000_most_downloaded")
        for row in rows:
            fields = row.rstrip("\n").split("\t")
            if len(fields) > col and fields[col].isdigit():
                c = canonicalize_name(fields[0])
                ranks[c] = min(ranks.get(c, 10**9), int(fields[col]))
    return ranks


def key(name: str) -> str:
    return name.replace("-", "")


def deletes(word: str, depth: int) -> set[str]:
    """``word`` with up to ``depth`` characters deleted (itself included)."""
    out = {word}
    frontier = {word}
    for _ in range(depth):
        frontier = {w[:i] + w[i + 1 :] for w in frontier for i in range(len(w))}
        out |= frontier
    return out


def osa(a: str, b: str) -> int:
    """Optimal-string-alignment distance."""
    d = list(range(len(b) + 1))
    prev2: list[int] = []
    for i in range(1, len(a) + 1):
        cur = [i] + [0] * len(b)
        for j in range(1, len(b) + 1):
            cost = a[i - 1] != b[j - 1]
            cur[j] = min(d[j] + 1, cur[j - 1] + 1, d[j - 1] + cost)
            if i > 1 and j > 1 and a[i - 1] == b[j - 2] and a[i - 2] == b[j - 1]:
                cur[j] = min(cur[j], prev2[j - 2] + 1)
        prev2, d = d, cur
    return d[-1]


def edit_family(m: str, t: str) -> str:
    """The name of the single edit turning key ``t`` into key ``m``."""
    if len(m) == len(t):
        diff = [i for i in range(len(m)) if m[i] != t[i]]
        return "transposition" if len(diff) == 2 else "substitution"
    if len(m) > len(t):
        i = next((i for i in range(len(t)) if m[i] != t[i]), len(t))
        return "doubling" if m[i] in (m[i - 1 : i] + m[i + 1 : i + 2]) else "addition"
    i = next((i for i in range(len(m)) if m[i] != t[i]), len(m))
    return "doubling" if t[i] in (t[i - 1 : i] + t[i + 1 : i + 2]) else "omission"


class Matcher:
    """The documented target-matching rule over the popular names."""

    def __init__(self, ranks: dict[str, int]) -> None:
        self.ranks = ranks
        self.by_key: dict[str, list[str]] = defaultdict(list)
        self.by_words: dict[tuple[str, ...], list[str]] = defaultdict(list)
        self.by_visual: dict[str, list[str]] = defaultdict(list)
        self.by_delete: dict[str, list[str]] = defaultdict(list)
        for t in ranks:
            k = key(t)
            self.by_key[k].append(t)
            self.by_words[tuple(sorted(t.split("-")))].append(t)
            self.by_visual[visual(k)].append(t)
            if len(k) >= 4:
                for d in deletes(k, 2 if len(k) >= 8 else 1):
                    self.by_delete[d].append(t)

    def match(self, m: str) -> list[tuple[str, str]]:
        """(family, target) candidates of the first way that matches, most popular first."""
        k = key(m)
        ways: list[tuple[str, list[str]]] = [
            ("separator", self.by_key.get(k, [])),
            ("reordered", self.by_words.get(tuple(sorted(m.split("-"))), [])),
            ("visual", self.by_visual.get(visual(k), [])),
        ]
        for family, candidates in ways:
            found = [t for t in candidates if t != m]
            if found:
                return [(family, t) for t in sorted(found, key=self.ranks.__getitem__)]
        near: dict[str, int] = {}
        for d in deletes(k, 2 if len(k) >= 7 else 1):
            for t in self.by_delete.get(d, ()):
                if t not in near:
                    near[t] = osa(k, key(t))
        one = sorted((t for t, n in near.items() if n == 1), key=self.ranks.__getitem__)
        if one:
            return [(edit_family(k, key(t)), t) for t in one]
        affixed = []
        for a in AFFIXES:
            for core in (
                k[len(a) :] if k.startswith(a) else None,
                k[: -len(a)] if k.endswith(a) else None,
            ):
                if core and len(core) >= 4:
                    affixed += [t for t in self.by_key.get(core, []) if t != m]
        if affixed:
            return [("affix", t) for t in sorted(set(affixed), key=self.ranks.__getitem__)]
        two = [t for t, n in near.items() if n == 2 and len(key(t)) >= 8]
        return [("two-edits", t) for t in sorted(two, key=self.ranks.__getitem__)]


def visual(k: str) -> str:
    for fake, real in VISUAL:
        k = k.replace(fake, real)
    return k


def malregistry(gitdir: Path) -> Iterator[tuple[str, str, str]]:
    """(name, date first added, None) for each top-level folder of the snapshot."""
    first: dict[str, str] = {}
    log = git(
        gitdir,
        "log",
        "--reverse",
        "--format=@%ad",
        "--date=short",
        "--name-only",
        "--diff-filter=A",
        "HEAD",
    )
    date = ""
    for line in log.splitlines():
        if line.startswith("@"):
            date = line[1:]
        elif "/" in line:
            first.setdefault(line.split("/", 1)[0], date)
    names = {
        ln for ln in git(gitdir, "ls-tree", "--name-only", "HEAD").splitlines() if ln[:1] != "."
    }
    for name in sorted(names):
        yield name, first.get(name, ""), ""


def ecosystems(gitdir: Path) -> Iterator[tuple[str, str, str]]:
    text = git(gitdir, "show", "HEAD:typosquats.csv")
    for row in csv.DictReader(io.StringIO(text)):
        if row["ecosystem"] == "pypi":
            yield row["malicious_package"], "", row["target_package"]


def typomind(gitdir: Path) -> Iterator[tuple[str, str, str]]:
    text = git(gitdir, "show", "HEAD:result-data/Malicious-Package-Archive-With-Campaign.csv")
    for row in csv.DictReader(io.StringIO(text)):
        if row["Ecosystem"] == "pip":
            d, mth, y = [*row["Detection Date"].split("/"), "", "", ""][:3]  # d/m/yy(yy)
            y = f"20{y}" if len(y) == 2 else y
            date = f"{y}-{int(mth):02d}-{int(d):02d}" if y and mth.isdigit() and d.isdigit() else ""
            target = row["Original Package Name"].split(" or ")[0].strip()
            yield row["Malicious Package Name"].strip(), date, target


def weak(case: Case) -> bool:
    """Whether the resemblance alone is too weak to call the name a lookalike of its target."""
    short = len(key(case.target)) <= 5 and case.family not in ("separator", "reordered", "visual")
    return short or case.family == "two-edits"


def corroborated(cases: dict[str, Case]) -> dict[str, Case]:
    """``cases`` less weak resemblances to a target that nothing else points at.

    A weak resemblance (one edit of a 4-5 letter name, or two edits) counts when the target is
    in the top 1,000, when the source itself names that target, or when at least 3 malicious
    names of the records match the same target (a campaign's flood of variants).
    """
    votes = Counter(c.target for c in cases.values())
    return {
        m: c
        for m, c in cases.items()
        if not weak(c) or c.rank <= 1000 or c.source != "malregistry" or votes[c.target] >= 3
    }


def group_is_test(target: str) -> bool:
    return hashlib.sha256(f"safepip-typosquat-eval:{target}".encode()).digest()[0] % 2 == 1


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pypi-tsv", type=Path, required=True)
    parser.add_argument("--malregistry", type=Path)
    parser.add_argument("--ecosystems", type=Path)
    parser.add_argument("--typomind", type=Path)
    parser.add_argument("-o", "--out", type=Path, default=Path("/work/typosquat-eval"))
    args = parser.parse_args()
    sources = [
        ("malregistry", args.malregistry, malregistry),
        ("ecosyste-ms", args.ecosystems, ecosystems),
        ("typomind", args.typomind, typomind),
    ]
    if not any(path for _, path, _ in sources):
        parser.error("give at least one of --malregistry, --ecosystems, --typomind")
    ranks = popular_ranks(args.pypi_tsv)
    matcher = Matcher(ranks)
    cases: dict[str, Case] = {}
    seen = unmatched = 0
    for label, path, read in sources:
        if path is None:
            continue
        for raw, date, given in read(path):
            m = canonicalize_name(raw)
            seen += 1
            if m in ranks or not m.isascii():
                continue
            found = matcher.match(m)
            if not found:
                unmatched += 1
                continue
            g = canonicalize_name(given) if given else ""
            family, target = next(((f, t) for f, t in found if t == g), found[0])
            old = cases.get(m)
            if old is None:
                cases[m] = Case(m, target, ranks[target], family, label, date)
            elif label not in old.source.split("+"):
                cases[m] = Case(
                    m,
                    old.target,
                    old.rank,
                    old.family,
                    f"{old.source}+{label}",
                    min(filter(None, (old.date, date)), default=""),
                )
    cases = corroborated(cases)
    args.out.mkdir(parents=True, exist_ok=True)
    halves: dict[str, list[Case]] = {"train": [], "test": []}
    for case in sorted(cases.values(), key=lambda c: (c.target, c.name)):
        halves["test" if group_is_test(case.target) else "train"].append(case)
    for half, rows in halves.items():
        with (args.out / f"{half}.tsv").open("w", encoding="utf-8") as f:
            f.write("\t".join(HEADER) + "\n")
            for c in rows:
                f.write(
                    f"{c.name}\t{c.target}\t{c.rank}\t{c.family}\t{c.source}\t{c.date}\t{c.target}\n"
                )
    fam = {h: Counter(c.family for c in rows) for h, rows in halves.items()}
    print(
        f"{seen} records, {len(cases)} lookalikes, {unmatched} without a popular lookalike target",
        file=sys.stderr,
    )
    for h, rows in halves.items():
        print(
            f"{h}: {len(rows)} names, {len({c.target for c in rows})} targets, {dict(fam[h])}",
            file=sys.stderr,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
