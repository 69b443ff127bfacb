"""The rig's SSH key pair: made once per state directory, used for every sandbox host."""

from __future__ import annotations

import io
import os
import tarfile
import time
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

KEY_FILE = "id_ed25519"
COMMENT = "hostctl-sandbox"


def ensure_keypair(state_dir: Path) -> Path:
    """Return the private key path in state_dir, generating an ed25519 pair the first time."""
    private_path = state_dir / KEY_FILE
    public_path = state_dir / f"{KEY_FILE}.pub"
    if private_path.is_file() and public_path.is_file():
        return private_path
    state_dir.mkdir(parents=True, exist_ok=True)
    key = Ed25519PrivateKey.generate()
    private = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.OpenSSH,
        serialization.NoEncryption(),
    )
    public = key.public_key().public_bytes(
        serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH
    )
    _write(private_path, private, 0o600)
    _write(public_path, public + f" {COMMENT}\n".encode(), 0o644)
    return private_path


def public_key(private_path: Path) -> bytes:
    """The OpenSSH public key line that goes with a key made by `ensure_keypair`."""
    return Path(f"{private_path}.pub").read_bytes()


def authorized_keys_tar(public_line: bytes) -> bytes:
    """A tar of .ssh/authorized_keys for /root, with the modes sshd's StrictModes insists on."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        directory = tarfile.TarInfo(".ssh")
        directory.type, directory.mode, directory.mtime = tarfile.DIRTYPE, 0o700, int(time.time())
        tar.addfile(directory)
        entry = tarfile.TarInfo(".ssh/authorized_keys")
        entry.size, entry.mode, entry.mtime = len(public_line), 0o600, int(time.time())
        tar.addfile(entry, io.BytesIO(public_line))
    return buffer.getvalue()


def _write(path: Path, data: bytes, mode: int) -> None:
    # Created with its final mode so the private key is never readable by others, even briefly.
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
    os.chmod(path, mode)
