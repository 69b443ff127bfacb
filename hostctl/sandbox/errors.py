"""The sandbox rig's one error type."""

from __future__ import annotations


class SandboxError(RuntimeError):
    """The sandbox rig could not provide what was asked; the message says how to fix it."""
