"""A refusal's message: what the user reads when a command refuses its input (a HostctlError).
Tests compare it with the exact expected text."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from hostctl.errors import HostctlError


def refusal(call: Callable[..., object], *args: object, **kwargs: object) -> str:
    """Calls `call(*args, **kwargs)`, which must refuse (raise HostctlError; the test fails
    if it does not), and returns the refusal's message."""
    with pytest.raises(HostctlError) as err:
        call(*args, **kwargs)
    return str(err.value)
