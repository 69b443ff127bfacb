"""Workload names and unit names: tables of exact answers, unit names checked by systemd."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from hostctl.systemd.names import (
    UNIT_PREFIX,
    WORKLOAD_NAME_MAX,
    check_workload_name,
    unit_name,
    unit_name_is_valid,
)
from tests.rigs.systemd_verify import need_analyze

WORKLOAD_NAMES: list[tuple[object, str | None]] = [
    ("web", None),
    ("web-api", None),
    ("a", None),
    ("0", None),
    ("9lives", None),  # a leading digit is fine: units and objects get the 'hostctl-' prefix
    ("a--b", None),
    ("x" * WORKLOAD_NAME_MAX, None),
    ("", "name is empty"),
    (
        "x" * (WORKLOAD_NAME_MAX + 1),
        f"name is 41 characters long; at most 40 are allowed; e.g. '{'x' * 40}'",
    ),
    ("Web-API", "uppercase 'W' at position 1: names are lowercase; e.g. 'web-api'"),
    ("API", "uppercase 'A' at position 1: names are lowercase; e.g. 'api'"),
    (
        "web_api",
        "'_' at position 4 is not allowed (names must also be DNS labels): use '-'; e.g. 'web-api'",
    ),
    (
        "web.api",
        "'.' at position 4 is not allowed (names must also be DNS labels): use '-'; e.g. 'web-api'",
    ),
    ("__", "'_' at position 1 is not allowed (names must also be DNS labels): use '-'"),
    (
        "My_Service.v2",
        "uppercase 'M' at position 1: names are lowercase; e.g. 'my-service-v2'",
    ),
    ("-web", "name must start with a lowercase letter or digit, not '-'; e.g. 'web'"),
    ("web-", "name must end with a lowercase letter or digit, not '-'; e.g. 'web'"),
    ("web api", "' ' at position 4 is not allowed: use a-z, 0-9 and '-'; e.g. 'web-api'"),
    ("web@1", "'@' at position 4 is not allowed: use a-z, 0-9 and '-'; e.g. 'web-1'"),
    ("web/1", "'/' at position 4 is not allowed: use a-z, 0-9 and '-'; e.g. 'web-1'"),
    ("wéb", "'é' at position 2 is not allowed: use a-z, 0-9 and '-'"),
    ("tab\there", "'\\t' at position 4 is not allowed: use a-z, 0-9 and '-'; e.g. 'tab-here'"),
    (None, "name must be a string, not NoneType"),
]


@pytest.mark.parametrize(
    ("name", "message"), WORKLOAD_NAMES, ids=[repr(n)[:24] for n, _ in WORKLOAD_NAMES]
)
def test_check_workload_name(name: str, message: str | None) -> None:
    assert check_workload_name(name) == message


def test_longest_name_fits_kubernetes_and_dns() -> None:
    longest = "x" * WORKLOAD_NAME_MAX
    assert len(f"{UNIT_PREFIX}job-{longest}") <= 52  # Kubernetes CronJob name limit
    assert len(f"{UNIT_PREFIX}{longest}-99999") <= 63  # one DNS label


UNIT_NAMES = [
    (("web", 2), {}, "hostctl-web-2.service"),
    (("job", "nightly"), {"instance": ""}, "hostctl-job-nightly@.service"),
    (("job", "nightly"), {"instance": "scheduled"}, "hostctl-job-nightly@scheduled.service"),
    (("job", "nightly"), {"unit_type": "timer"}, "hostctl-job-nightly.timer"),
    (("x" * WORKLOAD_NAME_MAX, 0), {}, f"hostctl-{'x' * WORKLOAD_NAME_MAX}-0.service"),
]


@pytest.mark.parametrize(("parts", "options", "expected"), UNIT_NAMES)
def test_unit_name(parts: tuple[str | int, ...], options: dict[str, str], expected: str) -> None:
    assert unit_name(*parts, **options) == expected


@pytest.mark.parametrize(
    ("parts", "options", "message"),
    [
        ((), {}, "needs at least one name part"),
        (("web", -1), {}, "not a name or a non-negative number"),
        (("web", True), {}, "not a name or a non-negative number"),
        (("web api",), {}, "'hostctl-web api.service' is not a valid systemd unit name"),
        (("web",), {"unit_type": "serivce"}, "is not a valid systemd unit name"),
        (("x" * 250,), {}, "is not a valid systemd unit name"),
    ],
)
def test_unit_name_refused(
    parts: tuple[str | int, ...], options: dict[str, str], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        unit_name(*parts, **options)


# unit name -> valid for systemd 252 (unit_name_is_valid with any of plain/instance/template)
UNIT_NAME_VALIDITY = [
    ("a.service", True),
    ("hostctl-web-2.service", True),
    ("hostctl-job-x@.service", True),
    ("hostctl-job-x@scheduled.service", True),
    ("a@b@c.service", True),  # only the first '@' separates the instance
    ("a\\x2d:b_c.d.timer", True),
    ("x" * 247 + ".service", True),  # 255 characters
    ("x" * 200 + "@.service", True),  # (verify instantiates templates, so not 255 here)
    ("@a.service", False),
    ("a b.service", False),
    ("a.foo", False),
    ("a", False),
    ("ü.service", False),
    ("a@b c.service", False),
]


@pytest.mark.parametrize(
    ("name", "valid"), UNIT_NAME_VALIDITY, ids=[n[:30] for n, _ in UNIT_NAME_VALIDITY]
)
def test_unit_name_is_valid(name: str, valid: bool) -> None:
    assert unit_name_is_valid(name) is valid


def test_unit_name_is_valid_length_limit() -> None:
    assert not unit_name_is_valid("x" * 248 + ".service")  # 256 characters
    assert unit_name_is_valid("x" * 246 + "@.service")  # 255: a template at the limit
    assert not unit_name_is_valid("")


def test_systemd_agrees_on_unit_names(tmp_path: Path) -> None:
    """`systemd-analyze verify` refuses to load a file whose name is not a valid unit name."""
    analyze = need_analyze()
    for name, valid in UNIT_NAME_VALIDITY:
        unit = tmp_path / name
        unit.write_text("[Service]\nType=oneshot\nExecStart=/bin/true\n", encoding="utf-8")
        result = subprocess.run(
            [analyze, "verify", "--recursive-errors=no", str(unit)],
            capture_output=True,
            text=True,
            check=False,
            timeout=60,
        )
        refused = "Failed to prepare filename" in result.stderr
        assert refused is not valid, (name, result.stderr)
        unit.unlink()
