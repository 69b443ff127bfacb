"""Fixtures the unit tests of more than one package share."""

from __future__ import annotations

import pytest

from hostctl.spec.model import Site
from hostctl.validate import load_site
from tests.rigs.site_factory import make_site
from tests.rigs.status_output import SPECS


@pytest.fixture(scope="module")
def status_site(tmp_path_factory: pytest.TempPathFactory) -> Site:
    """The small site whose hosts tests.rigs.status_output.app1_output describes."""
    root = tmp_path_factory.mktemp("status-site")
    return load_site(str(make_site(root, SPECS)))
