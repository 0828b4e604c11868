"""Typosquat verdicts: does a project name imitate a much more popular one? (pure)

A name is suspicious when it is *rare* (not on the popular list, not allowed by the caller) and a
small, recognisable change turns it into a *popular* name: the families real PyPI attacks use.

* visual confusions (``djang0``, ``reqeusts`` is not one: see transpositions): ``0``/``o``,
  ``1``/``l``/``i``, ``rn``/``m``, ``vv``/``w``;
* separator games (``pythondateutil``, ``beautiful-soup4``);
* reordered words (``dateutil-python``);
* affixes added, dropped or swapped (``python3-dateutil``, ``colorama-py``, ``requests2``);
* adjacent letters swapped (``reqeusts``);
* one letter added, dropped (``urlib3``), doubled, or changed (``colourama``, ``reqursts``),
  with keyboard neighbours told apart from other letters.

Popularity is a rank (0 is the most downloaded): the best rank of a name in any bundled ranking
(hugovk's snapshot and the PyPI package list's top 15,000, merged). Each family has a rank
limit: the looser the resemblance, the more popular the imitated name must be before the
resemblance means anything (a random rare name is one letter away from *some* popular name
surprisingly often). For one slip the limit also depends on the kind of slip, where it falls
(start, inside, end) and the length of the popular name (``_EDIT_LIMITS``). Names that are
themselves popular in any ranking, and names the caller knows (the signed list,
``allow-names``), are never flagged; whether a name exists on PyPI plays no part.

Speed matters because ``safepip check`` runs in pre-commit hooks: set-up is a few dictionaries
built in one pass over the list, and every family is checked by generating the query's own
variants (a few dozen strings) and looking them up, except single edits, which use a small
pigeonhole index (see :class:`_EditIndex`) built on first use over the names popular enough to
be imitated that way.
"""

from __future__ import annotations

import functools
import itertools
import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Final, Literal

from packaging.utils import canonicalize_name

from safepip.errors import ConfigError
from safepip.files import read_regular

__all__ = ["NameVerdict", "TyposquatIndex", "bundled_rankings"]

# The bundled rankings, most popular first: hugovk's snapshot, then the PyPI package list's
# top-15,000. A name popular in either is never flagged, so that a project that became popular
# after one snapshot was taken is not called a lookalike of an older favourite.
_BUNDLED_FILES: Final = ("popular-names.txt", "popular-names-pypi.txt")

_MAX_NAMES_FILE_BYTES: Final = 64 * 1024 * 1024  # all of PyPI's ~600,000 names take ~10 MiB

# Rank limits (exclusive, 0-based, in the merged ranking of both bundled files) per family. A
# resemblance only counts when the imitated name is at least this popular. Tuned on the tuning
# half of the evaluation set built by scripts/build_typosquat_eval.py (recall) and on a random
# sample of PyPI names drawn with another seed than the test's (false positives); see
# tests/test_typosquat.py.
_LIMIT_STRONG: Final = 10_000  # visual confusion, separators, reordered words
_LIMIT_AFFIX: Final = 200  # python-/py/-py/... added to or swapped in a popular name
# ``python3-shodan``, ``python3-autopep8``: a project named after the language, with the popular
# name whole behind it, reads like a distribution's package of that project. Benign projects
# seldom take that shape (0 of 58,709 random names for ``python3``, 2 for ``python``), so it
# counts for less popular names than other affixes do, when the name behind is long enough to be
# a name rather than a word (``pythonpath``, ``python3-utils`` are not lookalikes of ``path``).
_LIMIT_AFFIX_PYTHON: Final = {
    "python3-": 20_000,
    "python3": 20_000,
    "python-": 5_000,
    "python": 5_000,
}
# A separator added (``beautiful-soup4``) to a name outside the top 100 is most often a project
# of its own spelled the other way (``bit-array``, ``flat-dict``, ``interval-tree``, ``easy-ocr``),
# so only the very top names count; removing or moving one keeps the strong limit.
_LIMIT_SEPARATOR_ADDED: Final = 100
_MIN_CORE_AFFIX_PYTHON: Final = 6
_LIMIT_TWO_EDITS: Final = 1_000  # two slips in one long name (``tensoflaw``)
# Two slips in an 8-9 letter name leave little of it, and reach word-like names of their own
# (``streamlog``, ``texttalk``, ``watchng``): there only the top names count (``requetses``).
_LIMIT_TWO_EDITS_SHORT: Final = 100
_SHORT_TWO_EDITS: Final = 10  # names shorter than this use the limit above
# Dropping an affix usually lands on another real project (``jenkins``, ``matplot``), and a
# version digit is how forks are named (``pkginfo2``), so for those only the very top names count:
# ``urllib`` for ``urllib3``, ``requests2``.
_LIMIT_AFFIX_DROPPED: Final = 100

# One slip (a letter swapped, doubled, dropped, added or changed): the rank limit by the kind of
# slip and the length of the popular name (4, 5, 6, 7, 8 or more characters). Among short names
# almost every name is one letter from a popular one, so there only the most imitated names
# (``numpy``, ``httpx``, ``cffi``) count; a swapped or doubled letter in a long name is almost
# never a project of its own, whatever the popularity, while a changed letter often is
# (``pedantic``, ``securo``).
_ANY: Final = 1 << 30
_EDIT_LIMITS: Final[dict[str, tuple[int, int, int, int, int]]] = {
    "swapped": (100, _ANY, _ANY, _ANY, _ANY),
    "doubled": (100, _ANY, _ANY, _ANY, _ANY),
    "dropped": (0, 100, 100, 1_000, 10_000),
    "plural": (0, 0, 2_500, 2_500, 5_000),
    # A letter added or changed inside the name reads as a slip (``customtkimter``); at the start
    # or the end it more often makes a word of its own (``kytest``, ``seleniumx``, ``schemai``).
    "changed": (0, 100, 100, 5_000, 5_000),
    "changed first": (0, 0, 0, 0, 0),
    "changed last": (0, 100, 100, 1_000, 1_000),
    "near": (0, 100, 2_500, 10_000, 10_000),  # a keyboard neighbour typed instead
    "near first": (0, 0, 0, 100, 100),
    "near last": (0, 100, 1_000, 2_500, 2_500),
    "added": (0, 0, 2_500, 10_000, 10_000),
    "added first": (0, 0, 0, 1_000, 1_000),
    "added last": (0, 0, 100, 1_000, 1_000),
}
_EDIT_INDEX_LIMIT: Final = max(max(limits) for limits in _EDIT_LIMITS.values())
_MIN_LEN_EDIT: Final = 4  # shorter popular names are never judged imitated by one slip


def _edit_limit(kind: str, length: int, at: int = 1, end: int = 2) -> int:
    """The rank limit of a slip of ``kind`` at index ``at`` of a name whose last index is ``end``.

    ``length`` is the popular name's. Kinds with a ``first`` or ``last`` variant use it for a
    slip at the start or the end.
    """
    where = " first" if at == 0 else " last" if at >= end else ""
    limits = _EDIT_LIMITS.get(kind + where, _EDIT_LIMITS[kind])
    return limits[min(max(length, 4), 8) - 4]


# Shorter names are left alone by the looser families.
_MIN_LEN_TWO_EDITS: Final = 8  # for two slips
_MIN_LEN_STRONG: Final = 4  # for visual confusions
_MIN_CORE_AFFIX: Final = 4  # what is left of a name once the affix is taken off


# (what the attacker writes, what the popular name has); both directions are listed on purpose:
# ``pyyaml`` → ``pyyami`` and ``jpype1`` → ``jpypel`` are both attacks.
_CONFUSIONS: Final = (
    ("0", "o"),
    ("o", "0"),
    ("1", "l"),
    ("l", "1"),
    ("1", "i"),
    ("i", "1"),
    ("l", "i"),
    ("i", "l"),
    ("rn", "m"),
    ("m", "rn"),
    ("vv", "w"),
    ("w", "vv"),
)

# Affixes of real attacks (``python3-dateutil``, ``py-requests``, ``requests-py``, ``urllib4``
# is an edit): checked longest first so that ``python3-`` wins over ``py``.
_PREFIXES: Final = ("python3-", "python-", "python3", "python", "py-", "py", "lib-", "lib")
_SUFFIXES: Final = ("-python3", "-python", "-py3", "-py", "py", "-lib", "lib", "-dev", "2", "3")

_QWERTY_ROWS: Final = ("1234567890", "qwertyuiop", "asdfghjkl", "zxcvbnm")

_NAME_RE: Final = re.compile(r"^([A-Z0-9]|[A-Z0-9][A-Z0-9._-]*[A-Z0-9])$", re.IGNORECASE)
# The characters of a block of names, one a line (see ``_parse_names``), and what no line may
# start or end with.
_NAMES_BLOCK_RE: Final = re.compile(r"[A-Za-z0-9._\n-]*")
_BAD_LINE_EDGES: Final = ("\n.", "\n_", "\n-", ".\n", "_\n", "-\n")
_DASH_RUN_RE: Final = re.compile(r"-{2,}")


def _keyboard_neighbours() -> dict[str, frozenset[str]]:
    """Map each key of a QWERTY keyboard to the keys around it (same row and the rows next)."""
    position = {ch: (r, c) for r, row in enumerate(_QWERTY_ROWS) for c, ch in enumerate(row)}
    near: dict[str, set[str]] = {ch: set() for ch in position}
    for a, (ra, ca) in position.items():
        for b, (rb, cb) in position.items():
            # Rows are staggered by about half a key, so the row below is shifted left.
            if a != b and abs(ra - rb) <= 1 and -1 <= cb - ca + (rb - ra) * 0.5 <= 1:
                near[a].add(b)
    return {ch: frozenset(keys) for ch, keys in near.items()}


_NEAR_KEYS: Final = _keyboard_neighbours()


@dataclass(frozen=True)
class NameVerdict:
    """The verdict on one project name.

    ``name`` is canonical (PEP 503). ``similar_to`` and ``reason`` are set when the verdict is
    ``typosquat``: the popular name imitated, and the change in plain words.
    """

    name: str
    verdict: Literal["ok", "typosquat"]
    similar_to: str | None = None
    reason: str | None = None

    def to_json(self) -> dict[str, str | None]:
        """The verdict as the JSON object of ``safepip names --format json``."""
        return {
            "name": self.name,
            "verdict": self.verdict,
            "similar_to": self.similar_to,
            "reason": self.reason,
        }


@dataclass(frozen=True)
class _Match:
    """A popular name the query resembles: its rank, and the resemblance in plain words."""

    target: str
    rank: int
    reason: str


class TyposquatIndex:
    """Popular project names, ready to tell whether another name imitates one of them."""

    def __init__(self, popular: Sequence[str]) -> None:
        """Index ``popular`` names, most popular first (duplicates keep their first rank).

        Names are canonicalised here; nothing is raised for odd names, which simply never match.
        """
        names = _canonical_names(popular)
        rank = dict(zip(names, range(len(names)), strict=True))
        if len(rank) < len(names):  # duplicates: ranks count distinct names only
            rank = {}
            for name in names:
                rank.setdefault(name, len(rank))
        self._rank = rank
        self._names = tuple(rank)
        # Without separators, ``python-dateutil`` and ``pythondateutil`` meet; the most popular
        # name keeps the key (the comprehension runs from the least popular, the last write
        # wins). Only names within the separators' rank limit can ever be imitated that way.
        strong = self._names[:_LIMIT_STRONG]
        self._unseparated = {
            name.replace("-", ""): r
            for r, name in zip(range(len(strong) - 1, -1, -1), reversed(strong), strict=True)
            if "-" in name
        }
        self._edit_index: _EditIndex | None = None
        self._affix_index: dict[str, int] | None = None
        self._two_edit_index: dict[tuple[str, int], list[str]] | None = None

    def __len__(self) -> int:
        return len(self._names)

    @classmethod
    def bundled(cls) -> TyposquatIndex:
        """The index of both bundled rankings (see ``_BUNDLED_FILES``), cached for the process.

        Raises :class:`ConfigError` if the packaged file is missing or empty (a broken install).
        """
        return _bundled_index()

    @classmethod
    def from_rankings(cls, rankings: Sequence[Sequence[str]]) -> TyposquatIndex:
        """An index of several rankings merged: each name at its best rank in any of them.

        Names are canonicalised; nothing is raised.
        """
        return cls(_merged(rankings))

    @classmethod
    def from_file(cls, path: Path) -> TyposquatIndex:
        """An index of the names in ``path``: one a line, most popular first, ``#`` comments.

        Raises :class:`ConfigError` naming ``path`` when it cannot be read, is not a regular file
        (a FIFO would block), is larger than 64 MiB, is not UTF-8, holds something that is not a
        project name, or holds no name at all.
        """
        what = "popular-names file"
        data = read_regular(path, what=what, max_bytes=_MAX_NAMES_FILE_BYTES).data
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise ConfigError(
                f"{what} {path}: cannot read it: {exc}",
                hint="set `popular-names` to a UTF-8 file, one project name a line",
            ) from exc
        return cls(_parse_names(text, str(path)))

    def check(self, name: str, *, known: Iterable[str] = ()) -> NameVerdict:
        """The verdict on ``name``; names in ``known`` (any spelling) are never flagged.

        Non-ASCII names get ``ok``: they are refused before this check, by the caller. Nothing
        is raised.
        """
        canonical = canonicalize_name(name)
        if not name.isascii() or canonical in self._rank:
            return NameVerdict(canonical, "ok")
        if canonical in {canonicalize_name(k) for k in known}:
            return NameVerdict(canonical, "ok")
        best = min(self._matches(canonical), key=lambda m: m.rank, default=None)
        if best is None:
            return NameVerdict(canonical, "ok")
        return NameVerdict(canonical, "typosquat", best.target, best.reason)

    # -- families ---------------------------------------------------------------------------

    def _matches(self, name: str) -> Iterator[_Match]:
        """Every popular name that ``name`` (canonical, not popular) resembles closely enough."""
        yield from self._visual(name)
        yield from self._separators(name)
        yield from self._reordered(name)
        yield from self._swapped(name)
        yield from self._affixes(name)
        yield from self._edits(name)
        yield from self._two_edits(name)

    def _popular(self, candidate: str, limit: int) -> int | None:
        """The rank of ``candidate`` if it is popular within ``limit``, else ``None``."""
        r = self._rank.get(candidate)
        return r if r is not None and r < limit else None

    def _visual(self, name: str) -> Iterator[_Match]:
        """``djang0`` → ``django``: one kind of look-alike, replaced once or everywhere."""
        if len(name) < _MIN_LEN_STRONG:
            return
        rank = self._rank
        for fake, real in _CONFUSIONS:
            if fake not in name:
                continue
            for candidate in _replacements(name, fake, real):
                r = rank.get(candidate)
                if r is not None and r < _LIMIT_STRONG:
                    yield _Match(candidate, r, f"`{fake}` for `{real}`")

    def _separators(self, name: str) -> Iterator[_Match]:
        """``pythondateutil``, ``beautiful-soup4``: the same letters, separators moved."""
        bare = name.replace("-", "")
        r = self._popular(bare, _LIMIT_STRONG) if bare != name else None
        if r is None:
            r = self._unseparated.get(bare)
            if r is None or r >= _LIMIT_STRONG:
                return
        target = self._names[r]
        if target == name:
            return
        have, want = name.count("-"), target.count("-")
        if have > want and r >= _LIMIT_SEPARATOR_ADDED:
            return
        if have < want:
            reason = "separator removed" if want - have == 1 else "separators removed"
        elif have > want:
            reason = "separator added" if have - want == 1 else "separators added"
        else:
            reason = "separator moved"
        yield _Match(target, r, reason)

    def _reordered(self, name: str) -> Iterator[_Match]:
        """``dateutil-python`` → ``python-dateutil``: the same words in another order."""
        words = name.split("-")
        if not 2 <= len(words) <= 4:  # 4 words: 23 orders to try; more is not worth it
            return
        for order in itertools.permutations(words):
            candidate = "-".join(order)
            if candidate != name:
                r = self._popular(candidate, _LIMIT_STRONG)
                if r is not None:
                    yield _Match(candidate, r, "words reordered")

    def _swapped(self, name: str) -> Iterator[_Match]:
        """``reqeusts`` → ``requests``: two adjacent characters swapped."""
        if len(name) < _MIN_LEN_EDIT:
            return
        rank = self._rank
        for i in range(len(name) - 1):
            a, b = name[i], name[i + 1]
            if a == b or "-" in (a, b):
                continue
            candidate = name[:i] + b + a + name[i + 2 :]
            r = rank.get(candidate)
            if r is not None and r < _edit_limit("swapped", len(candidate)):
                yield _Match(candidate, r, f"`{a}{b}` for `{b}{a}` (letters swapped)")

    def _affixes(self, name: str) -> Iterator[_Match]:
        """``python3-dateutil``, ``requests-py``, ``urllib``: an affix added, swapped, dropped."""
        affix_index = self._affixes_by_core()
        for core, added in _cores(name):
            r = self._popular(core, _affix_limit(added, core))
            if r is not None:
                yield _Match(core, r, f"{added} added")
            r = affix_index.get(core)
            if r is not None and self._names[r] != name and not _is_version(added):
                target = self._names[r]
                dropped = next(a for c, a in _cores(target) if c == core)
                yield _Match(target, r, f"{dropped} replaced by {added}")
        r = affix_index.get(name)
        if r is not None and r < _LIMIT_AFFIX_DROPPED:
            target = self._names[r]
            dropped = next(a for c, a in _cores(target) if c == name)
            if "prefix" not in dropped:  # ``mssql``, ``github``: shorter names are projects too
                yield _Match(target, r, f"{dropped} dropped")

    def _affixes_by_core(self) -> dict[str, int]:
        """Popular names within the affix limit, keyed by what is left without their affix."""
        if self._affix_index is None:
            index: dict[str, int] = {}
            for name in self._names[:_LIMIT_AFFIX]:
                for core, _ in _cores(name):
                    index.setdefault(core, self._rank[name])
            self._affix_index = index
        return self._affix_index

    def _edits(self, name: str) -> Iterator[_Match]:
        """One character added, dropped or changed, judged by how natural the slip is."""
        if self._edit_index is None:
            # Shorter names are never judged imitated by one edit (see ``_describe_edit``).
            self._edit_index = _EditIndex(
                [n for n in self._names[:_EDIT_INDEX_LIMIT] if len(n) >= _MIN_LEN_EDIT]
            )
        for target in self._edit_index.within_one(name):
            r = self._rank[target]
            slip = _describe_edit(name, target)
            if slip is not None and r < slip[1]:
                yield _Match(target, r, slip[0])

    def _two_edits(self, name: str) -> Iterator[_Match]:
        """``requetses``, ``colouramas``: two slips in a long name imitating a top name."""
        if self._two_edit_index is None:
            index: dict[tuple[str, int], list[str]] = {}
            for target in self._names[:_LIMIT_TWO_EDITS]:
                short = len(target) < _SHORT_TWO_EDITS
                if len(target) >= _MIN_LEN_TWO_EDITS and not (
                    short and self._rank[target] >= _LIMIT_TWO_EDITS_SHORT
                ):
                    index.setdefault((target[:3], len(target)), []).append(target)
            self._two_edit_index = index
        # Both slips after the first three characters: attackers keep the start recognisable,
        # and requiring it keeps this family from matching unrelated long names. Two slips
        # change the length by two at most.
        start, length = name[:3], len(name)
        for n in range(max(length - 2, _MIN_LEN_TWO_EDITS), length + 3):
            for target in self._two_edit_index.get((start, n), ()):
                # ``markdown-it-pyrs``: a longer name that merely extends a popular one is a
                # project of its own, not a slip; and digits are version families.
                if name.startswith(target) or target.startswith(name):
                    continue
                if _osa_distance(name, target, 2) != 2 or _short_word_changed(name, target):
                    continue
                if not any(ch.isdigit() for ch in _diff_chars(name, target)):
                    yield _Match(target, self._rank[target], "two letters changed")


class _EditIndex:
    """Names reachable from a query by one insertion, deletion or substitution.

    Pigeonhole: one edit leaves either the first half or the second half of the popular name
    intact, at a known place in the query (the start, or the end). So each name is stored under
    its length and its two halves, and a query of length ``n`` looks up 6 keys (lengths
    ``n-1..n+1``), then verifies the few candidates. Building it costs two dictionary entries a
    name, against ``len(name)`` for a deletion neighbourhood.
    """

    def __init__(self, names: Sequence[str]) -> None:
        halves: dict[tuple[int, bool, str], list[str]] = {}
        for name in names:
            n = len(name)
            h = n // 2
            halves.setdefault((n, True, name[:h]), []).append(name)
            halves.setdefault((n, False, name[h:]), []).append(name)
        self._halves = halves

    def within_one(self, query: str) -> set[str]:
        """Indexed names at exactly one insertion, deletion or substitution from ``query``."""
        found: set[str] = set()
        for n in (len(query) - 1, len(query), len(query) + 1):
            if n < 1:
                continue
            h = n // 2
            for key in ((n, True, query[:h]), (n, False, query[len(query) - (n - h) :])):
                for name in self._halves.get(key, ()):
                    if name != query and _one_edit_apart(query, name):
                        found.add(name)
        return found


def _one_edit_apart(a: str, b: str) -> bool:
    """Whether one insertion, deletion or substitution turns ``a`` into ``b``."""
    if len(a) > len(b):
        a, b = b, a
    if len(b) - len(a) > 1:
        return False
    i = 0
    while i < len(a) and a[i] == b[i]:
        i += 1
    if len(a) == len(b):
        return a[i + 1 :] == b[i + 1 :]
    return a[i:] == b[i + 1 :]


def _osa_distance(a: str, b: str, limit: int) -> int:
    """Optimal-string-alignment distance of ``a`` and ``b``, or ``limit + 1`` once beyond it."""
    if abs(len(a) - len(b)) > limit:
        return limit + 1
    # The common prefix and suffix cost nothing: only the middles need the quadratic table.
    i = 0
    while i < min(len(a), len(b)) and a[i] == b[i]:
        i += 1
    j = 0
    while j < min(len(a), len(b)) - i and a[-1 - j] == b[-1 - j]:
        j += 1
    a, b = a[i : len(a) - j], b[i : len(b) - j]
    if limit == 2 and len(a) + len(b) > 4:
        # Middles this long are beyond one edit, and within two only with one edit at each end
        # (their first and last characters differ): a few comparisons instead of the table.
        return 2 if _edited_at_both_ends(a, b) else 3
    # Only cells within ``limit`` of the diagonal can stay within ``limit``: the others are
    # left at ``over`` (a banded table), which keeps long names cheap.
    over = limit + 1
    before: list[int] = []
    previous = [min(j, over) for j in range(len(b) + 1)]
    for i in range(1, len(a) + 1):
        current = [over] * (len(b) + 1)
        if i <= limit:
            current[0] = i
        for j in range(max(1, i - limit), min(len(b), i + limit) + 1):
            cost = a[i - 1] != b[j - 1]
            best = min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + cost)
            if i > 1 and j > 1 and a[i - 1] == b[j - 2] and a[i - 2] == b[j - 1]:
                best = min(best, before[j - 2] + 1)
            current[j] = min(best, over)
        if min(current) > limit:
            return over
        before, previous = previous, current
    return min(previous[-1], over)


# One edit at the start or the end of two strings, as (length taken from a, from b): a character
# changed, dropped, added, or two swapped.
_END_EDITS: Final = ((1, 1), (1, 0), (0, 1), (2, 2))


def _edited_at_both_ends(a: str, b: str) -> bool:
    """Whether one edit at the start and one at the end turn ``a`` into ``b``, the rest equal."""
    for sa, sb in _END_EDITS:
        if sa == 2 and a[:2] != b[1::-1]:
            continue
        for ea, eb in _END_EDITS:
            if ea == 2 and a[-2:] != b[:-3:-1]:
                continue
            inner_a, inner_b = len(a) - sa - ea, len(b) - sb - eb
            if inner_a == inner_b >= 0 and a[sa : sa + inner_a] == b[sb : sb + inner_b]:
                return True
    return False


def _short_word_changed(name: str, target: str) -> bool:
    """Whether the first difference falls in a word of ``target`` under 5 letters.

    Two changes in a short word rewrite the word (``apache-airflow-providers-fab`` / ``-ydb``):
    that is another project of a family, not a slip of the fingers.
    """
    i = 0
    while i < min(len(name), len(target)) and name[i] == target[i]:
        i += 1
    start = target.rfind("-", 0, i) + 1
    end = target.find("-", i)
    return (len(target) if end < 0 else end) - start < 5


def _diff_chars(a: str, b: str) -> str:
    """The characters of ``a`` and ``b`` outside their common prefix and suffix."""
    i = 0
    while i < min(len(a), len(b)) and a[i] == b[i]:
        i += 1
    j = 0
    while j < min(len(a), len(b)) - i and a[-1 - j] == b[-1 - j]:
        j += 1
    return a[i : len(a) - j] + b[i : len(b) - j]


def _describe_edit(name: str, target: str) -> tuple[str, int] | None:
    """The slip turning ``target`` into ``name`` (one edit apart), and its rank limit.

    ``None`` when the slip is not a typing mistake worth reporting: a digit added or dropped
    (digit affixes are judged by :meth:`TyposquatIndex._affixes`), a separator (judged by
    :meth:`TyposquatIndex._separators`), or a name too short for the resemblance to mean anything.
    """
    i = 0
    while i < min(len(name), len(target)) and name[i] == target[i]:
        i += 1
    if len(name) == len(target):
        return _describe_change(name, target, i)
    if len(name) > len(target):  # a character added at i
        return _describe_length_change(name, i, len(target), "added", "doubled")
    return _describe_length_change(target, i, len(target), "dropped", "made single")


def _describe_length_change(
    longer: str, i: int, length: int, what: str, doubled: str
) -> tuple[str, int] | None:
    """A character of ``longer`` at ``i`` added or dropped, in a popular name of ``length``."""
    ch = longer[i]
    if ch.isdigit() or ch == "-":
        return None
    if ch in (longer[i - 1 : i] + longer[i + 1 : i + 2]):
        reason = f"`{ch}` doubled" if what == "added" else f"doubled `{ch}` made single"
        return reason, _edit_limit("doubled", length)
    if ch == "s" and longer[i + 1 : i + 2] in ("", "-"):  # ``torchvisions``, ``typing-extension``
        return f"plural `s` {what}", _edit_limit("plural", length)
    return f"`{ch}` {what}", _edit_limit(what, length, i, len(longer) - 1)


def _describe_change(name: str, target: str, i: int) -> tuple[str, int] | None:
    """The slip of writing ``name[i]`` for ``target[i]``, and its rank limit."""
    fake, real = name[i], target[i]
    if "-" in (fake, real):
        return None
    near = fake in _NEAR_KEYS.get(real, ())
    if real.isdigit():
        # ``s4transfer`` is a slip; ``pyqt6`` and ``cu11`` are families: a digit counts only
        # between letters, next to the real one on the keyboard.
        inside = name[i - 1 : i].isalpha() and name[i + 1 : i + 4].isalpha() and i + 4 <= len(name)
        near = near and fake.isdigit() and inside
    elif fake.isdigit():  # ``r4quests``, ``req7ests``: the row above
        near = near and real.isalpha()
    if near:
        limit = _edit_limit("near", len(target), i, len(target) - 1)
        return f"`{fake}` for `{real}` (keyboard neighbours)", limit
    if fake.isdigit() or real.isdigit():
        return None
    limit = _edit_limit("changed", len(target), i, len(target) - 1)
    return f"`{fake}` for `{real}` (one letter changed)", limit


def _replacements(name: str, fake: str, real: str) -> Iterator[str]:
    """``name`` with ``fake`` replaced by ``real``: at each single place, then everywhere."""
    start = name.find(fake)
    if start < 0:
        return
    seen = 0
    while start >= 0:
        seen += 1
        yield name[:start] + real + name[start + len(fake) :]
        start = name.find(fake, start + 1)
    if seen > 1:
        yield name.replace(fake, real)


def _cores(name: str) -> Iterator[tuple[str, str]]:
    """What is left of ``name`` without one prefix and/or one suffix, with the affix described.

    Yields nothing for a name without affixes, or whose remainder would be too short to be
    anything but noise (``py`` + ``pi``).
    """
    heads = [("", name)]
    if name.startswith(_PREFIXES):  # one call first: most names have no affix at all
        heads += [(p, name[len(p) :]) for p in _PREFIXES if name.startswith(p)]
    for prefix, rest in heads:
        tails = [("", rest)]
        if rest.endswith(_SUFFIXES):
            tails += [(s, rest[: -len(s)]) for s in _SUFFIXES if rest.endswith(s)]
        for suffix, remainder in tails:
            core = remainder.strip("-")
            if (prefix or suffix) and len(core) >= _MIN_CORE_AFFIX:
                yield core, _affix_words(prefix, suffix)


def _affix_limit(added: str, core: str) -> int:
    """The rank limit for the popular name ``core`` with the affix ``added`` (as words) on it."""
    if _is_version(added):
        return _LIMIT_AFFIX_DROPPED
    if added.startswith("`python") and " and " not in added and len(core) >= _MIN_CORE_AFFIX_PYTHON:
        return _LIMIT_AFFIX_PYTHON.get(added[1:].split("`", 1)[0], _LIMIT_AFFIX)
    return _LIMIT_AFFIX


def _is_version(affix: str) -> bool:
    """Whether the affix words describe a version digit: `2` or `3` as a suffix."""
    return affix.startswith(("`2`", "`3`"))


def _affix_words(prefix: str, suffix: str) -> str:
    """``python-`` prefix / ``-py`` suffix / both, as words."""
    parts = []
    if prefix:
        parts.append(f"`{prefix}` prefix")
    if suffix:
        parts.append(f"`{suffix}` suffix")
    return " and ".join(parts)


def _canonical_names(names: Sequence[str]) -> list[str]:
    """``canonicalize_name`` of each name, in order, done on all of them at once.

    The bundled list has 15,000 names: one pass over their joined text is several times faster
    than a call a name, and gives the same result, since no run of separators crosses a line.
    """
    names = tuple(names)
    if any("\n" in name for name in names):
        return [canonicalize_name(name) for name in names]
    joined = "\n".join(names).lower().replace("_", "-").replace(".", "-")
    if "--" in joined:
        joined = _DASH_RUN_RE.sub("-", joined)
    return joined.split("\n") if names else []


def _parse_names(text: str, origin: str) -> list[str]:
    """Names from the text of a popular-names file; ``origin`` names the file in errors.

    Raises :class:`ConfigError` on a line that is not a project name, or when there is none.
    """
    # The common case, and the bundled file: `#` comment lines, then one bare name a line. The
    # whole block of names is checked at once; on any doubt, the careful loop below decides.
    start = 0
    while text.startswith("#", start):
        start = text.find("\n", start) + 1 or len(text)
    header, body = text[:start], text[start:]
    padded = f"\n{body}\n"
    if (
        all(line.startswith("#") for line in header.splitlines())
        and _NAMES_BLOCK_RE.fullmatch(body)
        and not any(edge in padded for edge in _BAD_LINE_EDGES)
    ):
        names = body.split()
        if names:
            return names
    return _parse_names_slowly(text.splitlines(), origin)


def _parse_names_slowly(lines: list[str], origin: str) -> list[str]:
    """:func:`_parse_names` a line at a time, to report the first bad line precisely."""
    names: list[str] = []
    for number, raw in enumerate(lines, start=1):
        line = raw.split("#", 1)[0].strip() if "#" in raw else raw.strip()
        if not line:
            continue
        if not _NAME_RE.match(line):
            raise ConfigError(
                f"popular-names file {origin}:{number}: not a project name: {line!r}",
                hint="one project name a line, most popular first; `#` starts a comment",
            )
        names.append(line)
    if not names:
        raise ConfigError(
            f"popular-names file {origin}: holds no project name",
            hint="one project name a line, most popular first; `#` starts a comment",
        )
    return names


def bundled_rankings() -> list[list[str]]:
    """The names of each bundled ranking, most popular first, as written in the files.

    Raises :class:`ConfigError` if a packaged file is missing, unreadable or empty.
    """
    rankings = []
    data = resources.files("safepip").joinpath("data")
    for file in _BUNDLED_FILES:
        resource = data.joinpath(file)
        try:
            text = resource.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(
                f"bundled popular-names file {resource}: cannot read it: {exc}",
                hint="reinstall safepip, or set `popular-names` to a file of your own",
            ) from exc
        rankings.append(_parse_names(text, str(resource)))
    return rankings


def _merged(rankings: Sequence[Sequence[str]]) -> list[str]:
    """One ranking of several: each name at its best rank in any of them, ties in list order.

    Two lists of 15,000 names ranked alike become about 20,000 names, each no lower than in
    either list, so a resemblance limit (``rank < N``) covers every name within N in any of them.
    """
    # Taking the lists rank by rank, a name's first appearance is its best rank; dict.fromkeys
    # keeps first appearances in order, at C speed (this runs on every `check`).
    columns = itertools.zip_longest(*(_canonical_names(r) for r in rankings), fillvalue="")
    merged = dict.fromkeys(itertools.chain.from_iterable(columns))
    merged.pop("", None)
    return list(merged)


@functools.cache
def _bundled_index() -> TyposquatIndex:
    """Load the bundled rankings once per process."""
    return TyposquatIndex.from_rankings(bundled_rankings())
