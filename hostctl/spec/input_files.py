"""Read the operator's files (inventory, specs, secrets) without hanging or reading without end.

A named pipe, a device or a socket named as an input would block hostctl or feed it forever,
so only regular files are read, and only up to a size no hostctl input comes near.
"""

from __future__ import annotations

import os
import stat

# A site with a thousand services is well under 1 MiB of YAML.
MAX_INPUT_BYTES = 8 * 2**20

_KINDS = (
    (stat.S_ISDIR, "a directory"),
    (stat.S_ISFIFO, "a named pipe (FIFO)"),
    (stat.S_ISSOCK, "a socket"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
)


def not_regular(mode: int) -> str | None:
    """What a file of this `st_mode` is, "a directory", when it is not a regular file."""
    return next((kind for test, kind in _KINDS if test(mode)), None)


class InputFileError(Exception):
    """Why a file cannot be read, worded to follow its name: "is a directory"."""


def read_input(path: str, max_bytes: int = MAX_INPUT_BYTES) -> bytes:
    """The bytes of the regular file at `path`, at most `max_bytes` of them.

    Raises InputFileError with the reason ("not found", "is a named pipe (FIFO)", ...)."""
    if "\0" in path:
        raise InputFileError("has a NUL character in its name, which no file name can hold")
    try:
        # O_NONBLOCK: opening a FIFO for reading would wait for a writer.
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC)
    except FileNotFoundError:
        raise InputFileError("not found") from None
    except PermissionError:
        raise InputFileError("cannot be read: permission denied") from None
    except OSError as exc:
        raise InputFileError(f"cannot be read: {(exc.strerror or 'error').lower()}") from None
    try:
        info = os.fstat(fd)
        kind = not_regular(info.st_mode)
        if kind:
            raise InputFileError(f"is {kind}, not a regular file")
        if info.st_size > max_bytes:
            raise InputFileError(_too_big(max_bytes))
        chunks: list[bytes] = []
        size = 0
        while size <= max_bytes:
            chunk = os.read(fd, max_bytes + 1 - size)
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
        if size > max_bytes:  # it grew while we read
            raise InputFileError(_too_big(max_bytes))
        return b"".join(chunks)
    except OSError as exc:
        raise InputFileError(f"cannot be read: {(exc.strerror or 'error').lower()}") from None
    finally:
        os.close(fd)


def _too_big(max_bytes: int) -> str:
    return f"is larger than {max_bytes // 2**20} MiB, more than any hostctl input needs"


def utf8_problem(data: bytes, exc: UnicodeDecodeError) -> tuple[int, int]:
    """(line, column) of the first byte that is not UTF-8, both from 1; the column counts
    characters, as editors do."""
    start = exc.start
    line = data.count(b"\n", 0, start) + 1
    line_start = data.rfind(b"\n", 0, start) + 1
    column = len(data[line_start:start].decode("utf-8", errors="replace")) + 1
    return line, column
