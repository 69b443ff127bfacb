"""Fixtures the unit tests of more than one package share."""

from __future__ import annotations

import pytest

from hostctl.spec.model import Site
from tests.rigs.site_factory import made_site
from tests.rigs.status_output import SPECS


@pytest.fixture(scope="module")
def status_site(tmp_path_factory: pytest.TempPathFactory) -> Site:
    """The small site whose hosts tests.rigs.status_output.app1_output describes."""
    root = tmp_path_factory.mktemp("status-site")
    return made_site(root, SPECS)
