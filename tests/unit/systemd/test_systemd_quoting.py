"""ExecStart= quoting: exact outputs, a round-trip property, and the real systemd 252.

Three layers of evidence:
1. exact expected lines for notable argv (the table below),
2. a hypothesis property: the reference parser (tests/rigs/systemd_exec_parser.py, a model of
   systemd's config_parse_exec + specifiers + environment expansion) gives argv back,
3. real systemd: `systemd-analyze verify` loads the lines without a word of complaint, and
   `systemd --test` (run as an unprivileged user, it refuses root) dumps each command's argv as
   systemd holds it after loading the unit. That argv must equal the reference parser's, and
   after the exec-time `$` expansion (modelled, it happens only when a process really starts)
   must equal the original argv. Starting the process for real needs systemd as PID 1: the
   deploy tests on real hosts cover that last step.
"""

from __future__ import annotations

import os
import random
import re
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hostctl.systemd.quoting import (
    MAX_ARG_STRLEN,
    MAX_VALUE_BYTES,
    LineTooLongError,
    UnitQuotingError,
    exec_line,
    setting_value,
)
from tests.rigs.systemd_exec_parser import (
    ExecParseError,
    exec_argv,
    load_exec_value,
    parse_exec_line,
    replace_env_argv,
)

# Variables that a careless quoting would expand: $HOME, ${X}, $X.
ENV = {"HOME": "/root", "X": "expanded x", "PATH": "/usr/bin:/bin"}

EXACT = [
    (["/usr/bin/docker", "run", "--rm", "nginx:1.25"], "/usr/bin/docker run --rm nginx:1.25"),
    (["/bin/echo", "--name=web-1", "-p", "8080:80"], "/bin/echo --name=web-1 -p 8080:80"),
    (["/bin/echo", "100%"], "/bin/echo 100%%"),
    (["/bin/echo", "%n"], "/bin/echo %%n"),
    (["/bin/echo", "%%"], "/bin/echo %%%%"),
    (["/bin/echo", "$HOME"], '/bin/echo "$$HOME"'),
    (["/bin/echo", "${X}"], '/bin/echo "$${X}"'),
    (["/bin/echo", "$"], '/bin/echo "$$"'),
    (["/bin/echo", "a$$b"], '/bin/echo "a$$$$b"'),
    (["/bin/echo", ";"], "/bin/echo \\;"),
    (["/bin/echo", ";;"], '/bin/echo ";;"'),
    (["/bin/echo", "a;b"], '/bin/echo "a;b"'),
    (["/bin/echo", ""], '/bin/echo ""'),
    (["/bin/echo", "a b"], '/bin/echo "a b"'),
    (["/bin/echo", " lead", "trail "], '/bin/echo " lead" "trail "'),
    (["/bin/echo", "a\nb"], '/bin/echo "a\\nb"'),
    (["/bin/echo", "tab\there"], '/bin/echo "tab\\there"'),
    (["/bin/echo", "cr\r"], '/bin/echo "cr\\r"'),
    (["/bin/echo", "\x01\x1b[0m\x7f"], '/bin/echo "\\x01\\x1b[0m\\x7f"'),
    (["/bin/echo", 'say "hi"'], '/bin/echo "say \\"hi\\""'),
    (["/bin/echo", "it's"], '/bin/echo "it\'s"'),
    (["/bin/echo", "C:\\dir\\"], '/bin/echo "C:\\\\dir\\\\"'),
    (["/bin/echo", "\\;"], '/bin/echo "\\\\;"'),
    (["/bin/echo", "héllo wörld"], '/bin/echo "héllo wörld"'),
    (["/bin/echo", "no\u00a0break\u200bzero"], '/bin/echo "no\\u00a0break\\u200bzero"'),
    (["/bin/echo", "\U000e0001"], '/bin/echo "\\U000e0001"'),
    # Non-characters: a literal one makes systemd drop the line as "not UTF-8 clean".
    (["/bin/echo", "\ufffe"], '/bin/echo "\\ufffe"'),
    (["/bin/echo", "\U0010fffe"], '/bin/echo "\\xf4\\x8f\\xbf\\xbe"'),
    (
        ["/bin/sh", "-c", "exec nginx -g 'daemon off;'"],
        "/bin/sh -c \"exec nginx -g 'daemon off;'\"",
    ),
    (["/bin/sh", "-c", "a | b > c"], '/bin/sh -c "a | b > c"'),
    (["/opt/100%/run"], "/opt/100%%/run"),
    (["/opt/my app/run", "x"], '"/opt/my app/run" x'),
    (["/opt/héllo/run"], '"/opt/héllo/run"'),
]


@pytest.mark.parametrize(("argv", "expected"), EXACT, ids=[repr(a[1:]) for a, _ in EXACT])
def test_exact_output(argv: list[str], expected: str) -> None:
    assert exec_line(argv) == expected
    assert parse_exec_line(expected, env=ENV) == argv


REFUSED = [
    ([], UnitQuotingError, "argv is empty"),
    (["docker", "ps"], UnitQuotingError, "argv[0] must be an absolute path, got 'docker'"),
    (["./run"], UnitQuotingError, "argv[0] must be an absolute path"),
    (["/usr/bin/"], UnitQuotingError, "argv[0] names a directory"),
    (["/opt/$HOME/run"], UnitQuotingError, "argv[0] contains '$'"),
    (['/opt/"q"/run'], UnitQuotingError, "argv[0] contains '\"'"),
    (["/opt/a\\b"], UnitQuotingError, "argv[0] contains '\\\\'"),
    (["/opt/a\nb"], UnitQuotingError, "argv[0] contains '\\n'"),
    (["/opt/" + "x" * 256], UnitQuotingError, "longer than NAME_MAX"),
    (["/x" * 2048], UnitQuotingError, "longer than PATH_MAX"),
    (["/bin/echo", "a\0b"], UnitQuotingError, "argv[1] contains a NUL character"),
    (["/bin/echo", "\udcff"], UnitQuotingError, "argv[1] contains '\\udcff'"),
    (["/bin/echo", "x" * MAX_ARG_STRLEN], UnitQuotingError, "the kernel limit for one argument"),
    (["/bin/echo", *["y" * 100_000] * 11], LineTooLongError, "systemd refuses unit file lines"),
    (["/bin/echo", 3], TypeError, "argv[1] is int, not str"),
    ("/bin/echo", TypeError, "not a string"),
]


@pytest.mark.parametrize(
    ("argv", "error", "message"), REFUSED, ids=[str(i) for i in range(len(REFUSED))]
)
def test_refused(argv: list[str], error: type[Exception], message: str) -> None:
    with pytest.raises(error) as info:
        exec_line(argv)
    assert message in str(info.value)


def test_line_too_long_is_a_value_error() -> None:
    assert issubclass(LineTooLongError, UnitQuotingError)
    assert issubclass(UnitQuotingError, ValueError)


# --- the round-trip property ---------------------------------------------------------------

# fmt: off
HOSTILE_PIECES = [
    "%", "%%", "%n", "%x", "$", "$$", "${X}", "$X", "$HOME", "${", "}", '"', "'", "\\", "\\;",
    ";", " ", "\t", "\n", "\r", "\x01", "\x1f", "\x7f", "\x85", "\u00a0", "\u2028", "\ufeff",
    "é", "日", "\U0001f600", "\U000e0001", "\U0010fffe", "-", "@", ":", "+", "!", "#", "*", "|",
    "&", "=", ",", "/", "\\x41", "a", "Z", "0",
]
# fmt: on
HOSTILE = st.sampled_from(HOSTILE_PIECES)
# Any text but NUL (no argv can hold it) and lone surrogates (not Unicode text).
ANY_CHAR = st.characters(exclude_categories=["Cs"], exclude_characters="\0")
ARG = st.lists(st.one_of(HOSTILE, st.text(ANY_CHAR, max_size=4)), max_size=8).map("".join)
PROGRAM = st.lists(
    st.text(
        st.characters(exclude_categories=["Cs", "Cc"], exclude_characters="/\"'\\$\x7f"),
        min_size=1,
        max_size=8,
    ),
    min_size=1,
    max_size=3,
).map(lambda parts: "/" + "/".join(parts))


@settings(max_examples=600, deadline=None)
@given(program=PROGRAM, args=st.lists(ARG, max_size=6))
def test_round_trip_through_reference_parser(program: str, args: list[str]) -> None:
    argv = [program, *args]
    line = exec_line(argv)
    assert "\n" not in line and "\r" not in line
    assert parse_exec_line(line, env=ENV) == argv
    # Quoting must not depend on what the environment holds.
    assert parse_exec_line(line, env={}) == argv


@settings(max_examples=200, deadline=None)
@given(text=st.text(ANY_CHAR, max_size=40))
def test_setting_value_never_breaks_the_line(text: str) -> None:
    try:
        value = setting_value(text)
    except UnitQuotingError:
        return
    assert "\n" not in value and value == value.strip()
    assert value.replace("%%", "").count("%") == 0


# --- the reference parser itself, on hand-written lines ------------------------------------

# Raw ExecStart= values (not written by hostctl) and the argv systemd keeps after loading
# the unit. The same table runs through the real systemd below, which keeps the model honest.
HANDWRITTEN = [
    ('/bin/echo "a"b"c d"', ["/bin/echo", "abc d"]),
    ("/bin/echo 'single \"quoted\"'", ["/bin/echo", 'single "quoted"']),
    ("/bin/e'ch'o x", ["/bin/echo", "x"]),
    ("/bin/echo \\x41\\u00e9\\101\\s", ["/bin/echo", "AéA "]),
    ("/bin/echo %% %- x%", ["/bin/echo", "%", "%-", "x%"]),
    ("/bin/echo $$HOME ${HOME} $HOME", ["/bin/echo", "$$HOME", "${HOME}", "$HOME"]),
    ('/bin/echo a";"b \\; ;x', ["/bin/echo", "a;b", ";", ";x"]),
    ("/bin/echo   spaced\t\twords  ", ["/bin/echo", "spaced", "words"]),
    ("/bin/echo \"\" ''", ["/bin/echo", "", ""]),
]


@pytest.mark.parametrize(("text", "argv"), HANDWRITTEN)
def test_reference_parser_handwritten(text: str, argv: list[str]) -> None:
    (command,) = load_exec_value(text)
    assert command.argv == argv


def test_reference_parser_env_stage() -> None:
    argv = ["/bin/echo", "$$HOME", "${HOME}", "$HOME", "a${X}b", "$UNSET", "${X:-d}", "a$X"]
    assert replace_env_argv(argv, {"HOME": "/r", "X": "1 '2 3'"}) == [
        "/bin/echo",
        "$HOME",
        "/r",
        "/r",
        "a1 '2 3'b",
        "${X:-d}",
        "a$X",
    ]
    assert replace_env_argv(["/bin/echo", "$X"], {"X": "1 '2 3'"}) == ["/bin/echo", "1", "2 3"]


def test_reference_parser_prefixes_and_commands() -> None:
    first, second = load_exec_value("-:/bin/echo $X ; @/bin/true argv0 x")
    assert first.ignore_failure and first.no_env_expand
    assert exec_argv(first, {"X": "y"}) == ["/bin/echo", "$X"]
    assert second.path == "/bin/true" and second.argv == ["argv0", "x"]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("/bin/echo %x", "Failed to resolve unit specifiers"),
        ("/bin/echo %1", "Failed to resolve unit specifiers"),
        ('/bin/echo "\\q"', "Ignoring unknown escape sequences"),
        ('/bin/echo "\\x00"', "Ignoring unknown escape sequences"),
        ('/bin/echo "open', "Unbalanced quoting"),
        ("/bin/echo a\\", "continue on the next line"),
        ("/bin/ec\"h'o", "Unbalanced quoting"),
        ("/bin/", "specifies a directory"),
        ('"/bin/x\\x01"', "special characters"),
        ("/bin/echo a\nb", "line break"),
        ("   ", "empty"),
    ],
)
def test_reference_parser_refuses(text: str, message: str) -> None:
    with pytest.raises(ExecParseError, match=message):
        load_exec_value(text)


def test_reference_parser_relaxed_keeps_unknown_escapes() -> None:
    assert parse_exec_line('/bin/echo "\\q"', strict=False) == ["/bin/echo", "\\q"]


# --- the real systemd ------------------------------------------------------------------------

SYSTEMD = shutil.which("systemd", path="/lib/systemd:/usr/lib/systemd")
ANALYZE = shutil.which("systemd-analyze")


def _need(tool: str | None, name: str) -> str:
    if tool is None:
        if os.environ.get("CI"):
            pytest.fail(f"{name} is required in CI (Debian package 'systemd')")
        pytest.skip(f"{name} not installed")
    return tool


def _hostile_argvs(seed: int, count: int) -> Iterator[list[str]]:
    """Deterministic hostile argv: a fixed seed so a failure can be reproduced."""
    rng = random.Random(seed)
    for _ in range(count):
        args = []
        for _ in range(rng.randint(0, 6)):
            if rng.random() < 0.15:
                args.append(rng.choice(["", ";", "$", "%", "$HOME", "${X}"]))
                continue
            word = "".join(rng.choice(HOSTILE_PIECES) for _ in range(rng.randint(1, 6)))
            if rng.random() < 0.3:
                word += chr(rng.choice([rng.randint(1, 0xD7FF), rng.randint(0xE000, 0x10FFFF)]))
            args.append(word)
        yield ["/bin/echo", *args]


@pytest.fixture(scope="module")
def unit_dir() -> Iterator[Path]:
    # World-readable: `systemd --test` runs as nobody (it refuses to run as root).
    path = Path(tempfile.mkdtemp(prefix="hostctl-systemd-"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path)


def _write_unit(directory: Path, name: str, description: str, lines: list[str]) -> Path:
    body = "".join(f"ExecStart={line}\n" for line in lines)
    unit = directory / name
    unit.write_text(
        f"[Unit]\nDescription={description}\nDefaultDependencies=no\n\n"
        f"[Service]\nType=oneshot\n{body}",
        encoding="utf-8",
    )
    unit.chmod(0o644)
    return unit


def _verify(unit: Path) -> None:
    """systemd-analyze verify: exit 0 and not one message about our unit file."""
    analyze = _need(ANALYZE, "systemd-analyze")
    result = subprocess.run(
        [analyze, "verify", "--recursive-errors=no", str(unit)],
        capture_output=True,
        text=True,
        errors="surrogateescape",
        check=False,
        timeout=120,
        env={**os.environ, "SYSTEMD_LOG_COLOR": "0"},
    )
    ours = [line for line in (result.stdout + result.stderr).split("\n") if unit.name in line]
    assert result.returncode == 0, result.stderr[-2000:]
    assert ours == []


def _dump(unit: Path) -> tuple[str, list[list[str]]]:
    """Run `systemd --test` on the unit; return its Description and each ExecStart argv."""
    systemd = _need(SYSTEMD, "systemd")
    command = [
        systemd,
        "--test",
        "--system",
        f"--unit={unit.name}",
        "--no-pager",
        "--log-target=console",
        "--log-level=warning",
    ]
    if os.geteuid() == 0:
        setpriv = _need(shutil.which("setpriv"), "setpriv")
        command = [setpriv, "--reuid=65534", "--regid=65534", "--clear-groups", *command]
    result = subprocess.run(
        command,
        capture_output=True,
        check=False,
        timeout=120,
        env={
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": str(unit.parent),
            "SYSTEMD_UNIT_PATH": f"{unit.parent}:",
            "SYSTEMD_LOG_COLOR": "0",
            "LANG": "C.UTF-8",
        },
    )
    stdout = result.stdout.decode("utf-8", "surrogateescape")
    stderr = result.stderr.decode("utf-8", "surrogateescape")
    assert result.returncode == 0, stderr[-2000:]
    assert [line for line in stderr.split("\n") if unit.name in line] == []
    # Only "\n" ends a line: arguments may hold U+2028 or U+0085, which str.splitlines() splits on.
    lines = stdout.split("\n")
    start = lines.index(f"\t-> Unit {unit.name}:")
    # our unit may be the last one dumped: then its block runs to the end
    end = next((i for i in range(start + 1, len(lines)) if lines[i].startswith("\t-> Unit ")),
               len(lines))
    section = lines[start:end]
    description = next(line for line in section if line.startswith("\t\tDescription: "))
    prefix = "\t\t\tCommand Line: "
    argvs = [_unquote_dump(line[len(prefix) :]) for line in section if line.startswith(prefix)]
    return description[len("\t\tDescription: ") :], argvs


_DUMP_ESCAPES = {"a": b"\a", "b": b"\b", "f": b"\f", "n": b"\n", "r": b"\r", "t": b"\t", "v": b"\v"}


def _unquote_dump(text: str) -> list[str]:
    """Undo quote_command_line(argv, SHELL_ESCAPE_EMPTY) (src/basic/escape.c, systemd 252).

    Words are joined by one space; a word needing quotes is in double quotes, where `\\`, `"`,
    `$` and a backtick are backslash-escaped and control bytes are C escapes (octal otherwise).
    """
    raw = text.encode("utf-8", "surrogateescape")
    words: list[str] = []
    i = 0
    while i < len(raw):
        if raw[i : i + 1] == b'"':
            out = bytearray()
            i += 1
            while raw[i : i + 1] != b'"':
                if raw[i : i + 1] == b"\\":
                    nxt = chr(raw[i + 1])
                    if nxt in _DUMP_ESCAPES:
                        out += _DUMP_ESCAPES[nxt]
                        i += 2
                    elif nxt.isdigit():
                        out.append(int(raw[i + 1 : i + 4], 8))
                        i += 4
                    else:
                        out.append(raw[i + 1])
                        i += 2
                else:
                    out.append(raw[i])
                    i += 1
            i += 1
        else:
            end = raw.find(b" ", i)
            end = len(raw) if end < 0 else end
            out = bytearray(raw[i:end])
            i = end
        words.append(out.decode("utf-8", "surrogateescape"))
        assert raw[i : i + 1] in (b" ", b""), text
        i += 1
    return words


def test_real_systemd_reads_back_every_argv(unit_dir: Path) -> None:
    argvs = [argv for argv, _ in EXACT] + list(_hostile_argvs(seed=252, count=150))
    lines = [exec_line(argv) for argv in argvs]
    description = 'hostctl quoting test: 100% "real" $HOME \\ ünïcode'
    unit = _write_unit(unit_dir, "hostctl-quoting-test.service", setting_value(description), lines)
    _verify(unit)
    dumped_description, dumped = _dump(unit)
    assert dumped_description == description
    assert len(dumped) == len(argvs)
    for argv, line, loaded in zip(argvs, lines, dumped, strict=True):
        # What real systemd holds after loading equals what the model predicts ...
        (model,) = load_exec_value(line)
        assert loaded == model.argv, line
        # ... and the exec-time $ expansion turns it back into exactly argv.
        assert replace_env_argv(loaded, ENV) == argv, line


def test_real_systemd_agrees_with_reference_parser_on_handwritten_lines(unit_dir: Path) -> None:
    unit = _write_unit(
        unit_dir,
        "hostctl-handwritten-test.service",
        "handwritten",
        [text for text, _ in HANDWRITTEN],
    )
    _verify(unit)
    _, dumped = _dump(unit)
    assert dumped == [argv for _, argv in HANDWRITTEN]


def test_real_systemd_accepts_the_longest_line_we_allow(unit_dir: Path) -> None:
    argv = ["/bin/echo"]
    room = MAX_VALUE_BYTES - len("/bin/echo")
    while room > 0:
        size = min(100_000, room - 1)
        argv.append("z" * size)
        room -= size + 1
    line = exec_line(argv)
    assert len(line) == MAX_VALUE_BYTES
    _verify(_write_unit(unit_dir, "hostctl-long-test.service", "long", [line]))
    with pytest.raises(LineTooLongError):
        exec_line([*argv[:-1], argv[-1] + "z"])


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Web API", "Web API"),
        ("100% uptime", "100%% uptime"),
        ("  two\nlines\t here \n", "two lines here"),
        ("C:\\\\", "C:\\\\"),
        ("$HOME \"q\" 'q'", "$HOME \"q\" 'q'"),
        ("", ""),
    ],
)
def test_setting_value(text: str, expected: str) -> None:
    assert setting_value(text) == expected


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("bell\x07", "control character '\\x07' at position 5"),
        ("ends with \\", "line continuation"),
        ("bad \udcff", "not valid Unicode"),
        ("non \ufffe", "non-character U+FFFE at position 5"),
        ("x" * MAX_VALUE_BYTES + "x", "systemd refuses unit file lines"),
    ],
    ids=["control", "backslash", "surrogate", "non-character", "too-long"],
)
def test_setting_value_refused(text: str, message: str) -> None:
    with pytest.raises(UnitQuotingError, match=re.escape(message)):
        setting_value(text)
