"""Strict requirements parsing: the subset of pip's syntax that safepip accepts.

The user's requirements file is never handed to pip, so nothing in it can redirect pip. safepip
reads it here and keeps only what it can vet (DESIGN.md §4, THREATS.md class D):

- requirement lines (PEP 508: extras, markers, version specifiers; ``packaging`` does the parsing),
- ``--hash=sha256:<64 hex>`` / ``--hash sha256:<64 hex>`` options on requirement lines,
- full-line comments and trailing comments (``#`` preceded by a space or tab, as pip does),
- ``\\`` line continuations (the joined line keeps the number of its first physical line),
- blank lines, ``\\r\\n`` line endings and a leading UTF-8 byte order mark,
- local ``-r FILE`` / ``--requirement FILE`` / ``--requirement=FILE`` (relative to the including
  file, followed recursively with loop detection),
- ``--require-hashes`` alone on a line, accepted and ignored: safepip always binds every installed
  file to a hash on the signed list and runs pip with ``--require-hashes``, so the option can only
  ask for what already happens. Refusing it would push users to delete a safety line from files
  written for pip's hash-checking mode.

Everything else that could change what gets installed, or where it comes from, is a policy
refusal returned as data (:class:`~safepip.policy.Rejection` with code ``unsupported``, all of them
reported in one run): other option lines, ``${VAR}`` references, VCS / URL / path requirements,
hash algorithms other than sha256, malformed hashes, and non-ASCII or control characters outside
comments (checked on the raw text, before any normalisation, so homoglyph names never reach
``canonicalize_name``). A line that draws a rejection contributes no :class:`RequirementLine`.

Failures to proceed raise :class:`~safepip.errors.RequirementsError` (exit 2): a file that cannot
be read, is not a regular file, is too large or is not UTF-8; a ``-r`` loop; a line that does not
parse as a requirement; a ``--hash`` with no requirement; a trailing comment that ends in ``\\``.

A file included twice (from different places, or named twice) is parsed once, at its first
inclusion: its lines and rejections are not duplicated.
"""

from __future__ import annotations

import os
import re
import stat
import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePath
from typing import Final

from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion, Version

from safepip import pylock
from safepip.errors import RequirementsError
from safepip.policy import Rejection

__all__ = [
    "COMMAND_LINE",
    "MAX_FILE_BYTES",
    "ParsedRequirements",
    "RequirementLine",
    "parse_files",
    "parse_specs",
    "parse_text",
]

#: The ``location`` of requirements given as command-line arguments.
COMMAND_LINE: Final = "<command line>"

#: A requirements file larger than this is refused: no honest one comes close, and the cap keeps
#: ``-r`` of a huge file from exhausting memory.
MAX_FILE_BYTES: Final = 8 * 1024 * 1024

_HASH_RE: Final = re.compile(r"[0-9a-fA-F]{64}")
# A trailing comment starts at a ``#`` preceded by whitespace (pip's rule, which keeps URL
# fragments such as ``#sha256=`` intact). Only ASCII space and tab count: with an NBSP before the
# ``#`` the text stays on the line and is refused as non-ASCII, instead of silently vanishing.
_COMMENT_RE: Final = re.compile(r"(?:^|[ \t])#")
_ENV_VAR_RE: Final = re.compile(r"\$\{[^}]*\}?")
# A URL scheme of two or more characters, so that a Windows drive (``C:``) is not taken for one.
_SCHEME_RE: Final = re.compile(r"[A-Za-z][A-Za-z0-9+.-]+:")
_VCS_RE: Final = re.compile(r"(?:git|hg|svn|bzr)\+", re.IGNORECASE)
_DRIVE_RE: Final = re.compile(r"[A-Za-z]:")
_USERINFO_RE: Final = re.compile(r"(://)[^/@]*@")
# The leading run of a line that would be a project name (used to name the subject of a
# rejection raised before the line is parsed).
_LEADING_NAME_RE: Final = re.compile(r"[^ \t=<>!~;,\[\(@]+")
_VALID_NAME_RE: Final = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9._-]*[A-Za-z0-9])?")
# pip installs a requirement whose name ends like this from a local file, even one that does not
# exist (pip's ``is_archive_file``).
_ARCHIVE_SUFFIXES: Final = (
    ".whl",
    ".zip",
    ".tar",
    ".tar.gz",
    ".tgz",
    ".tar.bz2",
    ".tbz",
    ".tar.xz",
    ".txz",
    ".tar.lz",
    ".tlz",
    ".tar.lzma",
)

_INDEX = "changes where packages come from; safepip uses only the index of the signed list"
_BUILD = "passes options to source builds; safepip installs wheels only and never builds"
_BINARY = "changes the wheel / sdist choice; safepip installs wheels only"
_PIP = "changes pip's behaviour; the user's file never configures pip"
_OPTION_REASONS: Final[dict[str, str]] = {
    "-i": _INDEX,
    "--index-url": _INDEX,
    "--extra-index-url": "adds a second package index (dependency confusion)",
    "-f": "adds a package source outside the signed list",
    "--find-links": "adds a package source outside the signed list",
    "--no-index": _INDEX,
    "--trusted-host": "turns off TLS verification for a host",
    "-c": "constraint files are not supported; pin versions in the requirements file itself",
    "--constraint": "constraint files are not supported; pin versions in the requirements file",
    "-e": "editable installs build from source; safepip installs wheels only",
    "--editable": "editable installs build from source; safepip installs wheels only",
    "--no-binary": _BINARY,
    "--only-binary": _BINARY,
    "--prefer-binary": _BINARY,
    "--no-require-hashes": "turns off hash checking",
    "--pre": "changes which versions are chosen; pin the exact version instead",
    "--config-settings": _BUILD,
    "--global-option": _BUILD,
    "--install-option": _BUILD,
    "--build-option": _BUILD,
    "--use-feature": _PIP,
    "--use-deprecated": _PIP,
}
# Unicode categories refused even in comments: controls, format characters (bidi overrides,
# zero-width), surrogates, private use, unassigned, and line / paragraph separators.
_INVISIBLE_CATEGORIES: Final = frozenset({"Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"})
_GENERIC_OPTION_REASON: Final = "is not an option safepip accepts"
_ACCEPTED: Final = "safepip accepts requirement lines, --hash=sha256:…, comments and local -r"


@dataclass(frozen=True)
class RequirementLine:
    """One accepted requirement: the parsed PEP 508 requirement and where it came from.

    ``name`` is the canonical (PEP 503) name; ``hashes`` are the lower-case sha256 hex digests of
    its ``--hash`` options, in the order given; ``location`` is ``file:line`` (the first physical
    line of a continued line), or ``<command line>``. Markers stay on ``requirement``: evaluating
    them is the caller's job.
    """

    requirement: Requirement
    name: str
    hashes: tuple[str, ...]
    location: str
    #: For a package of a PEP 751 lock file: the dependency groups its marker sees (the file's
    #: ``default-groups``); ``None`` for a requirements line.
    groups: frozenset[str] | None = None

    def applies(self, environment: Mapping[str, str]) -> bool:
        """Whether the line's marker holds in ``environment`` (PEP 508; no extra asked).

        A lock file's marker may test ``extras`` and ``dependency_groups`` (PEP 751): none are
        asked for, and the groups are the file's default ones.

        Raises:
            RequirementsError: such a marker with a ``packaging`` too old to evaluate it.
        """
        marker = self.requirement.marker
        if marker is None:
            return True
        plain = {**environment, "extra": ""}
        if self.groups is None:
            return marker.evaluate(plain)
        try:
            return marker.evaluate(
                {**plain, "extras": frozenset(), "dependency_groups": self.groups},
                context="lock_file",
            )
        except TypeError as exc:  # packaging < 25 has no lock-file markers
            raise RequirementsError(
                f"{self.location}: the marker `{marker}` needs packaging 25 or newer"
            ) from exc

    @property
    def pinned_version(self) -> Version | None:
        """The pinned version: the specifier is exactly one ``==X`` (no ``.*``) or ``===X``.

        ``None`` for anything else, and for ``===X`` when ``X`` is not a valid version.
        """
        specs = list(self.requirement.specifier)
        if len(specs) != 1:
            return None
        spec = specs[0]
        if spec.operator == "===" or (spec.operator == "==" and not spec.version.endswith(".*")):
            try:
                return Version(spec.version)
            except InvalidVersion:
                return None
        return None


@dataclass(frozen=True)
class ParsedRequirements:
    """Accepted requirement lines, in file order, and every refusal found on the way."""

    lines: tuple[RequirementLine, ...]
    rejections: tuple[Rejection, ...]


def parse_files(paths: Sequence[Path]) -> ParsedRequirements:
    """Parse requirements files, following local ``-r`` includes.

    Locations name each file as given (an included file as the including file's folder joined
    with the ``-r`` path). A file named or included more than once is parsed once.

    Raises :class:`RequirementsError` when a file cannot be read, is not a regular file, is
    larger than :data:`MAX_FILE_BYTES` or is not UTF-8, on a ``-r`` loop, and on a line that does
    not parse.
    """
    parser = _Parser()
    for path in paths:
        parser.parse_file(path, str(path), included_from=None)
    return parser.result()


def parse_text(text: str, *, source: str, base_dir: Path) -> ParsedRequirements:
    """Parse the text of a requirements file named ``source`` (used in locations).

    Local ``-r`` paths are resolved against ``base_dir`` and those files are read. Raises
    :class:`RequirementsError` as :func:`parse_files` does.
    """
    parser = _Parser()
    parser.parse_lines(_strip_bom(text), source, base_dir)
    return parser.result()


def parse_specs(specs: Sequence[str]) -> ParsedRequirements:
    """Parse requirements given on the command line; their location is ``<command line>``.

    A spec is a bare PEP 508 requirement: no options, hashes or comments. Raises
    :class:`RequirementsError` for an empty spec, one that looks like an option, or one that does
    not parse.
    """
    parser = _Parser()
    for spec in specs:
        parser.parse_spec(spec)
    return parser.result()


class _Parser:
    """Accumulates lines and rejections across files; remembers which files it has read."""

    def __init__(self) -> None:
        self.lines: list[RequirementLine] = []
        self.rejections: list[Rejection] = []
        self.done: set[Path] = set()
        # (resolved path, displayed name) of the files being parsed, outermost first.
        self.stack: list[tuple[Path, str]] = []

    def result(self) -> ParsedRequirements:
        return ParsedRequirements(lines=tuple(self.lines), rejections=tuple(self.rejections))

    def reject(self, subject: str, message: str, location: str) -> None:
        self.rejections.append(
            Rejection(code="unsupported", subject=subject, message=message, location=location)
        )

    # -- files -------------------------------------------------------------------------------

    def parse_file(self, path: Path, display: str, *, included_from: str | None) -> None:
        """Read ``path`` and parse it, unless it was parsed before; detect include loops."""
        where = f"{included_from}: " if included_from is not None else ""
        try:
            real = path.resolve()
        except (OSError, RuntimeError) as exc:  # RuntimeError: a symlink loop on Python < 3.13
            raise RequirementsError(f"{where}cannot read {display}: {exc}") from exc
        if any(resolved == real for resolved, _ in self.stack):
            names = " -> ".join([*(shown for _, shown in self.stack), display])
            raise RequirementsError(f"{where}-r loop: {names}")
        if real in self.done:
            return
        self.done.add(real)
        text = _read_text(path, display, where)
        if pylock.is_pylock(path):
            self.parse_pylock(text, display)
            return
        self.stack.append((real, display))
        try:
            self.parse_lines(text, display, path.parent)
        finally:
            self.stack.pop()

    def parse_pylock(self, text: str, source: str) -> None:
        """A PEP 751 lock file: each package a locked line (see :mod:`safepip.pylock`)."""
        # As in requirements files: only ASCII, checked on the raw text before anything is read.
        refused = [
            self.refuse_characters(line, f"{source}:{number}")
            for number, line in enumerate(text.splitlines(), 1)
        ]
        if any(refused):
            return
        packages, rejections = pylock.parse(text, source)
        self.rejections.extend(rejections)
        for package in packages:
            self.lines.append(
                RequirementLine(
                    package.requirement,
                    package.name,
                    package.hashes,
                    package.location,
                    package.groups,
                )
            )

    def parse_lines(self, text: str, source: str, base_dir: Path) -> None:
        """Parse the text of one file; ``source`` names it in locations."""
        for number, line in _logical_lines(text, source, self):
            self.parse_line(line, source, f"{source}:{number}", base_dir)

    # -- lines -------------------------------------------------------------------------------

    def parse_line(self, raw: str, source: str, location: str, base_dir: Path) -> None:
        """Parse one logical line (continuations joined, comment already checked)."""
        line = _strip_comment(raw).strip(" \t")
        if not line:
            return
        if self.refuse_characters(line, location):
            return
        env = _ENV_VAR_RE.search(line)
        if env is not None:
            self.reject(
                env.group(0),
                f"environment variable reference {env.group(0)} is not expanded; write the value",
                location,
            )
            return
        if line.startswith("-"):
            self.parse_option_line(line, source, location, base_dir)
            return
        requirement_text, options_text = _split_options(line)
        self.parse_requirement(requirement_text, options_text.split(), location)

    def refuse_characters(self, text: str, location: str) -> bool:
        """Reject ``text`` if it holds anything but printable ASCII and tabs; say if it did.

        This runs on the raw text, before any parsing or normalisation: a Cyrillic U+0435, a
        full-width letter, a zero-width space or an NBSP must never be folded into a name.
        """
        for char in text:
            if char == "\t" or " " <= char <= "~":
                continue
            leading = _LEADING_NAME_RE.match(text)
            subject = _escape(leading.group(0) if leading else text)
            kind = "non-ASCII" if ord(char) > 0x7F else "control"
            self.reject(
                subject,
                f"{kind} character {_describe(char)} in {subject!r}; only ASCII is accepted, and"
                " names are checked before normalisation",
                location,
            )
            return True
        return False

    def parse_option_line(self, line: str, source: str, location: str, base_dir: Path) -> None:
        """A line that starts with ``-``: a local include, ``--require-hashes``, or a refusal."""
        tokens = line.split()
        first = tokens[0]
        option = first.split("=", 1)[0] if first.startswith("--") else first[:2]
        if option in ("-r", "--requirement"):
            if first == option:  # ``-r FILE`` or ``--requirement FILE``
                target = tokens[1] if len(tokens) == 2 else None
            elif option == "--requirement":  # ``--requirement=FILE``
                target = first.split("=", 1)[1] if len(tokens) == 1 else None
            else:  # ``-rFILE``: pip's optparse reads it, but ``-r=FILE`` would mean "=FILE"
                self.reject(option, f"write {option} FILE, with a space: {line!r}", location)
                return
            if not target:
                raise RequirementsError(
                    f"{location}: {option} takes exactly one file name: {line!r}", hint=_ACCEPTED
                )
            self.include(option, target, source, location, base_dir)
            return
        if first == "--require-hashes" and len(tokens) == 1:
            return  # safepip always requires hashes: see the module docstring
        if option == "--hash":
            raise RequirementsError(
                f"{location}: --hash without a requirement on the same line"
                " (is a `\\` missing at the end of the line above?)",
                hint=_ACCEPTED,
            )
        reason = _OPTION_REASONS.get(option, _GENERIC_OPTION_REASON)
        self.reject(option, f"{option} {reason}; {_ACCEPTED}", location)

    def include(self, option: str, target: str, source: str, location: str, base_dir: Path) -> None:
        """Follow ``-r target``: refuse a URL, parse a local file."""
        if _SCHEME_RE.match(target):
            self.reject(
                option,
                f"remote {option} {_redact(target)} is refused; only local files are included",
                location,
            )
            return
        # The displayed name joins the including file's *displayed* folder, so that locations
        # read the way the user wrote the paths, whatever the current directory.
        display = str(PurePath(source).parent / target)
        self.parse_file(base_dir / target, display, included_from=location)

    def parse_spec(self, spec: str) -> None:
        """One requirement from the command line."""
        text = spec.strip(" \t")
        if not text:
            raise RequirementsError(f"{COMMAND_LINE}: empty requirement", hint=_ACCEPTED)
        if self.refuse_characters(text, COMMAND_LINE):
            return
        if text.startswith("-"):
            raise RequirementsError(
                f"{COMMAND_LINE}: {text!r} is an option, not a requirement", hint=_ACCEPTED
            )
        env = _ENV_VAR_RE.search(text)
        if env is not None:
            self.reject(
                env.group(0),
                f"environment variable reference {env.group(0)} is not expanded; write the value",
                COMMAND_LINE,
            )
            return
        self.parse_requirement(text, [], COMMAND_LINE)

    def parse_requirement(self, text: str, options: list[str], location: str) -> None:
        """A requirement and the options that follow it on its line."""
        if self.refuse_reference(text, location):
            return
        try:
            requirement = Requirement(text)
        except InvalidRequirement as exc:
            # packaging's message continues with the line and a caret: keep its first line.
            why = str(exc).splitlines()[0] if str(exc) else "invalid requirement"
            raise RequirementsError(
                f"{location}: cannot parse requirement {text!r}: {why}", hint=_ACCEPTED
            ) from exc
        name = canonicalize_name(requirement.name)
        if requirement.url is not None:  # caught above; kept so that no URL can slip through
            self.reject(name, "direct URL references are refused", location)
            return
        hashes = self.parse_hash_options(name, options, location)
        if hashes is not None:
            self.lines.append(RequirementLine(requirement, name, hashes, location))

    def refuse_reference(self, text: str, location: str) -> bool:
        """Reject VCS, URL and local path requirements; say if it did.

        These are checked before ``packaging`` sees the text, because some of them parse as valid
        names (``foo.tar.gz``) and others do not parse at all (``git+https://…``), and both must
        be refusals, not parse errors.
        """
        head = text.split(";", 1)[0].strip(" \t")
        first = head.split()[0] if head.split() else head
        if "://" in text or _VCS_RE.match(text) or text.lower().startswith("file:"):
            kind = "VCS" if _VCS_RE.match(text) else "URL"
            message = f"{kind} requirement {_redact(text)!r} is refused"
        elif "@" in head:
            message = f"direct reference {_redact(head)!r} is refused"
        elif (
            "/" in head
            or "\\" in head
            or head.startswith((".", "~"))
            or _DRIVE_RE.match(head)
            or first.lower().endswith(_ARCHIVE_SUFFIXES)
        ):
            message = f"local path requirement {head!r} is refused"
        else:
            return False
        self.reject(
            _subject_of(head),
            f"{message}; safepip installs only wheels on the signed list, by name and version",
            location,
        )
        return True

    def parse_hash_options(
        self, name: str, options: list[str], location: str
    ) -> tuple[str, ...] | None:
        """The digests of the ``--hash`` options, or ``None`` if any option was rejected.

        Raises :class:`RequirementsError` on stray text among the options.
        """
        hashes: list[str] = []
        rejected = False
        index = 0
        while index < len(options):
            word = options[index]
            index += 1
            if word == "--hash" or word.startswith("--hash="):
                if word == "--hash":
                    value = options[index] if index < len(options) else ""
                    index += 1
                else:
                    value = word[len("--hash=") :]
                digest = self.check_hash(name, value, location)
                if digest is None:
                    rejected = True
                else:
                    hashes.append(digest)
            elif word.startswith("-"):
                option = word.split("=", 1)[0] if word.startswith("--") else word[:2]
                reason = _OPTION_REASONS.get(option, _GENERIC_OPTION_REASON)
                self.reject(option, f"{option} {reason}; {_ACCEPTED}", location)
                rejected = True
                if word == option and index < len(options) and not options[index].startswith("-"):
                    index += 1  # its value, so that it is not reported as stray text
            else:
                raise RequirementsError(
                    f"{location}: unexpected {word!r} after the options of {name}"
                    " (one requirement per line)",
                    hint=_ACCEPTED,
                )
        return None if rejected else tuple(hashes)

    def check_hash(self, name: str, value: str, location: str) -> str | None:
        """The lower-case digest of one ``--hash`` value, or ``None`` after rejecting it."""
        algorithm, colon, digest = value.partition(":")
        if colon and algorithm and algorithm != "sha256":
            self.reject(name, f"--hash={value} uses {algorithm}; only sha256 is accepted", location)
            return None
        if algorithm != "sha256" or not _HASH_RE.fullmatch(digest):
            self.reject(
                name,
                f"malformed --hash value {value!r}; expected sha256:<64 hex digits>",
                location,
            )
            return None
        return digest.lower()


def _read_text(path: Path, display: str, where: str) -> str:
    """The text of a requirements file.

    Raises :class:`RequirementsError` if it cannot be opened, is not a regular file (a FIFO or a
    device would block or never end), is larger than :data:`MAX_FILE_BYTES`, or is not UTF-8.
    """
    # O_NONBLOCK: opening a FIFO for reading would otherwise wait for a writer forever.
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0)
    try:
        fd = os.open(path, flags)
        with os.fdopen(fd, "rb") as handle:
            if not stat.S_ISREG(os.fstat(handle.fileno()).st_mode):
                raise RequirementsError(f"{where}{display}: not a regular file")
            data = handle.read(MAX_FILE_BYTES + 1)
    except OSError as exc:
        reason = exc.strerror or str(exc)
        raise RequirementsError(f"{where}cannot read {display}: {reason}") from exc
    if len(data) > MAX_FILE_BYTES:
        raise RequirementsError(f"{where}{display}: larger than {MAX_FILE_BYTES} bytes")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise RequirementsError(
            f"{display}:{line}: not UTF-8 (byte 0x{data[exc.start]:02x})",
            hint="save the requirements file as UTF-8",
        ) from exc
    return _strip_bom(text)


def _strip_bom(text: str) -> str:
    # A leading byte order mark is an encoding marker that Windows editors write, not content
    # (pip accepts it too). Anywhere else U+FEFF is a zero-width character and is refused.
    return text.removeprefix("\ufeff")


def _logical_lines(text: str, source: str, parser: _Parser) -> list[tuple[int, str]]:
    """Join ``\\`` continuations and drop full-line comments: (first line number, text) pairs.

    Only ``\\n`` ends a line (with one ``\\r`` before it stripped). ``str.splitlines`` would also
    split at ``\\r``, form feeds and U+2028; those stay on the line and are refused as control or
    non-ASCII characters, so that safepip never sees a different set of lines than a reader does.

    Comments are checked here (through ``parser``) because they are dropped here. Raises
    :class:`RequirementsError` for a trailing comment that ends in ``\\``: pip would swallow the
    next line into the comment, a reader would not.
    """
    result: list[tuple[int, str]] = []
    pending: list[str] = []
    start = 0
    for number, physical in enumerate(text.split("\n"), start=1):
        line = physical.removesuffix("\r")
        location = f"{source}:{number}"
        if line.lstrip(" \t").startswith("#"):
            _check_comment(line.lstrip(" \t"), location, parser)
            # A full-line comment is never continued, and it ends a continued line (as in pip).
            if pending:
                result.append((start, "".join(pending)))
                pending = []
            continue
        if line.endswith("\\"):
            if _COMMENT_RE.search(line):
                raise RequirementsError(
                    f"{location}: a trailing comment ends in `\\`; pip would hide the next line"
                    " inside the comment. Remove the `\\` or move the comment",
                    hint=_ACCEPTED,
                )
            if not pending:
                start = number
            pending.append(line[:-1])
            continue
        comment = _COMMENT_RE.search(line)
        if comment is not None:
            _check_comment(line[comment.start() :], location, parser)
        if pending:
            pending.append(line)
            result.append((start, "".join(pending)))
            pending = []
        else:
            result.append((number, line))
    if pending:  # the last line ended in ``\``
        result.append((start, "".join(pending)))
    return result


def _check_comment(comment: str, location: str, parser: _Parser) -> None:
    """Reject control, format (bidi, zero-width) and line-separator characters in a comment.

    Other non-ASCII text is fine in a comment, which is discarded; these characters are not,
    because they can make a line display differently from what it is (Trojan Source) or be read
    as a line break by other tools.
    """
    for char in comment:
        if char != "\t" and unicodedata.category(char) in _INVISIBLE_CATEGORIES:
            parser.reject(
                "comment",
                f"invisible or control character {_describe(char)} in a comment",
                location,
            )
            return


def _strip_comment(line: str) -> str:
    match = _COMMENT_RE.search(line)
    return line[: match.start()] if match is not None else line


def _split_options(line: str) -> tuple[str, str]:
    """Split a requirement line at its first whitespace-preceded ``-`` token (as pip does)."""
    match = re.search(r"[ \t]-", line)
    if match is None:
        return line, ""
    return line[: match.start()].strip(" \t"), line[match.start() :].strip(" \t")


def _subject_of(head: str) -> str:
    """The canonical name in ``name @ url`` or ``name[extra] @ url``, else the redacted text."""
    if "@" in head and "://" not in head.split("@", 1)[0]:
        candidate = head.split("@", 1)[0].split("[", 1)[0].strip(" \t")
        if _VALID_NAME_RE.fullmatch(candidate):
            return canonicalize_name(candidate)
    return _redact(head)


def _redact(text: str) -> str:
    """``text`` with any ``user:password@`` of a URL replaced, so that tokens are not printed."""
    return _USERINFO_RE.sub(r"\1***@", text)


def _escape(text: str) -> str:
    """``text`` with everything but printable ASCII written as ``\\uXXXX`` (or ``\\UXXXXXXXX``)."""
    return "".join(
        char
        if " " <= char <= "~"
        else (f"\\u{ord(char):04x}" if ord(char) <= 0xFFFF else f"\\U{ord(char):08x}")
        for char in text
    )


def _describe(char: str) -> str:
    """``U+0435 CYRILLIC SMALL LETTER IE``, for a message."""
    name = unicodedata.name(char, "")
    return f"U+{ord(char):04X} {name}".rstrip()
