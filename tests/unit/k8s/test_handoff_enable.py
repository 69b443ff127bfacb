"""The handoff's enable/disable step: one command, quoted for the remote shell."""

from __future__ import annotations

import subprocess

import pytest

from hostctl.k8s.handoff_actions import enable_script


@pytest.mark.parametrize(("verb", "units", "script"), [
    ("disable", ["hostctl-api-1.service", "hostctl-api-2.service"],
     "systemctl disable -- hostctl-api-1.service hostctl-api-2.service >/dev/null 2>&1; true"),
    ("enable", ["hostctl-a-1.service"],
     "systemctl enable -- hostctl-a-1.service >/dev/null 2>&1; true"),
    ("enable", ["x; touch /tmp/pwned", "$(id)"],
     "systemctl enable -- 'x; touch /tmp/pwned' '$(id)' >/dev/null 2>&1; true"),
])
def test_enable_script_quotes_every_word(verb: str, units: list[str], script: str) -> None:
    assert enable_script(verb, units) == script


def test_the_shell_sees_the_units_unchanged() -> None:
    script = enable_script("enable", ["a b", "c;d", "$(echo e)"]).replace(
        " >/dev/null 2>&1; true", "")
    out = subprocess.run(["sh", "-c", 'systemctl() { printf "<%s>" "$@"; }; ' + script],
                         capture_output=True, text=True, check=True, timeout=10)
    assert out.stdout == "<enable><--><a b><c;d><$(echo e)>"
