"""The command line through click's CliRunner: output, JSON and exit codes."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from hostctl.cli.root import main
from tests.rigs.site_factory import SERVICE, make_site

REPO = Path(__file__).resolve().parents[3]
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
    # "_site": what is for no host (Prometheus, Grafana, Logstash's pipeline)
    assert sorted(data["hosts"]) == ["_site", "app-1", "edge-1", "gpu-1"]
    unit = tmp_path / "out/edge-1/etc/systemd/system/hostctl-reports-web-1.service"
    assert "ExecStart=/usr/bin/docker run --rm --name hostctl-reports-web-1" in unit.read_text()
    assert (tmp_path / "out/_site/prometheus/prometheus.yml").is_file()
    assert (tmp_path / "out/gpu-1/etc/systemd/system/hostctl-exporter.service").is_file()


def test_internal_errors_say_where_the_trace_went(
        runner: CliRunner, monkeypatch: pytest.MonkeyPatch) -> None:
    import hostctl.validate

    def boom(*_: object, **__: object) -> None:
        raise RuntimeError("kaput")

    monkeypatch.setattr(hostctl.validate, "load_site", boom)
    result = runner.invoke(main, ["validate", "-i", EXAMPLE])
    assert result.exit_code == 70
    # The type and hostctl's innermost frame, never the exception's text: it can hold data.
    assert re.fullmatch(r"internal error: RuntimeError at hostctl/cli/root\.py:\d+ — this is a bug "
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


# -- list options: repeated and comma-separated, on every command --------------------------

# Every list option of every command, with what the command needs besides it to parse.
LIST_OPTIONS = [
    (("plan",), "--hosts", "hosts", ["-i", "x.yml"]),
    (("plan",), "--only", "only", ["-i", "x.yml"]),
    (("plan",), "--skip-platform", "skip_platform", ["-i", "x.yml"]),
    (("deploy",), "--hosts", "hosts", ["-i", "x.yml"]),
    (("deploy",), "--only", "only", ["-i", "x.yml"]),
    (("deploy",), "--skip-platform", "skip_platform", ["-i", "x.yml"]),
    (("rollback",), "--hosts", "hosts", ["-i", "x.yml"]),
    (("releases",), "--hosts", "hosts", ["-i", "x.yml"]),
    (("status",), "--hosts", "hosts", ["-i", "x.yml"]),
    (("gateway", "plan"), "--hosts", "hosts", ["-i", "x.yml"]),
    (("gateway", "sync"), "--hosts", "hosts", ["-i", "x.yml"]),
    (("gateway", "status"), "--hosts", "hosts", ["-i", "x.yml"]),
    (("k8s", "render"), "--only", "only", ["-i", "x.yml"]),
    (("k8s", "diff"), "--only", "only", ["-i", "x.yml"]),
    (("k8s", "apply"), "--only", "only", ["-i", "x.yml"]),
]


def _command(path: tuple[str, ...]) -> click.Command:
    cmd: click.Command = main
    for name in path:
        assert isinstance(cmd, click.Group)
        found = cmd.get_command(click.Context(cmd), name)
        assert found is not None, path
        cmd = found
    return cmd


def _parse(path: tuple[str, ...], args: list[str]) -> dict[str, object]:
    cmd = _command(path)
    with cmd.make_context(" ".join(path), list(args)) as ctx:
        return dict(ctx.params)


@pytest.mark.parametrize(("path", "flag", "dest", "needs"), LIST_OPTIONS,
                         ids=[f"{' '.join(p)} {f}" for p, f, _, _ in LIST_OPTIONS])
def test_a_list_option_takes_both_forms(path: tuple[str, ...], flag: str, dest: str,
                                        needs: list[str]) -> None:
    assert _parse(path, needs)[dest] == ()
    assert _parse(path, [*needs, flag, "a,b"])[dest] == ("a", "b")
    assert _parse(path, [*needs, flag, "a", flag, "b"])[dest] == ("a", "b")
    assert _parse(path, [*needs, flag, "a, b", flag, "c", flag, "a"])[dest] == ("a", "b", "c")
    for bad in ("", "a,,b", "a,"):
        with pytest.raises(click.BadParameter) as err:
            _parse(path, [*needs, flag, bad])
        assert err.value.format_message() == (
            f"Invalid value for '{flag}': empty name in '{bad}': give names separated by "
            "commas, or repeat the option")


def test_every_list_option_is_in_the_table() -> None:
    """A new command's --hosts/--only/--skip-platform must take both forms too (and be
    tested above): every option that takes names uses the shared callback."""
    from hostctl.cli.options import split_names

    found = set()

    def walk(cmd: click.Command, path: tuple[str, ...]) -> None:
        if isinstance(cmd, click.Group):
            for name in cmd.list_commands(click.Context(cmd)):
                sub = cmd.get_command(click.Context(cmd), name)
                assert sub is not None
                walk(sub, (*path, name))
            return
        for p in cmd.params:
            if isinstance(p, click.Option) and (p.callback is split_names or
                                                p.opts[0] in ("--hosts", "--only",
                                                              "--skip-platform")):
                found.add((path, p.opts[0], p.callback is split_names))

    walk(main, ())
    # `sandbox up --hosts N` is a count of hosts, not a list of names
    assert found - {(("sandbox", "up"), "--hosts", False)} == {
        (path, flag, True) for path, flag, _, _ in LIST_OPTIONS}


def test_skip_platform_takes_a_comma_list_and_names_the_unknown_one(runner: CliRunner) -> None:
    result = runner.invoke(main, ["plan", "-i", EXAMPLE, "--skip-platform", "gateway,logs"])
    assert result.exit_code == 1
    assert result.stderr == ("error: --skip-platform: no platform service 'logs' "
                             "(known: gateway, logging)\n")


@pytest.mark.parametrize("args", [["--hosts", "app-1,app1"], ["--hosts", "app-1", "--hosts",
                                                                "app1"]])
def test_hosts_list_names_the_unknown_host(runner: CliRunner, args: list[str]) -> None:
    result = runner.invoke(main, ["plan", "-i", EXAMPLE, *args])
    assert result.exit_code == 1
    assert result.stderr == (f"error: --hosts: no host 'app1' in {EXAMPLE}; "
                             "did you mean 'app-1'?\n")


def test_gateway_hosts_refuses_a_host_that_runs_no_gateway(runner: CliRunner) -> None:
    result = runner.invoke(main, ["gateway", "status", "-i", EXAMPLE, "--hosts", "edge-1,app-1"])
    assert result.exit_code == 1
    assert result.stderr == (f"error: --hosts: no gateway host 'app-1' in {EXAMPLE} "
                             "(gateway hosts: edge-1)\n")


def test_every_subcommand_is_found_where_the_lazy_table_says() -> None:
    """The root group imports a command's module only when the command is asked for: its
    table (SUBCOMMANDS) names every command each module defines, and nothing else."""
    import importlib

    from hostctl.cli.root import SUBCOMMANDS

    defined = {}
    for module in set(SUBCOMMANDS.values()):
        for command in importlib.import_module(f"hostctl.cli.{module}").COMMANDS:
            defined[command.name] = module
    assert defined == SUBCOMMANDS
    ctx = click.Context(main)
    assert {n: main.get_command(ctx, n) for n in SUBCOMMANDS} == {
        n: c for n, c in main.commands.items() if n in SUBCOMMANDS}
    assert main.get_command(ctx, "no-such-command") is None


def test_a_command_imports_its_own_module_only() -> None:
    """`hostctl deploy --help` in a fresh interpreter: the other commands' modules are not
    imported (what start-up saves)."""
    code = ("import sys\nfrom hostctl.cli.root import main\n"
            "try:\n    main(['deploy', '--help'])\nexcept SystemExit:\n    pass\n"
            "print(sorted(m for m in sys.modules if m.startswith('hostctl.cli.')))")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=60, check=True)
    assert res.stdout.splitlines()[-1] == str(sorted(
        ["hostctl.cli.connecting", "hostctl.cli.deploy", "hostctl.cli.options",
         "hostctl.cli.root"]))
