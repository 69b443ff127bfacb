"""`hostctl docs SECTION`: the annotated example files, which the tests keep valid."""

from __future__ import annotations

from pathlib import Path

from hostctl.errors import HostctlError
from hostctl.schema import did_you_mean

SECTIONS = {"inventory": "inventory.yml", "service": "service.yml", "job": "job.yml"}


def docs_dir() -> Path:
    packaged = Path(__file__).parent / "_data" / "docs"
    return packaged if packaged.is_dir() else Path(__file__).parent.parent / "docs"


def available() -> list[str]:
    return list(SECTIONS)


def read_doc(section: str) -> str:
    if section not in SECTIONS:
        raise HostctlError(f"no docs section '{section}'{did_you_mean(section, SECTIONS)} "
                           f"(known: {', '.join(SECTIONS)})")
    return (docs_dir() / SECTIONS[section]).read_text(encoding="utf-8")
