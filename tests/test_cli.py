"""The command line through click's CliRunner: output, JSON and exit codes."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from click.testing import CliRunner

from hostctl.cli import main
from tests.site_factory import SERVICE, make_site

REPO = Path(__file__).resolve().parent.parent
EXAMPLE = str(REPO / "inventories" / "site.yml")


@pytest.fixture
def runner(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("NO_COLOR", "1")
    monkeypatch.setenv("COLUMNS", "100")
    monkeypatch.chdir(tmp_path)
    return CliRunner()


def test_validate_worked_example(runner: CliRunner) -> None:
    result = runner.invoke(main, ["validate", "-i", EXAMPLE])
    assert result.exit_code == 0, result.output
    assert result.output == ("ok: site example: 3 host(s), 3 service(s) (4 instance(s)), "
                             "2 job(s)\n")


def test_validate_json_lists_workloads(runner: CliRunner) -> None:
    result = runner.invoke(main, ["validate", "-i", EXAMPLE, "--json"])
    assert result.exit_code == 0
    data = json.loads(result.output)
    assert data["ok"] is True
    assert data["hosts"] == ["edge-1", "app-1", "gpu-1"]
    assert [(w["name"], w["hosts"]) for w in data["workloads"]] == [
        ("train-triage", ["gpu-1"]), ("nightly-validation", ["app-1"]),
        ("reports-web", ["edge-1"]), ("triage-api", ["app-1"]), ("triage-worker", ["app-1"]),
    ]


def test_bad_input_exits_2_with_every_problem_and_writes_nothing(
        runner: CliRunner, tmp_path: Path) -> None:
    inv = make_site(tmp_path, {"a.yml": SERVICE + "instances: x\nrestart: sometimes\n"})
    result = runner.invoke(main, ["render", "-i", str(inv), "-o", "out"])
    assert result.exit_code == 2
    assert result.stderr.splitlines() == [
        "error: specs/a.yml:10: instances: expected a whole number, got 'x'",
        "error: specs/a.yml:11: restart: 'sometimes' is not one of: always, on-failure, never",
        "2 problems found; nothing was changed.",
    ]
    assert "Traceback" not in result.output
    assert not (tmp_path / "out").exists()


def test_bad_input_json(runner: CliRunner, tmp_path: Path) -> None:
    inv = make_site(tmp_path, {"a.yml": SERVICE + "instances: x\n"})
    result = runner.invoke(main, ["validate", "-i", str(inv), "--json"])
    assert result.exit_code == 2
    assert json.loads(result.stdout) == {"ok": False, "problems": [
        {"file": "specs/a.yml", "line": 10, "path": "instances",
         "message": "expected a whole number, got 'x'"}]}


def test_missing_inventory(runner: CliRunner) -> None:
    result = runner.invoke(main, ["validate", "-i", "nope.yml"])
    assert result.exit_code == 2
    assert result.stderr.splitlines()[0] == "error: nope.yml: inventory not found"


def test_render_writes_a_folder_per_host(runner: CliRunner, tmp_path: Path) -> None:
    result = runner.invoke(main, ["render", "-i", EXAMPLE, "-o", "out", "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert sorted(data["hosts"]) == ["app-1", "edge-1", "gpu-1"]
    unit = tmp_path / "out/edge-1/etc/systemd/system/hostctl-reports-web-1.service"
    assert "ExecStart=/usr/bin/docker run --rm --name hostctl-reports-web-1" in unit.read_text()


def test_internal_errors_say_where_the_trace_went(
        runner: CliRunner, monkeypatch: pytest.MonkeyPatch) -> None:
    import hostctl.loader

    def boom(*_: object, **__: object) -> None:
        raise RuntimeError("kaput")

    monkeypatch.setattr(hostctl.loader, "load_site", boom)
    result = runner.invoke(main, ["validate", "-i", EXAMPLE])
    assert result.exit_code == 70
    # The type and hostctl's innermost frame, never the exception's text: it can hold data.
    assert re.fullmatch(r"internal error: RuntimeError at hostctl/cli\.py:\d+ — this is a bug "
                        r"in hostctl; the full trace is in \S+ \(or rerun with --debug\)\n",
                        result.stderr), result.stderr
    assert "Traceback" not in result.stderr
    trace = result.stderr.split("the full trace is in ")[1].split(" ")[0]
    assert "RuntimeError: kaput" in Path(trace).read_text()
    result = runner.invoke(main, ["--debug", "validate", "-i", EXAMPLE])
    assert isinstance(result.exception, RuntimeError)


def test_docs_sections(runner: CliRunner) -> None:
    result = runner.invoke(main, ["docs", "service"])
    assert result.exit_code == 0
    assert result.output == (REPO / "docs" / "service.yml").read_text()
    result = runner.invoke(main, ["docs", "servce"])
    assert result.exit_code == 1
    assert result.stderr == ("error: no docs section 'servce'; did you mean 'service'? "
                             "(known: inventory, service, job, gateway, logging, metrics, k3s)\n")
