"""Tests for safepip.requirements: the strict subset of pip's requirements syntax."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest
from packaging.version import Version

from safepip import requirements as requirements_module
from safepip.errors import RequirementsError
from safepip.policy import Rejection
from safepip.requirements import (
    ParsedRequirements,
    RequirementLine,
    parse_files,
    parse_specs,
    parse_text,
)

HASH_A = "a" * 64
HASH_B = "0123456789abcdef" * 4
VALID = "certifi==2024.8.30"


@pytest.fixture(autouse=True)
def _in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Locations show paths as given: run from tmp_path so that they are short and exact.
    monkeypatch.chdir(tmp_path)


def write(name: str, text: str) -> Path:
    """Write ``text`` (UTF-8, newlines as given) to ``name`` under the current directory."""
    path = Path(name)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(text.encode("utf-8"))
    return path


def parse(text: str, name: str = "requirements.txt") -> ParsedRequirements:
    return parse_files([write(name, text)])


def only_rejection(parsed: ParsedRequirements) -> Rejection:
    assert len(parsed.rejections) == 1, parsed.rejections
    return parsed.rejections[0]


def names(parsed: ParsedRequirements) -> list[str]:
    return [line.name for line in parsed.lines]


def parse_error(text: str, name: str = "requirements.txt") -> str:
    with pytest.raises(RequirementsError) as info:
        parse(text, name)
    assert info.value.exit_code == 2
    return str(info.value)


# -- accepted syntax -----------------------------------------------------------------------------


def test_simple_pin() -> None:
    parsed = parse("requests==2.31.0\n")
    assert parsed.rejections == ()
    (line,) = parsed.lines
    assert line.name == "requests"
    assert str(line.requirement) == "requests==2.31.0"
    assert line.hashes == ()
    assert line.location == "requirements.txt:1"
    assert line.pinned_version == Version("2.31.0")


@pytest.mark.parametrize(
    ("spelling", "canonical"),
    [("Foo_Bar==1.0", "foo-bar"), ("foo.bar==1.0", "foo-bar"), ("FOO--bar==1.0", "foo-bar")],
)
def test_pep503_spellings_resolve_to_one_name(spelling: str, canonical: str) -> None:
    (line,) = parse(f"{spelling}\n").lines
    assert line.name == canonical
    # the requirement itself keeps the spelling the user wrote
    assert line.requirement.name == spelling.split("==", maxsplit=1)[0]


def test_extras() -> None:
    (line,) = parse("Requests[socks,Security]==2.31.0\n").lines
    assert line.name == "requests"
    assert line.requirement.extras == {"socks", "Security"}
    assert line.pinned_version == Version("2.31.0")


def test_markers_are_kept_not_evaluated() -> None:
    parsed = parse(
        'pywin32==306; sys_platform == "win32"\n'
        'uvloop==0.19.0 ; sys_platform != "win32" and python_version >= "3.8"\n'
    )
    assert names(parsed) == ["pywin32", "uvloop"]
    first, second = parsed.lines
    assert str(first.requirement.marker) == 'sys_platform == "win32"'
    assert second.requirement.marker is not None
    assert "python_version" in str(second.requirement.marker)


def test_same_name_on_two_lines_is_kept_twice() -> None:
    parsed = parse(
        'numpy==1.24.4; python_version < "3.9"\nnumpy==1.26.4; python_version >= "3.9"\n'
    )
    assert names(parsed) == ["numpy", "numpy"]
    assert [line.location for line in parsed.lines] == [
        "requirements.txt:1",
        "requirements.txt:2",
    ]


def test_hashes_multiple_forms_in_order_and_lower_cased() -> None:
    text = f"foo==1.0 --hash=sha256:{HASH_A} --hash sha256:{HASH_B.upper()}\n"
    (line,) = parse(text).lines
    assert line.hashes == (HASH_A, HASH_B)


def test_hash_after_marker() -> None:
    (line,) = parse(f'foo==1.0; python_version >= "3.8" --hash=sha256:{HASH_A}\n').lines
    assert line.hashes == (HASH_A,)
    assert str(line.requirement.marker) == 'python_version >= "3.8"'


def test_continuations_keep_first_line_number() -> None:
    text = (
        "# header\n"
        "foo==1.0 \\\n"
        f"    --hash=sha256:{HASH_A} \\\n"
        f"    --hash=sha256:{HASH_B}\n"
        "bar==2.0\n"
    )
    parsed = parse(text)
    assert parsed.rejections == ()
    foo, bar = parsed.lines
    assert (foo.name, foo.location, foo.hashes) == ("foo", "requirements.txt:2", (HASH_A, HASH_B))
    assert (bar.name, bar.location) == ("bar", "requirements.txt:5")


def test_continuation_ended_by_comment_or_end_of_file() -> None:
    parsed = parse("foo==1.0 \\\n# a comment ends it\nbar==2.0 \\")
    assert names(parsed) == ["foo", "bar"]
    assert [line.location for line in parsed.lines] == [
        "requirements.txt:1",
        "requirements.txt:3",
    ]


def test_comments_and_blank_lines() -> None:
    text = (
        "# full-line comment\n"
        "   # indented comment\n"
        "\n"
        "   \n"
        "foo==1.0  # trailing comment, with non-ASCII: café ✓\n"
        f"bar==2.0\t# tab before the hash --hash=sha256:{HASH_A}\n"
    )
    parsed = parse(text)
    assert parsed.rejections == ()
    assert names(parsed) == ["foo", "bar"]
    assert parsed.lines[0].location == "requirements.txt:5"
    # the --hash inside the comment is not an option
    assert parsed.lines[1].hashes == ()


def test_crlf_line_endings_and_bom() -> None:
    parsed = parse(f"\ufefffoo==1.0 \\\r\n  --hash=sha256:{HASH_A}\r\nbar==2.0\r\n")
    assert parsed.rejections == ()
    assert names(parsed) == ["foo", "bar"]
    assert parsed.lines[0].hashes == (HASH_A,)
    assert parsed.lines[1].location == "requirements.txt:3"


def test_require_hashes_is_accepted_silently() -> None:
    parsed = parse(f"--require-hashes\nfoo==1.0 --hash=sha256:{HASH_A}\n")
    assert parsed.rejections == ()
    assert names(parsed) == ["foo"]


def test_nested_includes_relative_to_including_file() -> None:
    write("reqs/base.txt", "base==1.0\n-r more/inner.txt\nafter==1.0\n")
    write("reqs/more/inner.txt", "\ninner==1.0\n--requirement=../../top.txt\n")
    write("top.txt", "top==1.0\n")
    parsed = parse("first==1.0\n--requirement reqs/base.txt\nlast==1.0\n")
    assert parsed.rejections == ()
    assert [(line.name, line.location) for line in parsed.lines] == [
        ("first", "requirements.txt:1"),
        ("base", "reqs/base.txt:1"),
        ("inner", "reqs/more/inner.txt:2"),
        ("top", "reqs/more/../../top.txt:1"),
        ("after", "reqs/base.txt:3"),
        ("last", "requirements.txt:3"),
    ]


def test_include_follows_the_including_file_not_the_cwd(tmp_path: Path) -> None:
    write("proj/a.txt", "-r b.txt\n")
    write("proj/b.txt", "b==1.0\n")
    write("b.txt", "wrong==1.0\n")  # in the cwd: must not be picked
    parsed = parse_files([tmp_path / "proj" / "a.txt"])
    (line,) = parsed.lines
    assert line.name == "b"
    assert line.location == f"{tmp_path / 'proj' / 'b.txt'}:1"


def test_file_included_twice_is_parsed_once() -> None:
    write("common.txt", "common==1.0\n--pre\n")
    write("a.txt", "-r common.txt\na==1.0\n")
    write("b.txt", "-r common.txt\nb==1.0\n")
    parsed = parse("-r a.txt\n-r b.txt\n-r ./common.txt\n")
    assert names(parsed) == ["common", "a", "b"]
    # its rejection is reported once, at its first inclusion
    assert only_rejection(parsed).location == "common.txt:2"


def test_same_file_given_twice_is_parsed_once() -> None:
    path = write("requirements.txt", "foo==1.0\n")
    assert names(parse_files([path, Path("./requirements.txt")])) == ["foo"]


def test_several_files_in_order() -> None:
    write("a.txt", "a==1.0\n")
    write("b.txt", "b==1.0\n")
    parsed = parse_files([Path("b.txt"), Path("a.txt")])
    assert [line.location for line in parsed.lines] == ["b.txt:1", "a.txt:1"]


def test_parse_text_uses_source_and_base_dir(tmp_path: Path) -> None:
    write("ci/common.txt", "common==1.0\n")
    parsed = parse_text(
        "x==1.0\n-r common.txt\n--pre\n", source="ci/reqs.txt", base_dir=tmp_path / "ci"
    )
    assert [(line.name, line.location) for line in parsed.lines] == [
        ("x", "ci/reqs.txt:1"),
        ("common", "ci/common.txt:1"),
    ]
    assert only_rejection(parsed).location == "ci/reqs.txt:3"


def test_parse_specs() -> None:
    parsed = parse_specs(["requests==2.31.0", "Foo_Bar[x]>=1.0", 'baz; os_name == "nt"'])
    assert parsed.rejections == ()
    assert names(parsed) == ["requests", "foo-bar", "baz"]
    assert {line.location for line in parsed.lines} == {"<command line>"}
    assert [line.pinned_version for line in parsed.lines] == [Version("2.31.0"), None, None]


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("foo==1.0", Version("1.0")),
        ("foo===1.0", Version("1.0")),
        ("foo==1.0+local.1", Version("1.0+local.1")),
        ("foo == 2.0.post1", Version("2.0.post1")),
        ("foo==1.*", None),
        ("foo>=1.0", None),
        ("foo~=1.0", None),
        ("foo==1.0,<2", None),
        ("foo", None),
        ("foo===not-a-version", None),
    ],
)
def test_pinned_version(spec: str, expected: Version | None) -> None:
    (line,) = parse_specs([spec]).lines
    assert line.pinned_version == expected


def test_requirement_line_is_frozen() -> None:
    (line,) = parse_specs(["foo==1.0"]).lines
    assert isinstance(line, RequirementLine)
    with pytest.raises(AttributeError):
        line.name = "bar"  # type: ignore[misc]


# -- refusals as data ----------------------------------------------------------------------------


def assert_refused(text: str, subject: str) -> Rejection:
    """``text`` on line 2 of a file is refused with ``subject``; line 1 and 3 are kept."""
    parsed = parse(f"{VALID}\n{text}\nlast==1.0\n")
    rejection = only_rejection(parsed)
    assert rejection.code == "unsupported"
    assert rejection.subject == subject
    assert rejection.location == "requirements.txt:2"
    assert "\n" not in rejection.message
    assert [line.location for line in parsed.lines] == [
        "requirements.txt:1",
        "requirements.txt:3",
    ]
    return rejection


@pytest.mark.parametrize(
    ("line", "subject"),
    [
        ("-i https://evil.example/simple", "-i"),
        ("-ihttps://evil.example/simple", "-i"),
        ("--index-url https://evil.example/simple", "--index-url"),
        ("--index-url=https://evil.example/simple", "--index-url"),
        ("--extra-index-url https://evil.example/simple", "--extra-index-url"),
        ("-f https://evil.example/links", "-f"),
        ("--find-links ./wheels", "--find-links"),
        ("--find-links=./wheels", "--find-links"),
        ("--no-index", "--no-index"),
        ("--trusted-host evil.example", "--trusted-host"),
        ("-c constraints.txt", "-c"),
        ("--constraint constraints.txt", "--constraint"),
        ("-e .", "-e"),
        ("--editable git+https://github.com/psf/requests", "--editable"),
        ("--no-binary :all:", "--no-binary"),
        ("--only-binary :all:", "--only-binary"),
        ("--prefer-binary", "--prefer-binary"),
        ("--no-require-hashes", "--no-require-hashes"),
        ("--require-hashes=yes", "--require-hashes"),
        ("--require-hashes foo==1.0", "--require-hashes"),
        ("--pre", "--pre"),
        ("--config-settings key=value", "--config-settings"),
        ("--global-option=--no-user-cfg", "--global-option"),
        ("--use-feature=truststore", "--use-feature"),
        ("--index https://evil.example/simple", "--index"),  # optparse would expand it
        ("--some-future-option", "--some-future-option"),
        ("-x", "-x"),
        ("-rother.txt", "-r"),
    ],
)
def test_option_lines_are_refused(line: str, subject: str) -> None:
    rejection = assert_refused(line, subject)
    assert subject in rejection.message


def test_index_url_message_says_why() -> None:
    rejection = assert_refused("--extra-index-url https://evil.example/simple", "--extra-index-url")
    assert "dependency confusion" in rejection.message


@pytest.mark.parametrize(
    ("line", "subject"),
    [
        (f"foo==1.0 --config-settings=a=b --hash=sha256:{HASH_A}", "--config-settings"),
        ("foo==1.0 --global-option build_ext", "--global-option"),
        (f"foo==1.0 --hash=sha256:{HASH_A} --install-option=--prefix=/x", "--install-option"),
        ("foo==1.0 -i https://evil.example/simple", "-i"),
    ],
)
def test_options_on_requirement_lines_are_refused(line: str, subject: str) -> None:
    assert_refused(line, subject)


@pytest.mark.parametrize(
    ("line", "subject"),
    [
        ("-r https://evil.example/reqs.txt", "-r"),
        ("--requirement https://evil.example/reqs.txt", "--requirement"),
        ("--requirement=http://evil.example/reqs.txt", "--requirement"),
        ("-r file:///etc/reqs.txt", "-r"),
    ],
)
def test_remote_includes_are_refused(line: str, subject: str) -> None:
    rejection = assert_refused(line, subject)
    assert "remote" in rejection.message


@pytest.mark.parametrize(
    ("line", "subject"),
    [
        ("foo==${VERSION}", "${VERSION}"),
        ("-r ${DIR}/base.txt", "${DIR}"),
        ("--index-url ${PIP_INDEX_URL}", "${PIP_INDEX_URL}"),
        (f"foo==1.0 --hash=sha256:${{HASH}}{HASH_A[:56]}", "${HASH}"),
        ("${lower_case_too}==1.0", "${lower_case_too}"),
    ],
)
def test_environment_variables_are_refused(line: str, subject: str) -> None:
    assert_refused(line, subject)


def test_environment_variable_in_a_comment_is_ignored() -> None:
    assert names(parse("foo==1.0  # set ${VERSION} by hand\n")) == ["foo"]


@pytest.mark.parametrize(
    ("line", "subject"),
    [
        (
            "git+https://github.com/psf/requests.git#egg=requests",
            "git+https://github.com/psf/requests.git#egg=requests",
        ),
        ("hg+https://hg.example/repo#egg=foo", "hg+https://hg.example/repo#egg=foo"),
        ("requests @ git+https://github.com/psf/requests.git", "requests"),
        ("Foo_Bar[x] @ https://example.com/foo_bar-1.0-py3-none-any.whl", "foo-bar"),
        ("name @ file.whl", "name"),
        ("name@./local", "name"),
        ("https://example.com/foo-1.0.tar.gz", "https://example.com/foo-1.0.tar.gz"),
        ("file:../foo", "file:../foo"),
        (
            "file:///srv/wheels/foo-1.0-py3-none-any.whl",
            "file:///srv/wheels/foo-1.0-py3-none-any.whl",
        ),
        ("./dir", "./dir"),
        (".", "."),
        ("../sibling", "../sibling"),
        ("/abs/path", "/abs/path"),
        ("dir/sub", "dir/sub"),
        ("~/src/foo", "~/src/foo"),
        ("..\\win\\path", "..\\win\\path"),
        ("C:\\wheels\\foo-1.0-py3-none-any.whl", "C:\\wheels\\foo-1.0-py3-none-any.whl"),
        ("foo-1.0-py3-none-any.whl", "foo-1.0-py3-none-any.whl"),
        ("foo.whl", "foo.whl"),
        ("foo-1.0.tar.gz", "foo-1.0.tar.gz"),
        ("foo.tar.gz", "foo.tar.gz"),  # a valid PEP 508 name that pip installs as a file
        ("foo-1.0.zip", "foo-1.0.zip"),
    ],
)
def test_vcs_url_and_path_requirements_are_refused(line: str, subject: str) -> None:
    assert_refused(line, subject)


def test_url_credentials_are_not_repeated() -> None:
    rejection = assert_refused(
        "https://user:s3cr3t@example.com/foo-1.0.tar.gz", "https://***@example.com/foo-1.0.tar.gz"
    )
    assert "s3cr3t" not in rejection.message
    rejection = assert_refused("-r https://user:s3cr3t@example.com/reqs.txt", "-r")
    assert "s3cr3t" not in rejection.message


@pytest.mark.parametrize(
    ("line", "subject", "described"),
    [
        ("r\u0435quests==2.31.0", "r\\u0435quests", "U+0435 CYRILLIC SMALL LETTER IE"),
        ("\uff52equests==2.31.0", "\\uff52equests", "U+FF52 FULLWIDTH LATIN SMALL LETTER R"),
        ("requests\u200b==2.31.0", "requests\\u200b", "U+200B ZERO WIDTH SPACE"),
        ("\u200brequests==2.31.0", "\\u200brequests", "U+200B ZERO WIDTH SPACE"),
        ("requests\u00a0==2.31.0", "requests\\u00a0", "U+00A0 NO-BREAK SPACE"),
        # pip's \s would take NBSP before '#' as a comment start; safepip refuses the line
        ("requests==2.31.0\u00a0# x", "requests", "U+00A0 NO-BREAK SPACE"),
        ('foo==1.0; platform_release == "\u0435"', "foo", "U+0435 CYRILLIC SMALL LETTER IE"),
        ("foo==1.0 --hash=sha256:" + "\uff41" * 64, "foo", "U+FF41 FULLWIDTH LATIN SMALL"),
        ("requests\U0001d41a==1.0", "requests\\U0001d41a", "U+1D41A MATHEMATICAL BOLD SMALL A"),
        ("requests==2.31.0\u2028evil==1.0", "requests", "U+2028 LINE SEPARATOR"),
        ("evil==1.0\rrequests==2.31.0", "evil", "U+000D"),
        ("requests==2.31.0\x1b[2K", "requests", "U+001B"),
        ("requests==2.31.0\x0cevil==1.0", "requests", "U+000C"),
        ("requests==2.31.0\x00", "requests", "U+0000"),
        ("-i\u00a0https://evil.example", "-i\\u00a0https://evil.example", "U+00A0"),
    ],
)
def test_non_ascii_and_control_characters_are_refused(
    line: str, subject: str, described: str
) -> None:
    rejection = assert_refused(line, subject)
    assert described in rejection.message


@pytest.mark.parametrize(
    "line",
    [
        "# \u202eevil==1.0",  # bidi override (Trojan Source)
        "foo==1.0  # note\u200b",
        "# harmless\revil==1.0",
        "#\x1b[1A",
        "# end\u2029",
    ],
)
def test_invisible_characters_in_comments_are_refused(line: str) -> None:
    parsed = parse(f"{VALID}\n{line}\n")
    rejection = only_rejection(parsed)
    assert (rejection.code, rejection.subject, rejection.location) == (
        "unsupported",
        "comment",
        "requirements.txt:2",
    )


@pytest.mark.parametrize(
    ("value", "wording"),
    [
        (f"md5:{'a' * 32}", "only sha256"),
        (f"sha512:{'a' * 128}", "only sha256"),
        (f"sha1:{'a' * 40}", "only sha256"),
        (f"SHA256:{HASH_A}", "only sha256"),
        (f"sha256:{HASH_A[:63]}", "malformed"),
        (f"sha256:{HASH_A}a", "malformed"),
        (f"sha256:{'g' * 64}", "malformed"),
        (f"sha256:{HASH_A[:62]}  ", "malformed"),
        ("sha256:", "malformed"),
        (HASH_A, "malformed"),
        (f":{HASH_A}", "malformed"),
    ],
)
def test_bad_hashes_are_refused(value: str, wording: str) -> None:
    rejection = assert_refused(f"Foo_Bar==1.0 --hash={value}", "foo-bar")
    assert wording in rejection.message


def test_hash_option_without_value_is_refused() -> None:
    rejection = assert_refused("foo==1.0 --hash", "foo")
    assert "malformed" in rejection.message


def test_each_bad_hash_on_a_line_is_reported() -> None:
    parsed = parse(f"foo==1.0 --hash=md5:{'a' * 32} --hash=sha256:{HASH_A} --hash=sha256:x\n")
    assert parsed.lines == ()
    assert [r.message.split(" ")[0] for r in parsed.rejections] == [
        "--hash=md5:" + "a" * 32,
        "malformed",
    ]


def test_all_refusals_are_reported_in_one_run() -> None:
    write("inc.txt", "ok==1.0\n--trusted-host evil.example\n")
    parsed = parse(
        "-i https://evil.example/simple\n"
        "good==1.0\n"
        "-r inc.txt\n"
        "git+https://evil.example/x.git\n"
        "foo==1.0 \\\n"
        "  --hash=md5:abc\n"
        "r\u0435quests==2.31.0\n"
    )
    assert [(r.subject, r.location) for r in parsed.rejections] == [
        ("-i", "requirements.txt:1"),
        ("--trusted-host", "inc.txt:2"),
        ("git+https://evil.example/x.git", "requirements.txt:4"),
        ("foo", "requirements.txt:5"),
        ("r\\u0435quests", "requirements.txt:7"),
    ]
    assert names(parsed) == ["good", "ok"]


def test_spec_refusals() -> None:
    parsed = parse_specs(
        ["git+https://github.com/psf/requests", "r\u0435quests==2.31.0", "./dir", "ok==1.0"]
    )
    assert [(r.subject, r.location) for r in parsed.rejections] == [
        ("git+https://github.com/psf/requests", "<command line>"),
        ("r\\u0435quests", "<command line>"),
        ("./dir", "<command line>"),
    ]
    assert names(parsed) == ["ok"]


# -- failures to proceed (exit 2) ----------------------------------------------------------------


def test_missing_file() -> None:
    with pytest.raises(RequirementsError) as info:
        parse_files([Path("missing.txt")])
    assert info.value.exit_code == 2
    assert "missing.txt" in str(info.value)


def test_missing_include_names_the_including_line() -> None:
    message = parse_error("foo==1.0\n\n-r nowhere/else.txt\n")
    assert message.startswith("requirements.txt:3: ")
    assert "nowhere/else.txt" in message


def test_directory_include_is_refused() -> None:
    Path("adir").mkdir()
    message = parse_error("-r adir\n")
    assert message.startswith("requirements.txt:1: ")
    assert "adir" in message


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs FIFOs")
def test_fifo_include_is_refused_without_blocking() -> None:
    os.mkfifo("pipe")
    message = parse_error("-r pipe\n")
    assert message.startswith("requirements.txt:1: ")
    assert "not a regular file" in message


def test_oversized_file_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(requirements_module, "MAX_FILE_BYTES", 100)
    write("big.txt", "# padding\n" * 11)
    message = parse_error("ok==1.0\n-r big.txt\n")
    assert message.startswith("requirements.txt:2: big.txt: larger than 100 bytes")


def test_self_include_is_a_loop() -> None:
    message = parse_error("foo==1.0\n-r requirements.txt\n")
    assert message == ("requirements.txt:2: -r loop: requirements.txt -> requirements.txt")


def test_include_loop_through_other_files() -> None:
    write("sub/b.txt", "b==1.0\n-r ../c.txt\n")
    write("c.txt", "\n\n-r requirements.txt\n")
    message = parse_error("-r sub/b.txt\n")
    # included files are named by joining the including file's folder and the -r path
    assert message == (
        "sub/../c.txt:3: -r loop: requirements.txt -> sub/b.txt -> sub/../c.txt"
        " -> sub/../requirements.txt"
    )


@pytest.mark.skipif(sys.platform == "win32", reason="symlinks need privileges on Windows")
def test_include_loop_through_a_symlink() -> None:
    write("real/a.txt", "-r link.txt\n")
    Path("real/link.txt").symlink_to("a.txt")
    with pytest.raises(RequirementsError, match=r"^real/a\.txt:1: -r loop: "):
        parse_files([Path("real/a.txt")])


@pytest.mark.parametrize(
    "line",
    ["requests==", "requests (>=", "foo==1.0#comment-without-space", "foo bar", "[extra]==1.0"],
)
def test_unparsable_line_names_file_line_and_packaging_reason(line: str) -> None:
    message = parse_error(f"ok==1.0\n\\\n{line}\n")
    # a continuation joins lines 2 and 3: the location is the first physical line
    assert message.startswith(f"requirements.txt:2: cannot parse requirement {line!r}: ")
    assert "Expected" in message  # what packaging said
    assert "\n" not in message


def test_not_utf8_names_the_line() -> None:
    Path("requirements.txt").write_bytes(b"ok==1.0\n# caf\xe9 (latin-1)\n")
    with pytest.raises(RequirementsError) as info:
        parse_files([Path("requirements.txt")])
    assert str(info.value).startswith("requirements.txt:2: not UTF-8")


def test_not_utf8_in_an_included_file() -> None:
    Path("inc.txt").write_bytes(b"\n\n\xff\xfe\n")
    message = parse_error("-r inc.txt\n")
    assert message.startswith("inc.txt:3: not UTF-8")


def test_stray_hash_line() -> None:
    message = parse_error(f"foo==1.0\n--hash=sha256:{HASH_A}\n")
    assert message.startswith("requirements.txt:2: --hash without a requirement")


def test_trailing_comment_ending_in_backslash() -> None:
    # pip would swallow "evil==1.0" into the comment; a reader would not
    message = parse_error("foo==1.0  # pinned \\\nevil==1.0\n")
    assert message.startswith("requirements.txt:1: a trailing comment ends in `\\`")


def test_full_line_comment_ending_in_backslash_is_just_a_comment() -> None:
    assert names(parse("# comment \\\nfoo==1.0\n")) == ["foo"]


def test_two_requirements_on_one_line() -> None:
    message = parse_error(f"ok==1.0\nfoo==1.0 --hash=sha256:{HASH_A} bar==2.0\n")
    assert message.startswith("requirements.txt:2: unexpected 'bar==2.0'")


@pytest.mark.parametrize("line", ["-r", "-r a.txt b.txt", "--requirement=", "--requirement= x"])
def test_include_needs_one_file_name(line: str) -> None:
    message = parse_error(f"ok==1.0\n{line}\n")
    assert message.startswith("requirements.txt:2: ")
    assert "exactly one file name" in message


@pytest.mark.parametrize(
    ("spec", "wording"),
    [("", "empty requirement"), ("-r", "is an option"), ("requests==", "cannot parse")],
)
def test_bad_specs(spec: str, wording: str) -> None:
    with pytest.raises(RequirementsError) as info:
        parse_specs(["ok==1.0", spec])
    assert info.value.exit_code == 2
    assert str(info.value).startswith("<command line>: ")
    assert wording in str(info.value)
