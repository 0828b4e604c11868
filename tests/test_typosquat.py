"""Tests for safepip.typosquat: each family and reason, and the evaluation on real data.

The evaluation uses three files, documented in their headers:

* ``safepip/data/popular-names.txt``: the bundled popular names;
* ``tests/data/typosquat-incidents.tsv``: real malicious names and the name each imitated;
* ``tests/data/pypi-names-outside-popular.txt``: real PyPI projects that are not on the list,
  from a later snapshot of the most downloaded (the hard case: popular, but not popular enough);
* ``tests/data/pypi-names-random-sample.txt``: a uniform random sample of all PyPI projects
  outside the list (``scripts/sample_pypi_names.py``): what real requirements files hold.

Run with ``-s`` to see recall per family and the false positives.
"""

from __future__ import annotations

import os
import time
from collections import Counter
from dataclasses import FrozenInstanceError, dataclass
from importlib import resources
from pathlib import Path

import pytest

from safepip.errors import ConfigError
from safepip.typosquat import NameVerdict, TyposquatIndex, bundled_rankings

DATA = Path(__file__).parent / "data"
INCIDENTS = DATA / "typosquat-incidents.tsv"
OUTSIDE = DATA / "pypi-names-outside-popular.txt"
RANDOM_SAMPLE = DATA / "pypi-names-random-sample.txt"
SEED = 20_251_123

SMALL = [
    "requests",
    "urllib3",
    "colorama",
    "python-dateutil",
    "django",
    "numpy",
    "pyyaml",
    "matplotlib",
    "setuptools",
    "flask",
    "beautifulsoup4",
    "typing-extensions",
    "torchvision",
    "s3transfer",
    "botocore",
    "jpype1",
    "tiktoken",
]


@pytest.fixture(scope="module")
def small() -> TyposquatIndex:
    return TyposquatIndex(SMALL)


@pytest.fixture(scope="module")
def bundled() -> TyposquatIndex:
    return TyposquatIndex.bundled()


def _lines(path: Path) -> list[str]:
    return [ln for ln in path.read_text(encoding="utf-8").splitlines() if ln and ln[0] != "#"]


def _incidents() -> list[tuple[str, str, str, str]]:
    rows = [tuple(ln.split("\t")) for ln in _lines(INCIDENTS)]
    assert rows[0] == ("malicious_name", "imitated", "family", "source")
    return [(r[0], r[1], r[2], r[3]) for r in rows[1:]]


# -- one test per family and reason string ----------------------------------------------------


@pytest.mark.parametrize(
    ("name", "target", "reason"),
    [
        # adjacent letters swapped
        ("reqeusts", "requests", "`eu` for `ue` (letters swapped)"),
        # visual confusions, both directions
        ("djang0", "django", "`0` for `o`"),
        ("pyyami", "pyyaml", "`i` for `l`"),
        ("jpypel", "jpype1", "`l` for `1`"),
        ("rnatplotlib", "matplotlib", "`rn` for `m`"),
        ("flask1", None, None),  # a digit appended is not a look-alike
        # separators
        ("pythondateutil", "python-dateutil", "separator removed"),
        ("beautiful-soup4", "beautifulsoup4", "separator added"),
        ("typingextensions", "typing-extensions", "separator removed"),
        ("pyt-hondateutil", "python-dateutil", "separator moved"),
        # reordered words
        ("dateutil-python", "python-dateutil", "words reordered"),
        ("extensions-typing", "typing-extensions", "words reordered"),
        # affixes
        ("python3-dateutil", "python-dateutil", "`python-` prefix replaced by `python3-` prefix"),
        ("py-requests", "requests", "`py-` prefix added"),
        ("python-requests", "requests", "`python-` prefix added"),
        ("requests-py", "requests", "`-py` suffix added"),
        ("colorama-dev", "colorama", "`-dev` suffix added"),
        ("libnumpy", "numpy", "`lib` prefix added"),
        ("requests2", "requests", "`2` suffix added"),
        ("urllib", "urllib3", "`3` suffix dropped"),
        # one letter added, dropped, doubled, made single
        ("colourama", "colorama", "`u` added"),
        ("setuptool", "setuptools", "plural `s` dropped"),
        ("torchvisions", "torchvision", "plural `s` added"),
        ("requestss", "requests", "`s` doubled"),
        ("urlib3", "urllib3", "doubled `l` made single"),
        ("matplotib", "matplotlib", "`l` dropped"),
        # one letter changed
        ("reqursts", "requests", "`r` for `e` (keyboard neighbours)"),
        ("r4quests", "requests", "`4` for `e` (keyboard neighbours)"),
        ("s4transfer", "s3transfer", "`4` for `3` (keyboard neighbours)"),
        ("numoy", "numpy", "`o` for `p` (keyboard neighbours)"),
        ("coloroma", "colorama", "`o` for `a` (one letter changed)"),
        # short names of the most imitated projects (issue #12: `nump`, `djanga`)
        ("nump", "numpy", "`y` dropped"),
        ("djanga", "django", "`a` for `o` (one letter changed)"),
        ("flaks", "flask", "`ks` for `sk` (letters swapped)"),
        # a letter changed at the start makes another word more often than a slip
        ("bequests", None, None),
        ("reqxests", "requests", "`x` for `u` (one letter changed)"),
        # two slips in a long name
        ("requetses", "requests", "two letters changed"),
        ("botoceor", "botocore", "two letters changed"),
    ],
)
def test_family_and_reason(
    small: TyposquatIndex, name: str, target: str | None, reason: str | None
) -> None:
    verdict = small.check(name)
    if target is None:
        assert verdict.verdict == "ok", verdict
    else:
        assert verdict == NameVerdict(name, "typosquat", target, reason)


@pytest.mark.parametrize(
    "name",
    [
        "abc",  # short names: almost every one is one letter from a popular one
        "numba",  # 2 letters from numpy: a project of its own
        "flasks",  # plural of a 5-letter name: too short to mean anything
        "cu11-torch",
        "requests-toolbelt-extra",
        "pyqt6",
        "totally-unrelated-name",
    ],
)
def test_unrelated_names_are_ok(small: TyposquatIndex, name: str) -> None:
    assert small.check(name).verdict == "ok"


def test_rankings_merge_at_the_best_rank() -> None:
    """A name popular in any ranking is never flagged, and each keeps its best rank."""
    index = TyposquatIndex.from_rankings([["requests", "py-redis"], ["redis", "requests"]])
    assert len(index) == 3
    assert index.check("py-redis").verdict == "ok"  # popular in one ranking only: never flagged
    assert index.check("reqeusts").similar_to == "requests"


def test_digit_families_are_not_typos() -> None:
    index = TyposquatIndex(["nvidia-cublas-cu12", "pyqt5", "newspaper3k"])
    for name in ("nvidia-cublas-cu11", "pyqt6", "newspaper4k"):
        assert index.check(name).verdict == "ok", name


def test_popular_and_known_names_are_never_flagged(small: TyposquatIndex) -> None:
    assert small.check("requests").verdict == "ok"
    assert small.check("Python_DateUtil").verdict == "ok"  # PEP 503 spelling of a popular name
    assert small.check("reqeusts", known=["reqeusts"]).verdict == "ok"
    assert small.check("reqeusts", known=["Reqeusts"]).verdict == "ok"  # any spelling
    assert small.check("reqeusts", known=["other"]).verdict == "typosquat"


def test_name_is_canonical(small: TyposquatIndex) -> None:
    verdict = small.check("Djang0")
    assert verdict.name == "djang0"
    assert small.check("Colour_Ama").name == "colour-ama"


def test_non_ascii_is_left_to_the_caller(small: TyposquatIndex) -> None:
    # A Cyrillic "ie" (U+0435): refused earlier by the caller, so not this module's verdict.
    assert small.check("r\u0435quests").verdict == "ok"


def test_popularity_is_compared() -> None:
    fillers = [f"filler-{i:05d}-pkg" for i in range(12_000)]
    # "colorama" at rank 0; "tensorflow" at rank 12000, past every family's limit.
    index = TyposquatIndex(["colorama", *fillers, "tensorflow"])
    assert index.check("colourama").similar_to == "colorama"  # rare, near a top name
    assert index.check("tensorflaw").verdict == "ok"  # near a rank-12000 name only
    # A name that is itself on the list is never flagged, whatever it resembles.
    index = TyposquatIndex(["colorama", *fillers[:9000], "colourama"])
    assert index.check("colourama").verdict == "ok"


def test_most_popular_target_wins() -> None:
    index = TyposquatIndex(["requests", "request"])
    assert index.check("requets").similar_to == "requests"


def test_to_json(small: TyposquatIndex) -> None:
    assert small.check("urlib3").to_json() == {
        "name": "urlib3",
        "verdict": "typosquat",
        "similar_to": "urllib3",
        "reason": "doubled `l` made single",
    }
    assert small.check("requests").to_json() == {
        "name": "requests",
        "verdict": "ok",
        "similar_to": None,
        "reason": None,
    }


def test_verdict_is_frozen(small: TyposquatIndex) -> None:
    verdict = small.check("requests")
    with pytest.raises(FrozenInstanceError):
        verdict.verdict = "typosquat"  # type: ignore[misc]


# -- loading ------------------------------------------------------------------------------------


def test_from_file(tmp_path: Path) -> None:
    path = tmp_path / "names.txt"
    path.write_text("# popular\nRequests  # the first\n\npython_dateutil\n", encoding="utf-8")
    index = TyposquatIndex.from_file(path)
    assert len(index) == 2
    assert index.check("python-dateutil").verdict == "ok"
    assert index.check("reqeusts").similar_to == "requests"


@pytest.mark.timeout(20)  # a regression blocks in open(): fail, do not hang
def test_from_file_refuses_a_fifo_without_blocking(tmp_path: Path) -> None:
    """`popular-names` naming a FIFO (planted, or a typo) must not hang `safepip names`."""
    fifo = tmp_path / "names.fifo"
    os.mkfifo(fifo)
    start = time.monotonic()
    with pytest.raises(ConfigError, match="not a regular file") as info:
        TyposquatIndex.from_file(fifo)
    assert time.monotonic() - start < 10
    assert str(fifo) in str(info.value)
    assert info.value.exit_code == 2


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (None, "cannot read it"),
        ("", "holds no project name"),
        ("# only a comment\n\n", "holds no project name"),
        ("requests\nnot a name\n", ":2: not a project name"),
        (b"\xff\xfe", "cannot read it"),
    ],
)
def test_from_file_errors(tmp_path: Path, text: str | bytes | None, message: str) -> None:
    path = tmp_path / "names.txt"
    if isinstance(text, bytes):
        path.write_bytes(text)
    elif text is not None:
        path.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError, match=message) as info:
        TyposquatIndex.from_file(path)
    assert str(path) in str(info.value)
    assert info.value.exit_code == 2


def test_bundled_is_cached(bundled: TyposquatIndex) -> None:
    assert TyposquatIndex.bundled() is bundled
    assert len(bundled) > 3000


# -- evaluation on real data ------------------------------------------------------------------


def test_incident_data_is_well_formed() -> None:
    rows = _incidents()
    assert len(rows) >= 100
    assert len({name for name, *_ in rows}) == len(rows)
    assert all(source.strip() for *_, source in rows)


@dataclass(frozen=True)
class _Score:
    """Recall and right-target rate of the check on a set of malicious names."""

    cases: int
    hits: int
    right: int
    per_family: dict[str, tuple[int, int]]  # family -> (hits, cases)


def _score(index: TyposquatIndex, rows: list[tuple[str, str, str]]) -> _Score:
    """Check each ``(malicious name, imitated name, family)``; print and return the score."""
    found: Counter[str] = Counter()
    total: Counter[str] = Counter()
    hits = right = 0
    for name, imitated, family in rows:
        total[family] += 1
        verdict = index.check(name)
        if verdict.verdict == "typosquat":
            hits += 1
            found[family] += 1
            right += verdict.similar_to == imitated
    report = ", ".join(f"{f} {found[f]}/{n}" for f, n in sorted(total.items()))
    print(f"\nrecall {hits}/{len(rows)} ({hits / len(rows):.1%}); right target {right}/{hits}")
    print(f"per family: {report}")
    return _Score(len(rows), hits, right, {f: (found[f], n) for f, n in total.items()})


def test_recall_on_real_incidents(bundled: TyposquatIndex) -> None:
    score = _score(
        bundled, [(name, imitated, family) for name, imitated, family, _ in _incidents()]
    )
    assert score.hits / score.cases >= 0.90, score.per_family
    assert score.right / score.hits >= 0.90


def test_no_popular_name_is_flagged(bundled: TyposquatIndex) -> None:
    """No name of either bundled ranking is flagged (hugovk's and the PyPI list's top 15,000)."""
    for ranking in bundled_rankings():
        assert len(ranking) > 14_000
        flagged = [n for n in ranking if bundled.check(n).verdict != "ok"]
        assert flagged == []


def test_popular_names_would_be_flagged_if_they_were_not_popular() -> None:
    """The test above can fail: taken off the list, some popular names do look like typosquats.

    Every tenth name is removed from the list and checked against the rest: the ones flagged
    are exactly what the "a popular name is never flagged" rule protects.
    """
    popular = bundled_names()
    removed = popular[5::10]
    index = TyposquatIndex([n for n in popular if n not in set(removed)])
    flagged = {n: index.check(n) for n in removed}
    flagged = {n: v for n, v in flagged.items() if v.verdict == "typosquat"}
    print(f"\n{len(flagged)}/{len(removed)} popular names flagged once taken off the list")
    assert flagged, "the check never fires on look-alike popular names: is it broken?"


def _flag_rate(index: TyposquatIndex, names: list[str]) -> float:
    flagged = [(n, index.check(n)) for n in names]
    flagged = [(n, v) for n, v in flagged if v.verdict != "ok"]
    print(f"\nfalse positives {len(flagged)}/{len(names)} ({len(flagged) / len(names):.2%})")
    for name, verdict in flagged:
        print(f"  {name} ~ {verdict.similar_to}: {verdict.reason}")
    return len(flagged) / len(names)


def test_false_positive_rate_on_later_popular_names(bundled: TyposquatIndex) -> None:
    """Names of a later ranking, outside the bundled ones: popular, but not popular enough."""
    popular = {n for ranking in bundled_rankings() for n in ranking}
    outside = [n for n in _lines(OUTSIDE) if n not in popular]
    assert len(outside) >= 500, "the sample must stay outside the bundled rankings"
    assert _flag_rate(bundled, outside) <= 0.015  # 8/672 (1.2%) when last tuned


def test_false_positive_rate_on_random_names(bundled: TyposquatIndex) -> None:
    """The 5,000 random PyPI names outside both rankings (scripts/sample_pypi_names.py).

    Issue #12 asks for at most 0.5%: 22/5,000 (0.44%) measured when the rules were last tuned.
    """
    popular = {n for ranking in bundled_rankings() for n in ranking}
    names = _lines(RANDOM_SAMPLE)
    assert len(names) == 5000
    assert not popular & set(names), "the sample must stay outside the bundled rankings"
    assert _flag_rate(bundled, names) <= 0.005


def bundled_names() -> list[str]:
    """The bundled hugovk names, read as a user of the package would."""
    resource = resources.files("safepip").joinpath("data").joinpath("popular-names.txt")
    text = resource.read_text("utf-8")
    return [ln for ln in text.splitlines() if ln and not ln.startswith("#")]


# -- the evaluation set of issue #12 (kept outside the repo) ------------------------------------


def _eval_dir() -> Path | None:
    """The evaluation set's folder: $SAFEPIP_TYPOSQUAT_EVAL, or ../shared/typosquat-eval/."""
    configured = os.environ.get("SAFEPIP_TYPOSQUAT_EVAL")
    folder = (
        Path(configured)
        if configured
        else Path(__file__).resolve().parent.parent.parent / "shared" / "typosquat-eval"
    )
    return folder if (folder / "test.tsv").is_file() else None


@pytest.fixture(scope="module")
def eval_score(bundled: TyposquatIndex) -> _Score:
    folder = _eval_dir()
    if folder is None:
        pytest.skip(
            "typosquat evaluation set absent: build it with scripts/build_typosquat_eval.py and "
            "set SAFEPIP_TYPOSQUAT_EVAL to its folder (or put it at ../shared/typosquat-eval/)"
        )
    lines = (folder / "test.tsv").read_text(encoding="utf-8").splitlines()
    assert lines[0].split("\t")[:4] == ["name", "target", "target_rank", "family"]
    rows = [ln.split("\t") for ln in lines[1:] if ln]
    assert len(rows) >= 500, "the test half of the evaluation set is too small"
    return _score(bundled, [(name, target, family) for name, target, _, family, *_ in rows])


def test_evaluation_set_floor(eval_score: _Score) -> None:
    """What the rules reached on the test half when last tuned: a regression below fails.

    Measured: recall 735/928 (79.2%), right target 734/735; two slips 47/118 (39.8%), affix
    5/17, every other family with 10 or more cases at 70% or more.
    """
    assert eval_score.hits / eval_score.cases >= 0.78
    assert eval_score.right / eval_score.hits >= 0.99
    floors = {"affix": 0.25, "two-edits": 0.35}
    for family, (hits, cases) in eval_score.per_family.items():
        if cases >= 10:
            assert hits / cases >= floors.get(family, 0.65), family


@pytest.mark.xfail(
    strict=True,
    reason="issue #12 figures not met yet: test-half recall 79.2% (95% asked); families "
    "substitution 70%, two-edits 40%, addition 76%, omission 89%, affix 29% (90% asked); "
    "random names flagged 0.44% (0.5% asked: met)",
)
def test_issue_12_figures(eval_score: _Score, bundled: TyposquatIndex) -> None:
    """The "done when" figures of issue #12, on the test half and the random sample."""
    assert eval_score.hits / eval_score.cases >= 0.95
    assert eval_score.right / eval_score.hits >= 0.95
    for family, (hits, cases) in eval_score.per_family.items():
        if cases >= 10:
            assert hits / cases >= 0.90, family
    names = _lines(RANDOM_SAMPLE)
    flagged = sum(bundled.check(n).verdict != "ok" for n in names)
    assert flagged / len(names) <= 0.005


# -- rank limits that depend on the shape of the resemblance (issue #12, second round) ---------


def _ranked(name: str, rank: int) -> TyposquatIndex:
    """An index where ``name`` sits at ``rank`` (0-based), behind fillers nothing resembles."""
    return TyposquatIndex([*(f"filler-{i:05d}-pkg" for i in range(rank)), name])


def test_python3_prefix_counts_for_mid_popular_names() -> None:
    """``python3-shodan`` reads like a distribution's package: it counts far down the ranking."""
    index = _ranked("shodan", 7_000)
    verdict = index.check("python3-shodan")
    assert verdict == NameVerdict(
        "python3-shodan", "typosquat", "shodan", "`python3-` prefix added"
    )
    assert index.check("pyshodan").verdict == "ok"  # other affixes keep the top-200 limit
    assert _ranked("autopep8", 1_100).check("python3-autopep8").similar_to == "autopep8"
    assert _ranked("autopep8", 3_900).check("pythonautopep8").similar_to == "autopep8"
    assert _ranked("autopep8", 6_000).check("pythonautopep8").verdict == "ok"
    # a short word behind it is a name of its own: only the top 200 count, as for other affixes
    assert _ranked("path", 150).check("pythonpath").similar_to == "path"
    assert _ranked("path", 1_000).check("pythonpath").verdict == "ok"
    assert _ranked("utils", 1_000).check("python3-utils").verdict == "ok"


def test_separator_added_counts_only_for_top_names() -> None:
    assert _ranked("datasets", 50).check("data-sets").similar_to == "datasets"
    assert _ranked("datasets", 500).check("data-sets").verdict == "ok"
    # removing a separator keeps the strong limit
    assert _ranked("py-cord", 6_000).check("pycord").similar_to == "py-cord"


def test_two_slips_in_a_short_name_count_only_for_top_names() -> None:
    assert _ranked("streamlit", 50).check("streamlog").similar_to == "streamlit"
    assert _ranked("streamlit", 500).check("streamlog").verdict == "ok"  # 9 letters
    assert _ranked("tensorflow", 500).check("tensoflaw").similar_to == "tensorflow"  # 10


def test_keyboard_slip_in_a_seven_letter_name() -> None:
    assert _ranked("pytorch", 2_000).check("pytorcu").similar_to == "pytorch"  # at the end
    assert _ranked("pytorch", 3_000).check("pytorcu").verdict == "ok"
    assert _ranked("pytorch", 6_000).check("pytprch").similar_to == "pytorch"  # `p` by `o`
    assert _ranked("pytorch", 11_000).check("pytprch").verdict == "ok"
