"""Quote values for systemd unit files, following systemd v252.

`ExecStart=` is not a shell command line. systemd reads it in two stages, and an argument must
survive both:

1. Loading the unit (`config_parse_exec` in src/core/load-fragment.c): the value is split into
   words by `extract_first_word(EXTRACT_UNQUOTE|EXTRACT_CUNESCAPE)` (double or single quotes,
   C escapes such as `\\n`, `\\xNN`, `\\uNNNN`), then `%` specifiers are expanded in each word
   (`unit_full_printf`). A bare `;` word separates commands; `\\;` is a literal `;` argument.
2. Starting the process (`replace_env_argv` in src/basic/env-util.c): `$$` becomes `$`,
   `${NAME}` is replaced, and a word that is exactly `$NAME` is replaced by that variable split
   into several words, or dropped when the variable is unset.

`exec_line` writes each argument so that both stages give it back byte for byte:
`%` -> `%%`, `$` -> `$$`, `\\` and `"` escaped, control characters as C escapes inside double
quotes, `;` as `\\;`, the empty string as `""`. Plain words stay unquoted so rendered units stay
readable. tests/systemd_exec_parser.py re-implements systemd's parser to prove the round trip,
and tests/test_systemd_quoting.py checks the same lines against the real systemd 252.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

# conf-parser.c reads unit files with read_line(f, LONG_LINE_MAX, ...) and refuses longer lines
# ("Line too long"), which makes the whole unit fail to load. LONG_LINE_MAX is 1 MiB (fileio.h).
LONG_LINE_MAX = 1 << 20
# Room kept for the longest setting name in front of the value ("ExecStartPost=-", ...).
_KEY_RESERVE = 64
MAX_VALUE_BYTES = LONG_LINE_MAX - _KEY_RESERVE

# The program path goes through unit_path_printf(), limited to PATH_MAX-1 bytes, and
# path_is_valid(), which limits each component to NAME_MAX bytes.
PATH_MAX = 4096
NAME_MAX = 255
# The kernel refuses execve() when one argument (with its NUL) exceeds MAX_ARG_STRLEN
# (32 pages, include/uapi/linux/binfmts.h): say so now rather than as a failed start later.
MAX_ARG_STRLEN = 32 * 4096

# Words made only of these characters need no quoting. Anything that reads like shell syntax
# (`$`, `|`, `*`, quotes, ...) is quoted so nobody mistakes the line for a shell command.
_SAFE_WORD = re.compile(r"[A-Za-z0-9_@%+=:,./-]+")

_CONTROL_CHAR = re.compile(r"[\x00-\x1f\x7f]")
_UNSAFE_PATH_CHAR = re.compile(r"[\x00-\x1f\x7f\"'\\]")

_NAMED_ESCAPES = {"\\": "\\\\", '"': '\\"', "\n": "\\n", "\t": "\\t", "\r": "\\r"}


class UnitQuotingError(ValueError):
    """A value cannot be written into a unit file so that systemd reads it back unchanged."""


class LineTooLongError(UnitQuotingError):
    """The rendered value would exceed systemd's line length limit (LONG_LINE_MAX)."""


def exec_line(argv: Sequence[str]) -> str:
    """Return the text after `ExecStart=` that makes systemd v252 run exactly `argv`.

    argv[0] must be an absolute path; no prefix characters (`-`, `@`, `+`, ...) are added.
    Raises UnitQuotingError (a ValueError) when argv cannot be expressed.
    """
    if isinstance(argv, str):
        # A str is a Sequence[str] too; quoting its characters one by one is never intended.
        raise TypeError("exec_line() takes a list of arguments, not a string")
    if not argv:
        raise UnitQuotingError("argv is empty: ExecStart= needs at least the program path")
    for index, arg in enumerate(argv):
        _check_argument(index, arg)
    _check_program(argv[0])
    line = " ".join(_quote_word(arg) for arg in argv)
    _check_length(line, "the ExecStart= command line")
    return line


def setting_value(text: str) -> str:
    """Escape free text for a one-line setting that expands specifiers, such as Description=.

    Decisions, because such settings take the rest of the line verbatim (no quotes, no escapes):
    - `%` is doubled: unit_full_printf() would expand it as a specifier.
    - Every run of whitespace, newlines and tabs included, becomes one space and the ends are
      stripped: a unit file line cannot hold a newline, and systemd strips the ends anyway. A
      Description is a one-line label, so folding a multi-line text is what the user wants.
    - Other control characters are refused: never intended, and invisible in `systemctl status`.
    - An odd number of trailing backslashes is refused: conf-parser.c would join the next line
      to this one, and these settings offer no escape for it.
    Not for settings with their own syntax (ExecStart=, Environment=, paths, ...).
    """
    folded = " ".join(text.split())
    control = _CONTROL_CHAR.search(folded)
    if control is not None:
        char, index = control.group(), control.start() + 1
        raise UnitQuotingError(
            f"control character {char!r} at position {index} cannot appear in a unit setting"
        )
    _check_encodable(folded, "the setting value")
    if not folded.isascii():  # ASCII holds no non-character
        for index, char in enumerate(folded, start=1):
            if not _unichar_is_valid(ord(char)):
                # conf-parser.c drops any line that is not "UTF-8 clean", and unichar_is_valid()
                # counts Unicode non-characters as unclean. These settings have no escapes.
                raise UnitQuotingError(
                    f"non-character U+{ord(char):04X} at position {index} cannot appear in a "
                    "unit setting"
                )
    trailing = len(folded) - len(folded.rstrip("\\"))
    if trailing % 2:
        raise UnitQuotingError(
            "the value ends with a backslash, which systemd reads as a line continuation"
        )
    value = folded.replace("%", "%%")
    _check_length(value, "the setting value")
    return value


def _check_argument(index: int, arg: object) -> None:
    if not isinstance(arg, str):
        raise TypeError(f"argv[{index}] is {type(arg).__name__}, not str")
    why = argument_problem(arg)
    if why is not None:
        raise UnitQuotingError(f"argv[{index}] {why}")


def argument_problem(arg: str) -> str | None:
    """Why `arg` cannot be one argument of an ExecStart= line, or None when it can.

    The rule exec_line applies, for validation to apply to the same values first."""
    if "\0" in arg:
        # C strings end at NUL and systemd refuses \x00 escapes: no way to pass it.
        return "contains a NUL character, which no argv can hold"
    if arg.isascii():  # one byte a character, and nothing UTF-8 cannot write
        size = len(arg)
    else:
        try:
            size = _check_encodable(arg, "it")
        except UnitQuotingError as exc:
            return str(exc).removeprefix("it ")
    if size + 1 > MAX_ARG_STRLEN:
        return (f"is {size} bytes; the kernel limit for one argument is "
                f"{MAX_ARG_STRLEN - 1} bytes")
    return None


def _check_encodable(text: str, what: str) -> int:
    """Return the UTF-8 size of text, refusing lone surrogates (not representable in a file)."""
    try:
        return len(text.encode("utf-8"))
    except UnicodeEncodeError as exc:
        raise UnitQuotingError(
            f"{what} contains {text[exc.start]!r}, which is not valid Unicode text"
        ) from None


def _check_program(path: str) -> None:
    found = _program_problem(path)
    if found is not None:
        why, show = found
        raise UnitQuotingError(f"argv[0] {why}" + show.format(path=path))


def program_problem(path: str) -> str | None:
    """Why systemd would refuse `path` as a program, or run it differently from argv[0];
    None when it would not. The rule exec_line applies, for validation to apply first."""
    found = _program_problem(path)
    return None if found is None else found[0]


def _program_problem(path: str) -> tuple[str, str] | None:
    """(why, how exec_line's message shows the path) or None."""
    if not path.startswith("/"):
        return "must be an absolute path", ", got {path!r}"
    if path.endswith("/"):
        return "names a directory", ": {path!r}"
    # config_parse_exec() refuses these with "Executable name contains special characters"
    # (string_is_safe() in src/basic/string-util.c).
    unsafe = _UNSAFE_PATH_CHAR.search(path)
    if unsafe is not None:
        return f"contains {unsafe.group()!r}, which systemd refuses in an executable path", ""
    if "$" in path:
        # systemd executes the path as written but expands `$` in argv[0] when starting it,
        # so the program and its argv[0] would disagree whichever way we escape it.
        return "contains '$', which systemd cannot pass unchanged", ": {path!r}"
    if len(path.encode("utf-8", "surrogatepass")) > PATH_MAX - 1:
        return f"is longer than PATH_MAX ({PATH_MAX - 1} bytes)", ""
    for part in path.split("/"):
        if len(part.encode("utf-8", "surrogatepass")) > NAME_MAX:
            return f"has a path component longer than NAME_MAX ({NAME_MAX} bytes)", ""
    return None


def _quote_word(arg: str) -> str:
    # Quoting does not protect `%` or `$`: specifiers are expanded after unquoting and
    # environment variables at exec time, so both are doubled in every word.
    if _SAFE_WORD.fullmatch(arg):  # most words: no `$`, `;` or quotes, and not empty
        return arg.replace("%", "%%")
    if arg == ";":
        # A bare `;` separates commands; config_parse_exec() checks for `\;` explicitly.
        return "\\;"
    if arg == "":
        return '""'
    escaped = arg.replace("%", "%%").replace("$", "$$")
    return '"' + "".join(_escape_char(char) for char in escaped) + '"'


def _escape_char(char: str) -> str:
    named = _NAMED_ESCAPES.get(char)
    if named is not None:
        return named
    code = ord(char)
    if code < 0x20 or code == 0x7F:
        return f"\\x{code:02x}"
    if code < 0x80 or char.isprintable():
        return char
    # Invisible or unassigned characters (NBSP, zero-width space, C1 controls, ...) are
    # escaped so the unit file shows them. systemd's \u accepts any non-zero BMP value.
    if code <= 0xFFFF:
        return f"\\u{code:04x}"
    if _unichar_is_valid(code):
        return f"\\U{code:08x}"
    # A non-character such as U+10FFFE: \U refuses it, and written literally it makes systemd
    # drop the whole line ("String is not UTF-8 clean"). \xNN inserts raw bytes, so spell out
    # its UTF-8 encoding byte by byte.
    return "".join(f"\\x{byte:02x}" for byte in char.encode("utf-8"))


def _unichar_is_valid(code: int) -> bool:
    """Mirror unichar_is_valid() in src/basic/utf8.h, which `\\U` escapes must pass."""
    if code >= 0x110000 or (code & 0xFFFFF800) == 0xD800:
        return False
    if 0xFDD0 <= code <= 0xFDEF:
        return False
    return (code & 0xFFFE) != 0xFFFE


def _check_length(value: str, what: str) -> None:
    size = len(value.encode("utf-8"))
    if size > MAX_VALUE_BYTES:
        raise LineTooLongError(
            f"{what} is {size} bytes; systemd refuses unit file lines over {LONG_LINE_MAX} bytes "
            f"(at most {MAX_VALUE_BYTES} bytes are left for the value)"
        )
