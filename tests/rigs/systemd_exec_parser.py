"""A reference model of how systemd v252 turns an `ExecStart=` value into a process argv.

For tests only. It stands for systemd itself, so hostctl's quoting can be checked against
something that is not hostctl. It follows these systemd 252 functions, read from the systemd
sources (github.com/systemd/systemd), rewritten in Python over bytes as systemd works on bytes:

- `config_parse` / `parse_line` in src/shared/conf-parser.c: lines longer than LONG_LINE_MAX
  are refused, a line ending in an odd number of backslashes continues on the next one, a line
  that is not UTF-8 clean (`utf8_is_valid`, which also refuses Unicode non-characters such as
  U+FFFE) is ignored, the value is stripped.
- `config_parse_exec` in src/core/load-fragment.c: words are taken with
  `extract_first_word_and_warn(..., EXTRACT_UNQUOTE|EXTRACT_CUNESCAPE)`; a bare `;` separates
  commands, `\\;` is a literal `;`; the first word may carry the prefixes `-@:+!`; the program
  path must pass `string_is_safe()` and not end in `/`; every word goes through
  `unit_full_printf` (`unit_path_printf` for the path, at most PATH_MAX-1 bytes).
- `extract_first_word` in src/basic/extract-word.c and `cunescape_one` in src/basic/escape.c:
  quotes may open and close anywhere in a word; escapes `\\a \\b \\f \\n \\r \\t \\v \\\\ \\"
  \\' \\s \\xNN \\NNN \\uNNNN \\UNNNNNNNN`, never producing NUL.
- `specifier_printf` in src/shared/specifier.c: `%%` is `%`, an unknown letter or digit after
  `%` is an error ("Failed to resolve unit specifiers"), `%` before anything else stays, a
  trailing `%` stays.
- `replace_env_argv` / `replace_env_n` in src/basic/env-util.c (flags 0, as at exec time):
  `$$` is `$`; `${NAME}` is replaced (empty when unset); `${NAME:-x}` and a bare `$NAME` inside
  a word are left as they are; a word that is exactly `$NAME` becomes the value split like
  `strv_split_full(WHITESPACE, EXTRACT_RELAX|EXTRACT_UNQUOTE)`, or nothing when unset. Skipped
  when the path has the `:` prefix.

Differences, on purpose: systemd only warns about an unknown escape sequence ("Ignoring unknown
escape sequences") and keeps it verbatim; here that is an error unless `strict=False`, because
hostctl must never write one. A program given as a bare name is kept as is: systemd's $PATH
lookup is not modelled. Words are returned as str decoded with "surrogateescape", as Python
does for sys.argv.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

LONG_LINE_MAX = 1 << 20
PATH_MAX = 4096
NAME_MAX = 255
WHITESPACE = b" \t\n\r"
# Specifiers systemd 252 knows in unit files (unit_full_printf's table plus the common
# system, credential and tmp specifiers). Checked against systemd-analyze 252: `%X` for every
# other letter or digit fails to load.
KNOWN_SPECIFIERS_V252 = "abcdfghijlmnopqrstuvwyABCEGHIJLMNPRSTUVWY"

# Plausible values for a system unit named hostctl-test.service, used when the caller gives none.
DEFAULT_SPECIFIERS: dict[str, str] = {
    "a": "x86-64",
    "A": "",
    "b": "0123456789abcdef0123456789abcdef",
    "B": "",
    "c": "/system.slice/hostctl-test.service",
    "C": "/var/cache",
    "d": "/run/credentials/hostctl-test.service",
    "E": "/etc",
    "f": "/hostctl/test",
    "g": "root",
    "G": "0",
    "h": "/root",
    "H": "host1.example.com",
    "i": "",
    "I": "",
    "j": "test",
    "J": "test",
    "l": "host1",
    "L": "/var/log",
    "m": "fedcba9876543210fedcba9876543210",
    "M": "",
    "n": "hostctl-test.service",
    "N": "hostctl-test",
    "o": "debian",
    "p": "hostctl-test",
    "P": "hostctl/test",
    "q": "host1",
    "r": "/system.slice",
    "R": "/",
    "s": "/bin/sh",
    "S": "/var/lib",
    "t": "/run",
    "T": "/tmp",
    "u": "root",
    "U": "0",
    "v": "6.1.0-18-amd64",
    "V": "/var/tmp",
    "w": "12",
    "W": "",
    "y": "/etc/systemd/system/hostctl-test.service",
    "Y": "/etc/systemd/system",
}
assert set(DEFAULT_SPECIFIERS) == set(KNOWN_SPECIFIERS_V252)

# extract_first_word() flags (src/basic/extract-word.h)
RELAX = 1 << 0
CUNESCAPE = 1 << 1
UNESCAPE_RELAX = 1 << 2
UNQUOTE = 1 << 4


class ExecParseError(ValueError):
    """systemd would refuse this ExecStart= value (or, in strict mode, warn about it)."""


@dataclass(frozen=True)
class ExecCommand:
    """One command after loading the unit: what `systemd --test` prints as "Command Line"."""

    path: str
    argv: list[str]
    ignore_failure: bool = False
    no_env_expand: bool = False


def parse_exec_line(
    text: str,
    specifiers: Mapping[str, str] | None = None,
    env: Mapping[str, str] | None = None,
    *,
    strict: bool = True,
) -> list[str]:
    """The argv systemd v252 starts for `ExecStart=<text>` holding exactly one command."""
    commands = load_exec_value(text, specifiers, strict=strict)
    if len(commands) != 1:
        raise ExecParseError(f"expected one command, found {len(commands)} separated by ';'")
    return exec_argv(commands[0], env)


def exec_argv(command: ExecCommand, env: Mapping[str, str] | None = None) -> list[str]:
    """Stage two: the argv after environment expansion at exec time (empty env by default)."""
    if command.no_env_expand:
        return list(command.argv)
    return replace_env_argv(command.argv, env or {})


def load_exec_value(
    text: str, specifiers: Mapping[str, str] | None = None, *, strict: bool = True
) -> list[ExecCommand]:
    """Stage one: the commands systemd keeps after loading the unit (config_parse_exec)."""
    table = DEFAULT_SPECIFIERS if specifiers is None else specifiers
    raw = text.encode("utf-8", "surrogateescape")
    if b"\n" in raw or b"\r" in raw or b"\0" in raw:
        raise ExecParseError("a unit file value cannot contain a line break or NUL")
    if len(raw) > LONG_LINE_MAX:
        raise ExecParseError("Line too long")
    if not _utf8_clean(raw):
        raise ExecParseError("String is not UTF-8 clean, ignoring assignment")
    if _ends_escaped(raw):
        raise ExecParseError("value ends with a backslash: it would continue on the next line")
    value = raw.strip(WHITESPACE)  # parse_line() strstrip()s the value
    if not value:
        raise ExecParseError("empty ExecStart= resets the list; no command")

    commands: list[ExecCommand] = []
    pos: int | None = 0
    semicolon = True
    while semicolon:
        semicolon = False
        first, pos = _extract_and_warn(value, pos, strict)
        if first is None:
            break
        command, pos, semicolon = _parse_one_command(value, pos, first, table, strict)
        commands.append(command)
    if not commands:
        raise ExecParseError("no command")
    return commands


def _parse_one_command(
    value: bytes, pos: int | None, first: bytes, table: Mapping[str, str], strict: bool
) -> tuple[ExecCommand, int | None, bool]:
    ignore = separate_argv0 = no_env = False
    privileged = no_setuid = ambient = False
    i = 0
    # The prefix loop of config_parse_exec(): each prefix at most once ('!' up to twice).
    while i < len(first):
        c = first[i : i + 1]
        if c == b"-" and not ignore:
            ignore = True
        elif c == b"@" and not separate_argv0:
            separate_argv0 = True
        elif c == b":" and not no_env:
            no_env = True
        elif c == b"+" and not (privileged or no_setuid or ambient):
            privileged = True
        elif c == b"!" and not (privileged or no_setuid or ambient):
            no_setuid = True
        elif c == b"!" and not (privileged or ambient):
            no_setuid, ambient = False, True
        else:
            break
        i += 1
    path = _specifier_printf(first[i:], table, PATH_MAX - 1)
    if not path:
        raise ExecParseError("Empty path in command line")
    if not _string_is_safe(path):
        raise ExecParseError(f"Executable name contains special characters: {path!r}")
    if path.endswith(b"/"):
        raise ExecParseError(f"Executable path specifies a directory: {path!r}")
    if not _path_ok(path):
        raise ExecParseError(f"Neither a valid executable name nor an absolute path: {path!r}")

    argv: list[bytes] = [] if separate_argv0 else [path]
    semicolon = False
    while pos is not None and pos < len(value):
        rest = value[pos:]
        if rest[:1] == b";" and (len(rest) == 1 or rest[1:2] in _WS):
            pos = _skip_ws(value, pos + 1)
            semicolon = True
            break
        # config_parse_exec() checks for `\;` itself, since extract_first_word() would
        # refuse `\;` as an unknown escape.
        if rest[:2] == b"\\;" and (len(rest) == 2 or rest[2:3] in _WS):
            pos = _skip_ws(value, pos + 2)
            argv.append(b";")
            continue
        word, pos = _extract_and_warn(value, pos, strict)
        if word is None:
            break
        argv.append(_specifier_printf(word, table, LONG_LINE_MAX))
    if not argv:
        raise ExecParseError("Empty executable name or zeroeth argument")
    command = ExecCommand(
        path=_decode(path),
        argv=[_decode(w) for w in argv],
        ignore_failure=ignore,
        no_env_expand=no_env,
    )
    return command, pos, semicolon


_WS = {bytes([b]) for b in WHITESPACE}


def _skip_ws(value: bytes, pos: int) -> int:
    while pos < len(value) and value[pos] in WHITESPACE:
        pos += 1
    return pos


def _ends_escaped(raw: bytes) -> bool:
    """conf-parser.c: a line whose last backslash is unescaped continues on the next line."""
    escaped = False
    for byte in raw:
        escaped = False if escaped else byte == 0x5C
    return escaped


def _utf8_clean(raw: bytes) -> bool:
    """utf8_is_valid() as parse_line() applies it: valid UTF-8 and no non-characters."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return all(_unichar_is_valid(ord(char)) for char in text)


def _decode(word: bytes) -> str:
    return word.decode("utf-8", "surrogateescape")


def _string_is_safe(path: bytes) -> bool:
    """string_is_safe(): no control characters, quotes or backslashes."""
    return not any(0 < b < 0x20 or b in b"\"'\\\x7f" for b in path)


def _path_ok(path: bytes) -> bool:
    if path.startswith(b"/"):
        return len(path) < PATH_MAX and all(len(part) <= NAME_MAX for part in path.split(b"/"))
    # filename_is_valid(): one component, not "." or ".."
    return b"/" not in path and path not in (b".", b"..") and len(path) <= NAME_MAX


# --- extract_first_word() -----------------------------------------------------------------


def _extract_and_warn(
    value: bytes, pos: int | None, strict: bool
) -> tuple[bytes | None, int | None]:
    """extract_first_word_and_warn(): retry with EXTRACT_UNESCAPE_RELAX after a bad escape."""
    try:
        return extract_first_word(value, pos, WHITESPACE, UNQUOTE | CUNESCAPE)
    except ExecParseError as first_error:
        try:
            word, new_pos = extract_first_word(
                value, pos, WHITESPACE, UNQUOTE | CUNESCAPE | UNESCAPE_RELAX
            )
        except ExecParseError:
            raise ExecParseError(f"Unbalanced quoting: {_decode(value)!r}") from None
        if strict:
            raise ExecParseError(
                f"Ignoring unknown escape sequences: {_decode(word or b'')!r}"
            ) from first_error
        return word, new_pos


def extract_first_word(
    value: bytes, pos: int | None, separators: bytes, flags: int
) -> tuple[bytes | None, int | None]:
    """Return (word, new position); word None when there is none; position None at the end."""
    if pos is None:
        return None, None
    n = len(value)
    while pos < n and value[pos] in separators:
        pos += 1
    if pos >= n:
        return None, None

    out = bytearray()
    quote = 0
    while True:
        if pos >= n:
            if quote:
                if flags & RELAX:
                    return bytes(out), None
                raise ExecParseError("unbalanced quote")
            return bytes(out), None
        c = value[pos]
        if c == 0x5C:  # backslash
            if pos + 1 >= n:
                if flags & UNESCAPE_RELAX and (not quote or flags & RELAX):
                    out.append(0x5C)
                    return bytes(out), None
                if flags & RELAX:
                    return bytes(out), None
                raise ExecParseError("trailing backslash")
            nxt = pos + 1
            if flags & CUNESCAPE:
                decoded = cunescape_one(value, nxt)
                if decoded is None:
                    if flags & UNESCAPE_RELAX:
                        out += b"\\" + value[nxt : nxt + 1]
                        pos = nxt + 1
                    else:
                        raise ExecParseError("unknown escape sequence")
                else:
                    chunk, used = decoded
                    out += chunk
                    pos = nxt + used
            else:
                out += value[nxt : nxt + 1]
                pos = nxt + 1
            continue
        if quote:
            if c == quote:
                quote = 0
            else:
                out.append(c)
            pos += 1
            continue
        if c in (0x22, 0x27) and flags & UNQUOTE:
            quote = c
            pos += 1
            continue
        if c in separators:
            while pos < n and value[pos] in separators:
                pos += 1
            return bytes(out), (pos if pos < n else None)
        out.append(c)
        pos += 1


_SIMPLE_ESCAPES = {
    ord("a"): b"\a",
    ord("b"): b"\b",
    ord("f"): b"\f",
    ord("n"): b"\n",
    ord("r"): b"\r",
    ord("t"): b"\t",
    ord("v"): b"\v",
    ord("\\"): b"\\",
    ord('"'): b'"',
    ord("'"): b"'",
    ord("s"): b" ",
}


def cunescape_one(value: bytes, pos: int) -> tuple[bytes, int] | None:
    """cunescape_one() with accept_nul=false: (bytes, characters used) or None if invalid."""
    c = value[pos]
    if c in _SIMPLE_ESCAPES:
        return _SIMPLE_ESCAPES[c], 1
    if c == ord("x"):
        byte = _hex(value, pos + 1, 2)
        if byte is None or byte == 0:
            return None
        return bytes([byte]), 3  # "eight bit": one raw byte, not UTF-8
    if c in (ord("u"), ord("U")):
        width = 4 if c == ord("u") else 8
        code = _hex(value, pos + 1, width)
        if code is None or code == 0:
            return None
        if c == ord("U") and not _unichar_is_valid(code):
            return None
        return chr(code).encode("utf-8", "surrogatepass"), width + 1
    if ord("0") <= c <= ord("7"):
        octal = value[pos : pos + 3]
        if len(octal) < 3 or any(not ord("0") <= d <= ord("7") for d in octal):
            return None
        code = int(octal, 8)
        if code == 0 or code > 255:
            return None
        return bytes([code]), 3
    return None


def _hex(value: bytes, pos: int, width: int) -> int | None:
    digits = value[pos : pos + width]
    if len(digits) < width or any(chr(d) not in "0123456789abcdefABCDEF" for d in digits):
        return None
    return int(digits, 16)


def _unichar_is_valid(code: int) -> bool:
    if code >= 0x110000 or (code & 0xFFFFF800) == 0xD800:
        return False
    if 0xFDD0 <= code <= 0xFDEF:
        return False
    return (code & 0xFFFE) != 0xFFFE


# --- specifier_printf() -------------------------------------------------------------------

_POSSIBLE_SPECIFIERS = frozenset(b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789%")


def _specifier_printf(word: bytes, table: Mapping[str, str], max_length: int) -> bytes:
    out = bytearray()
    percent = False
    for c in word:
        if percent:
            percent = False
            if c == ord("%"):
                out.append(c)
            elif chr(c) in table:
                out += table[chr(c)].encode("utf-8", "surrogateescape")
            elif c in _POSSIBLE_SPECIFIERS:
                raise ExecParseError(
                    f"Failed to resolve unit specifiers in {_decode(word)!r}: unknown %{chr(c)}"
                )
            else:
                out += bytes([ord("%"), c])
        elif c == ord("%"):
            percent = True
        else:
            out.append(c)
        if len(out) > max_length:
            raise ExecParseError("word too long after specifier expansion")
    if percent:
        out.append(ord("%"))
    if len(out) > max_length:
        raise ExecParseError("word too long after specifier expansion")
    return bytes(out)


# --- replace_env_argv() -------------------------------------------------------------------


def replace_env_argv(argv: list[str], env: Mapping[str, str]) -> list[str]:
    """Environment expansion at exec time, as replace_env_argv() with flags 0."""
    benv = {
        k.encode("utf-8", "surrogateescape"): v.encode("utf-8", "surrogateescape")
        for k, v in env.items()
    }
    result: list[bytes] = []
    for text in argv:
        word = text.encode("utf-8", "surrogateescape")
        if word[:1] == b"$" and word[1:2] not in (b"{", b"$"):
            # A whole-word $NAME: split the value into words; nothing when unset.
            found = benv.get(word[1:])
            if found is not None:
                result.extend(_split_value(found))
            continue
        result.append(_replace_env(word, benv))
    return [_decode(w) for w in result]


def _split_value(value: bytes) -> list[bytes]:
    words: list[bytes] = []
    pos: int | None = 0
    while True:
        word, pos = extract_first_word(value, pos, WHITESPACE, RELAX | UNQUOTE)
        if word is None:
            return words
        words.append(word)


def _replace_env(fmt: bytes, env: Mapping[bytes, bytes]) -> bytes:
    """replace_env_n() with flags 0: only ${NAME} and $$ are replaced."""
    word_state, curly, variable = 0, 1, 2
    state = word_state
    out = bytearray()
    word = 0
    for e, c in enumerate(fmt):
        if state == word_state:
            if c == ord("$"):
                state = curly
        elif state == curly:
            if c == ord("{"):
                out += fmt[word : e - 1]
                word = e - 1
                state = variable
            elif c == ord("$"):
                out += fmt[word:e]
                word = e + 1
                state = word_state
            else:
                state = word_state
        elif state == variable:
            if c == ord("}"):
                out += env.get(fmt[word + 2 : e], b"")
                word = e + 1
                state = word_state
            elif c == ord(":"):
                # ${NAME:-default} needs REPLACE_ENV_ALLOW_EXTENDED, not used for argv
                state = word_state
    out += fmt[word:]
    return bytes(out)
