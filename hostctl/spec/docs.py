"""`hostctl docs SECTION`: the annotated example files, which the tests keep valid."""

from __future__ import annotations

from pathlib import Path

from hostctl.errors import HostctlError
from hostctl.spec.schema import did_you_mean

# section -> (folder, file): the gateway's annotated example lives with the rest of Kong's.
SECTIONS = {
    "inventory": ("docs", "inventory.yml"),
    "service": ("docs", "service.yml"),
    "job": ("docs", "job.yml"),
    "gateway": ("kong", "gateway.example.yml"),
    "logging": ("logging", "logging.example.yml"),
    "metrics": ("logging", "metrics.example.yml"),
    "k3s": ("k8s", "k3s.example.yml"),
}


def data_dir(folder: str) -> Path:
    """Installed wheels carry these folders inside the package; a checkout has them on top."""
    packaged = Path(__file__).parents[1] / "_data" / folder
    return packaged if packaged.is_dir() else Path(__file__).parents[2] / folder


def available() -> list[str]:
    return list(SECTIONS)


def read_doc(section: str) -> str:
    if section not in SECTIONS:
        raise HostctlError(f"no docs section '{section}'{did_you_mean(section, SECTIONS)} "
                           f"(known: {', '.join(SECTIONS)})")
    folder, name = SECTIONS[section]
    return (data_dir(folder) / name).read_text(encoding="utf-8")
