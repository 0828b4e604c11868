from __future__ import annotations

import random
import re
from datetime import datetime, timedelta, timezone

import pytest
from packaging.utils import canonicalize_name

from safepip import hashlist
from safepip.errors import FreshnessError, ListFormatError

H1, H2, H3 = "a" * 64, "b" * 64, "c" * 64
HEADER = (
    "# safepip-list: 1\n# serial: 7\n"
    "# issued: 2026-11-01T00:00:00Z\n# expires: 2026-12-01T00:00:00Z\n"
)


def body(*lines: str, header: str = HEADER) -> bytes:
    return (header + "".join(f"{line}\n" for line in lines)).encode()


def refused(data: bytes, **kwargs: object) -> ListFormatError:
    with pytest.raises(ListFormatError) as info:
        hashlist.parse(data, **kwargs)  # type: ignore[arg-type]
    return info.value


def test_parses_header_entries_and_lookups() -> None:
    data = body(
        f"{H1}  certifi-2024.8.30-py3-none-any.whl",
        "# a comment",
        f"{H2}  Foo_Bar-1.0-py2.py3-none-any.whl",
        f"{H3}  foo_bar-1.0.tar.gz",
    )
    parsed = hashlist.parse(data)
    assert parsed.header.serial == 7
    assert parsed.header.expires == datetime(2026, 12, 1, tzinfo=timezone.utc)
    assert not parsed.legacy
    assert parsed.get("certifi-2024.8.30-py3-none-any.whl").sha256 == H1  # type: ignore[union-attr]
    assert parsed.get("certifi-2024.8.30-py3-none-any.WHL") is None
    assert [e.kind for e in parsed.for_project("FOO.bar")] == ["wheel", "sdist"]
    assert parsed.names() == {"certifi", "foo-bar"}
    assert [e.filename for e in parsed.wheels()] == [
        "certifi-2024.8.30-py3-none-any.whl",
        "Foo_Bar-1.0-py2.py3-none-any.whl",
    ]


def test_serialise_round_trips_and_sorts() -> None:
    issued = datetime(2026, 11, 1, tzinfo=timezone.utc)
    data = hashlist.serialise(
        {"b-1.0-py3-none-any.whl": H2, "a-1.0-py3-none-any.whl": H1},
        serial=3,
        issued=issued,
        expires=issued + timedelta(days=30),
    )
    parsed = hashlist.parse(data)
    assert [e.filename for e in parsed.entries] == [
        "a-1.0-py3-none-any.whl",
        "b-1.0-py3-none-any.whl",
    ]
    assert parsed.header.serial == 3
    assert data.startswith(b"# safepip-list: 1\n# serial: 3\n# issued: 2026-11-01T00:00:00Z\n")


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        (f"{'A' * 64}  a-1.0-py3-none-any.whl", "expected '<64 lower-case hex"),
        (f"{'a' * 63}  a-1.0-py3-none-any.whl", "expected '<64 lower-case hex"),
        (f"{H1} a-1.0-py3-none-any.whl", "expected '<64 lower-case hex"),
        (f"{H1}  ../a-1.0-py3-none-any.whl", "not a bare filename"),
        (f"{H1}  sub/a-1.0-py3-none-any.whl", "not a bare filename"),
        (f"{H1}  a-1.0-py3-none-any.whl?x=1", "not a bare filename"),
        (f"{H1}  a-1.0-py3-none-any.whl#frag", "not a bare filename"),
        (f"{H1}  a%2f-1.0-py3-none-any.whl", "not a bare filename"),
        (f"{H1}  a-1.0-py3-none.whl", "invalid wheel filename"),
        (f"{H1}  a-1.0-py3-none-any.exe", "neither a wheel nor an sdist"),
        (f"{H1}  a-not.a.version-py3-none-any.whl", "invalid version"),
        (f"{H1}  a-1.post{'9' * 5000}-py3-none-any.whl", "invalid version"),
        ("", "expected '<64 lower-case hex"),
    ],
)
def test_bad_entry_names_its_line(line: str, reason: str) -> None:
    error = refused(body(f"{H2}  ok-1.0-py3-none-any.whl", line))
    assert error.line == 6
    assert "line 6:" in str(error)
    assert reason in str(error)


@pytest.mark.parametrize(
    ("second", "reason"),
    [
        (f"{H2}  a-1.0-py3-none-any.whl", "listed twice (first on line 5)"),
        (f"{H1}  b-1.0-py3-none-any.whl", "same sha256 as a-1.0-py3-none-any.whl"),
        (f"{H2}  A-1.0-py3-none-any.whl", "same project, version and tags"),
        (f"{H2}  a-1.0.0-py3-none-any.whl", "same project, version and tags"),
        (f"{H2}  a-01.0-py3-none-any.whl", "same project, version and tags"),
    ],
)
def test_duplicates_and_collisions_refused(second: str, reason: str) -> None:
    error = refused(body(f"{H1}  a-1.0-py3-none-any.whl", second))
    assert error.line == 6
    assert reason in str(error)


def test_normalisation_collision_foo_bar() -> None:
    error = refused(
        body(f"{H1}  Foo_Bar-1.0-py3-none-any.whl", f"{H2}  foo_bar-1.0-py3-none-any.whl")
    )
    assert "Foo_Bar-1.0-py3-none-any.whl" in str(error)


def test_distinct_tags_and_builds_are_not_collisions() -> None:
    parsed = hashlist.parse(
        body(
            f"{H1}  a-1.0-py3-none-any.whl",
            f"{H2}  a-1.0-cp311-cp311-manylinux_2_17_x86_64.whl",
            f"{H3}  a-1.0-1-py3-none-any.whl",
        )
    )
    assert len(parsed.entries) == 3


@pytest.mark.parametrize(
    ("data", "reason", "line"),
    [
        (b"\xef\xbb\xbf" + body(f"{H1}  a-1.0-py3-none-any.whl"), "byte order mark", 1),
        (body(f"{H1}  a-1.0-py3-none-any.whl").replace(b"\n", b"\r\n"), "carriage return", 1),
        (
            body(f"{H1}  caf\xc3\xa9-1.0-py3-none-any.whl".encode("latin-1").decode("latin-1")),
            "non-ASCII",
            5,
        ),
        (body(f"{H1}  a-1.0-py3-none-any.whl\x00"), "control character", 5),
        (body(f"{H1}  a-1.0-py3-none-any.whl\t"), "control character", 5),
    ],
)
def test_byte_level_refusals(data: bytes, reason: str, line: int) -> None:
    error = refused(data)
    assert reason in str(error)
    assert error.line == line


def test_empty_and_entryless_lists() -> None:
    assert "empty" in str(refused(b""))
    assert "empty" in str(refused(b"\n\n"))
    assert "no entries" in str(refused(HEADER.encode()))


def test_size_cap() -> None:
    data = body(f"{H1}  a-1.0-py3-none-any.whl")
    assert "max-list-bytes" in str(refused(data, max_bytes=len(data) - 1))
    assert hashlist.parse(data, max_bytes=len(data)).entries


@pytest.mark.parametrize(
    ("header", "reason", "line"),
    [
        ("# serial: 7\n# safepip-list: 1\n", "must be the first line", 2),
        ("# safepip-list: 2\n# serial: 1\n", "must be the first line (found '2')", 1),
        (
            "# safepip-list: 1\n# serial: -1\n# issued: 2026-11-01T00:00:00Z\n"
            "# expires: 2026-12-01T00:00:00Z\n",
            "not a non-negative integer",
            2,
        ),
        (
            "# safepip-list: 1\n# serial: 07\n# issued: 2026-11-01T00:00:00Z\n"
            "# expires: 2026-12-01T00:00:00Z\n",
            "not a non-negative integer",
            2,
        ),
        (
            "# safepip-list: 1\n# serial: 1\n# issued: 2026-11-01\n"
            "# expires: 2026-12-01T00:00:00Z\n",
            "issued: '2026-11-01' is not a UTC time",
            3,
        ),
        ("# safepip-list: 1\n# serial: 1\n# issued: 2026-11-01T00:00:00Z\n", "no '# expires:'", 4),
        ("# safepip-list: 1\n# serial: 1\n# serial: 2\n", "second '# serial:'", 3),
    ],
)
def test_header_refusals_name_the_line(header: str, reason: str, line: int) -> None:
    error = refused(body(f"{H1}  a-1.0-py3-none-any.whl", header=header))
    assert reason in str(error)
    assert error.line == line


def test_legacy_list_needs_freshness_off() -> None:
    legacy = f"{H1}  a-1.0-py3-none-any.whl\n".encode()
    error = refused(legacy)
    assert "legacy" in str(error) and error.line == 1
    assert "require-freshness = false" in error.hint
    parsed = hashlist.parse(legacy, require_freshness=False)
    assert parsed.legacy and parsed.header.serial is None


NOW = datetime(2026, 11, 15, tzinfo=timezone.utc)


def header(issued: str, expires: str) -> hashlist.Header:
    parse = hashlist._parse_time  # the same parser the list uses
    return hashlist.Header(1, 1, parse(issued, "issued", 1), parse(expires, "expires", 1))


@pytest.mark.parametrize(
    ("issued", "expires", "reason"),
    [
        ("2026-10-01T00:00:00Z", "2026-11-14T23:59:59Z", "expired"),
        ("2026-10-01T00:00:00Z", "2026-11-15T00:00:00Z", "expired"),
        ("2026-11-15T01:00:00Z", "2026-12-01T00:00:00Z", "issued in the future"),
        ("2026-11-15T00:04:00Z", "2026-11-15T00:02:00Z", "before it was issued"),
        ("2026-11-01T00:00:00Z", "2027-12-01T00:00:00Z", "above max-validity-days (365)"),
    ],
)
def test_judge_header_refusals(issued: str, expires: str, reason: str) -> None:
    with pytest.raises(FreshnessError, match=re.escape(reason)):
        hashlist.judge_header(header(issued, expires), now=NOW, max_validity_days=365, legacy=False)


def test_judge_header_accepts_fresh_and_small_skew() -> None:
    hashlist.judge_header(
        header("2026-11-15T00:04:00Z", "2026-12-01T00:00:00Z"),
        now=NOW,
        max_validity_days=365,
        legacy=False,
    )


# The whole-text fast path and the line-by-line parser must agree on every input: the fast path
# may only ever accept what the careful parser accepts, with the same entries and line numbers.

VARIED = body(
    f"{H1}  certifi-2024.8.30-py3-none-any.whl",
    f"{H2}  Foo_Bar-1.0-py2.py3-none-any.whl",
    f"{H3}  zope.interface-7.0rc1-1-cp311-cp311-manylinux_2_17_x86_64.whl",
    f"{'d' * 64}  pkg-1.0.post1+local-py3-none-any.whl",
    f"{'e' * 64}  x-0!2.0.dev3-py3-none-any.whl",
)


def careful_parse(data: bytes, monkeypatch: pytest.MonkeyPatch) -> hashlist.HashList:
    with monkeypatch.context() as patch:
        patch.setattr(hashlist, "_parse_wheels_at_once", lambda text: None)
        return hashlist.parse(data)


def outcome(parse: object, data: bytes) -> object:
    try:
        parsed = parse(data)  # type: ignore[operator]
    except ListFormatError as error:
        return ("refused", str(error), error.line)
    return ("parsed", parsed.header, parsed.entries, parsed.legacy)


def test_pattern_path_takes_a_wheel_list_and_agrees(monkeypatch: pytest.MonkeyPatch) -> None:
    text = VARIED.decode()
    fast = hashlist._parse_wheels_at_once(text)
    assert fast is not None  # the fast path is not dead code
    assert fast[1].entries == hashlist._parse_line_by_line(text)[1].entries
    assert outcome(hashlist.parse, VARIED) == outcome(
        lambda d: careful_parse(d, monkeypatch), VARIED
    )
    assert [e.line for e in fast[1].entries] == [5, 6, 7, 8, 9]
    assert [e.name for e in fast[1].entries][1:3] == ["foo-bar", "zope-interface"]


# The bulk path takes the common list: no build tag, lower-case names without dots.
PLAIN = body(
    f"{H1}  certifi-2024.8.30-py3-none-any.whl",
    f"{H2}  foo_bar-1.0-py2.py3-none-any.whl",
    f"{H3}  zope_interface-7.0rc1-cp311-cp311-manylinux_2_17_x86_64.whl",
    f"{'d' * 64}  pkg-1.0.post1+local-py3-none-any.whl",
    f"{'e' * 64}  x-0!2.0.dev3-py3-none-any.whl",
)


def test_bulk_path_takes_the_common_list_and_agrees(monkeypatch: pytest.MonkeyPatch) -> None:
    text = PLAIN.decode()
    header, skipped = hashlist._leading_header(text) or ({}, 0)
    bulk = hashlist._parse_wheels_in_bulk(header, text[skipped:])
    assert bulk is not None  # the bulk path is not dead code
    assert bulk[1].entries == hashlist._parse_line_by_line(text)[1].entries
    assert [e.name for e in bulk[1].entries][1:3] == ["foo-bar", "zope-interface"]
    # The build tag of VARIED is for the pattern path only.
    text = VARIED.decode()
    header, skipped = hashlist._leading_header(text) or ({}, 0)
    assert hashlist._parse_wheels_in_bulk(header, text[skipped:]) is None


@pytest.mark.parametrize(
    "line",
    [
        f"{'9' * 64}  foo_bar-1.0.0-py2.py3-none-any.whl",  # the same version, spelled otherwise
        f"{'9' * 64}  foo_bar-1.0-py3.py2-none-any.whl",  # the same tag set, in another order
        f"{'9' * 64}  foo_bar-1.0-PY2.py3-none-any.whl",  # the same tag set, upper-case
        f"{'9' * 64}  Foo_bar-1.0-py2.py3-none-any.whl",  # the same name, upper-case
        f"{'9' * 64}  foo.bar-1.0-py2.py3-none-any.whl",  # the same name, with a dot
    ],
)
def test_fast_paths_send_lookalike_spellings_to_the_careful_parser(line: str) -> None:
    error = refused(PLAIN + line.encode() + b"\n")
    assert "names the same project, version and tags" in str(error)
    assert error.line == 10


def bulk(data: bytes) -> object:
    text = data.decode()
    header, skipped = hashlist._leading_header(text) or ({}, 0)
    return hashlist._parse_wheels_in_bulk(header, text[skipped:])


# Lines that keep every whole-list count of the bulk path right (two spaces and four hyphens a
# line, one ".whl" a line) while one line is wrong: only a per-line check can refuse them.
@pytest.mark.parametrize(
    ("lines", "reason", "line"),
    [
        (  # a hyphen moved from one filename to the next, the parts still valid in fives
            [f"{H1}  a-1.0-x-y.whl", f"{H2}  b-2.0-3.0-q-r-s.whl"],
            "invalid wheel filename",
            5,
        ),
        (  # a space moved from after one hash to after the next
            [f"{H1} a-1.0-py3-none-any.whl", f"{H2}   b-1.0-py3-none-any.whl"],
            "expected '<64 lower-case hex sha256>",
            5,
        ),
        (  # one space after a hash, four after the next: "  " twice, as two lines have
            [f"{H1} a-1.0-py3-none-any.whl", f"{H2}    b-1.0-py3-none-any.whl"],
            "expected '<64 lower-case hex sha256>",
            5,
        ),
        (  # a space moved into a filename
            [f"{H1} a-1.0-py3-none-any.whl", f"{H2}  b-1.0-py3-none-any .whl"],
            "expected '<64 lower-case hex sha256>",
            5,
        ),
        (  # two hashes on one line, none on the next: two spaces and four hyphens a line
            [f"{H1}  a-1.0-py3-none-any.whl  {H2}", "b-1.0-py3-none-any.whl"],
            "is not a bare filename",
            5,
        ),
        (  # a hash one digit short, the next one digit long
            [f"{H1[:63]}  a-1.0-py3-none-any.whl", f"{H2}0  b-1.0-py3-none-any.whl"],
            "expected '<64 lower-case hex sha256>",
            5,
        ),
        (  # an empty name on a later line
            [f"{H1}  a-1.0-py3-none-any.whl", f"{H2}  -1.0-py3-none-any.whl"],
            "not a bare filename",
            6,
        ),
        (  # "__" in a name
            [f"{H1}  a-1.0-py3-none-any.whl", f"{H2}  b__c-1.0-py3-none-any.whl"],
            "invalid wheel filename",
            6,
        ),
    ],
)
def test_bulk_path_judges_each_line_not_only_totals(
    lines: list[str], reason: str, line: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = body(*lines)
    assert bulk(data) is None
    error = refused(data)
    assert reason in str(error) and error.line == line
    assert outcome(hashlist.parse, data) == outcome(lambda d: careful_parse(d, monkeypatch), data)


def test_bulk_path_takes_double_underscores_in_tags(monkeypatch: pytest.MonkeyPatch) -> None:
    """The careful parser refuses "__" in a name only: a tag may hold it."""
    data = body(f"{H1}  a-1.0-py3-none-linux__x86_64.whl", f"{H2}  b-1.0-py3-none-any.whl")
    assert bulk(data) is not None
    assert outcome(hashlist.parse, data) == outcome(lambda d: careful_parse(d, monkeypatch), data)


def test_fast_paths_agree_with_the_careful_parser_on_mutated_lists(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    decided = {"_parse_wheels_in_bulk": 0, "_parse_wheels_by_pattern": 0}
    for tier in decided:
        real = getattr(hashlist, tier)

        def counted(*args: object, _real: object = real, _tier: str = tier) -> object:
            result = _real(*args)  # type: ignore[operator]
            decided[_tier] += result is not None
            return result

        monkeypatch.setattr(hashlist, tier, counted)
    rng = random.Random(20261129)  # noqa: S311 (reproducible noise, not crypto)
    noise = ["-", "_", ".", "..", "__", "\r", "\t", "\x00", "é", "A", "/", " ", "#", "\n", "1"]
    noise += ["+", "!", "0", ".0", "-1"]
    kinds = set()
    for base in (VARIED, PLAIN):
        lines = base.decode().splitlines(keepends=True)
        for _ in range(3000):
            mutated = list(lines)
            for _ in range(rng.randint(1, 2)):
                i = rng.randrange(len(mutated))
                action = rng.randrange(6)
                if action >= 4:  # a separator moved, to another line or within its own:
                    k = rng.randrange(len(mutated)) if action == 4 else i  # totals stay right
                    line = mutated[i]
                    at = [j for j, c in enumerate(line) if c in "-. _"]
                    if at:
                        j = rng.choice(at)
                        mutated[i] = line[:j] + line[j + 1 :]
                        other = mutated[k]
                        m = rng.randrange(len(other))
                        mutated[k] = other[:m] + line[j] + other[m:]
                elif action == 0:  # a character replaced or inserted
                    line = mutated[i]
                    j = rng.randrange(len(line))
                    mutated[i] = line[:j] + rng.choice(noise) + line[j + rng.randint(0, 1) :]
                elif action == 1:  # a line repeated
                    mutated.insert(i, mutated[i])
                elif action == 2 and len(mutated) > 1:  # a line dropped
                    del mutated[i]
                else:  # a hash reused on another line
                    k = rng.randrange(len(mutated))
                    mutated[k] = mutated[i][:64] + mutated[k][64:]
            data = "".join(mutated).encode()
            fast = outcome(hashlist.parse, data)
            assert fast == outcome(lambda d: careful_parse(d, monkeypatch), data), data
            kinds.add(fast[0])  # type: ignore[index]
    assert kinds == {"parsed", "refused"}  # both sides of the comparison were exercised
    # Each fast path decided many mutated lists: neither is dead code in this comparison.
    assert min(decided.values()) > 100, decided


def test_versions_with_thousands_of_digits_are_judged_not_crashed() -> None:
    """Python refuses int() of over 4,300 digits: that must not become an internal error."""
    huge = "1" * 5000
    parsed = hashlist.parse(body(f"{H1}  a-{huge}-py3-none-any.whl"))
    assert parsed.entries[0].version == huge
    error = refused(body(f"{H1}  a-{huge}-py3-none-any.whl", f"{H2}  a-0{huge}.0-py3-none-any.whl"))
    assert "same project, version and tags" in str(error) and error.line == 6


@pytest.mark.parametrize(
    "name", ["Foo_Bar", "zope.interface", "a-_.b", "Django", "x", "A1", "ruamel.yaml.clib", "__x"]
)
def test_canonical_name_is_packagings(name: str) -> None:
    assert hashlist.canonical_name(name) == canonicalize_name(name)


@pytest.mark.timeout(20)  # a regression builds the product of the parts: fail, do not hang
def test_a_tag_set_of_many_dotted_parts_costs_no_product() -> None:
    """The key of a tag set is its three factors: 1,000 parts each is 10^9 tags as a product.

    The comment sends the list to the careful parser, which an unsigned list reaches too (it is
    parsed while gpg checks the signature).
    """
    parts = ".".join(f"t{i}" for i in range(1000))
    data = body("# a comment", f"{H1}  a-1.0-{parts}-{parts}-{parts}.whl")
    assert hashlist.parse(data).entries[0].filename.startswith("a-1.0-t0.t1")


def test_a_tag_part_repeated_names_the_same_tag_set() -> None:
    # packaging reads py2.py2 as the set {py2}: one tag set, two spellings, refused.
    error = refused(body(f"{H1}  a-1.0-py2.py2-none-any.whl", f"{H2}  a-1.0-py2-none-any.whl"))
    assert "names the same project, version and tags" in str(error) and error.line == 6
