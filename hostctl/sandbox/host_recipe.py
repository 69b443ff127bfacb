"""The host image recipe as data: what gets hashed, which commands build it. No side effects.

Everything that shapes the image lives under recipe/ (package list, post-debootstrap script,
files laid over the root filesystem, image config) or in the constants below, and all of it
goes into the hash that names the image, so an edit to any of it builds a new image.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable
from pathlib import Path

RECIPE_DIR = Path(__file__).parent / "recipe"
REPOSITORY = "hostctl-sandbox-host"
RECIPE_LABEL = "io.hostctl.sandbox.recipe"
SUITE = "bookworm"
VARIANT = "minbase"
DEFAULT_MIRROR = "http://deb.debian.org/debian"


def recipe_files(recipe_dir: Path = RECIPE_DIR) -> list[Path]:
    """Every file of the recipe, in a stable order."""
    return sorted(p for p in recipe_dir.rglob("*") if p.is_file() and "__pycache__" not in p.parts)


def recipe_hash(recipe_dir: Path = RECIPE_DIR) -> str:
    """12 hex digits naming this exact recipe (contents, paths and executable bits)."""
    digest = hashlib.sha256(f"{SUITE}\0{VARIANT}\0".encode())
    for path in recipe_files(recipe_dir):
        executable = path.stat().st_mode & 0o111 != 0
        digest.update(f"{path.relative_to(recipe_dir).as_posix()}\0{executable}\0".encode())
        digest.update(path.read_bytes())
        digest.update(b"\0")
    return digest.hexdigest()[:12]


def image_ref(recipe_dir: Path = RECIPE_DIR) -> str:
    """The tag the image built from this recipe carries, e.g. hostctl-sandbox-host:0123abcd4567."""
    return f"{REPOSITORY}:{recipe_hash(recipe_dir)}"


def packages(recipe_dir: Path = RECIPE_DIR) -> list[str]:
    """Packages debootstrap installs on top of the minimal base."""
    return _meaningful_lines((recipe_dir / "packages.txt").read_text())


def debootstrap_argv(rootfs: Path, mirror: str, recipe_dir: Path = RECIPE_DIR) -> list[str]:
    """The debootstrap command that lays down the host's root filesystem."""
    return [
        "debootstrap",
        f"--variant={VARIANT}",
        f"--include={','.join(packages(recipe_dir))}",
        SUITE,
        str(rootfs),
        mirror,
    ]


def customize_argv(rootfs: Path, recipe_dir: Path = RECIPE_DIR) -> list[str]:
    """The post-debootstrap script run against the root filesystem."""
    return ["sh", str(recipe_dir / "customize.sh"), str(rootfs)]


def tar_argv(rootfs: Path, tarball: Path) -> list[str]:
    """Pack the root filesystem for `docker import`, keeping numeric owners as they are."""
    return ["tar", "--numeric-owner", "-C", str(rootfs), "-cf", str(tarball), "."]


def import_changes(hash_: str, recipe_dir: Path = RECIPE_DIR) -> list[str]:
    """Dockerfile-style changes applied at import, plus the label recording the recipe hash."""
    changes = _meaningful_lines((recipe_dir / "image-config.txt").read_text())
    return [*changes, f"LABEL {RECIPE_LABEL}={hash_}"]


def mirror_from_deb822(text: str, suite: str = SUITE) -> str | None:
    """The first URI of a deb822 .sources stanza that carries `suite` itself (not -security)."""
    for stanza in re.split(r"\n\s*\n", text):
        fields = _deb822_fields(stanza)
        if "deb" in fields.get("types", "").split() and suite in fields.get("suites", "").split():
            uris = fields.get("uris", "").split()
            if uris:
                return uris[0]
    return None


def mirror_from_one_line(text: str, suite: str = SUITE) -> str | None:
    """The URI of the first `deb URI SUITE ...` line of a classic sources.list."""
    for line in _meaningful_lines(text):
        words = [w for w in line.split() if not w.startswith("[")]
        if len(words) >= 3 and words[0] == "deb" and words[2] == suite:
            return words[1]
    return None


def find_mirror(apt_dir: Path = Path("/etc/apt"), suite: str = SUITE) -> str:
    """The Debian mirror this machine's apt already uses, so the build needs no other network."""
    candidates: Iterable[tuple[Path, bool]] = [
        *((p, True) for p in sorted(apt_dir.glob("sources.list.d/*.sources"))),
        *((p, False) for p in sorted(apt_dir.glob("sources.list.d/*.list"))),
        (apt_dir / "sources.list", False),
    ]
    for path, deb822 in candidates:
        if not path.is_file():
            continue
        text = path.read_text(errors="replace")
        found = mirror_from_deb822(text, suite) if deb822 else mirror_from_one_line(text, suite)
        if found:
            return found
    return DEFAULT_MIRROR


def _deb822_fields(stanza: str) -> dict[str, str]:
    fields: dict[str, str] = {}
    for line in stanza.splitlines():
        if line.startswith("#") or ":" not in line or line[:1].isspace():
            continue
        key, _, value = line.partition(":")
        fields[key.strip().lower()] = value.strip()
    return fields


def _meaningful_lines(text: str) -> list[str]:
    return [s for s in (line.strip() for line in text.splitlines()) if s and not s.startswith("#")]
