"""The `hostctl` command line. Heavy modules are imported inside commands so `--help` is fast."""

from __future__ import annotations

import json
import os
import tempfile
import traceback
from collections.abc import Callable
from typing import Any, TypeVar

import click

from hostctl import __version__
from hostctl.cli.options import inventory_option, json_option
from hostctl.errors import ConfigError, HostctlError, printable
from hostctl.spec.secrets import redact

F = TypeVar("F", bound=Callable[..., Any])

# The module (hostctl.cli.X) that defines each subcommand: it is imported when its command
# runs (or --help lists them all), so one command does not pay for the others' imports.
# tests/unit/cli/test_cli.py checks this against each module's COMMANDS.
SUBCOMMANDS = {
    "status": "day2", "logs": "day2", "exec": "day2", "start": "day2", "stop": "day2",
    "restart": "day2",
    "plan": "deploy", "deploy": "deploy", "rollback": "deploy", "releases": "deploy",
    "gateway": "gateway",
    "run": "jobs", "jobs": "jobs", "cancel": "jobs",
    "projects": "projects",
    "runs": "runs", "compare": "runs",
    "sandbox": "sandbox",
    "k8s": "k8s",
}


class HostctlGroup(click.Group):
    """Runs commands under the one error handler: expected errors print one clear message.
    Subcommands outside this module are loaded when asked for (SUBCOMMANDS)."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *SUBCOMMANDS})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in self.commands and cmd_name in SUBCOMMANDS:
            # start-up: only the module of the command asked for
            import importlib

            module = importlib.import_module(f"hostctl.cli.{SUBCOMMANDS[cmd_name]}")
            for command in module.COMMANDS:
                self.add_command(command)
        return super().get_command(ctx, cmd_name)

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except ConfigError as exc:
            if ctx.meta.get("hostctl.json"):
                click.echo(json.dumps({"ok": False, "problems": [
                    p.shown() for p in exc.problems]}, indent=2))
            else:
                for p in exc.problems:
                    click.secho(f"error: {p}", err=True, fg="red")
                n = len(exc.problems)
                click.echo(f"{n} problem{'s' if n != 1 else ''} found; nothing was changed.",
                           err=True)
            ctx.exit(exc.exit_code)
        except HostctlError as exc:
            # Line by line: a message may span lines, but a name inside it must not add any.
            text = "\n".join(printable(line) for line in str(exc).split("\n"))
            click.secho(f"error: {text}", err=True, fg="red")
            ctx.exit(exc.exit_code)
        except (click.exceptions.Exit, click.ClickException, click.Abort):
            raise
        except Exception as exc:
            if ctx.obj and ctx.obj.get("debug"):
                raise
            path = _write_crash_report(exc)
            # The exception's type and where it happened, never its text or repr: those can
            # hold any value hostctl was handling, a whole env file of secrets included.
            click.secho(f"internal error: {type(exc).__name__}{_where(exc)} — this is a bug in "
                        f"hostctl; the full trace is in {path} (or rerun with --debug)",
                        err=True, fg="red")
            ctx.exit(70)


def _where(exc: BaseException) -> str:
    """` at hostctl/render/site.py:228`: the innermost frame of hostctl's own code."""
    package = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    frames = [f for f in traceback.extract_tb(exc.__traceback__)
              if os.path.abspath(f.filename).startswith(package + os.sep)]
    if not frames:
        return ""
    where = os.path.relpath(frames[-1].filename, os.path.dirname(package))
    return f" at {where}:{frames[-1].lineno}"


def _write_crash_report(exc: BaseException) -> str:
    """Write the trace (code lines, no local variables) to a 0600 temp file, with every secret
    value hostctl holds blanked out of the exception messages; return its path."""
    text = "".join(traceback.format_exception(exc))
    fd, path = tempfile.mkstemp(prefix="hostctl-crash-", suffix=".txt")
    with os.fdopen(fd, "w", encoding="utf-8", errors="backslashreplace") as fh:
        fh.write(redact(text))
    return path


@click.group(cls=HostctlGroup, context_settings={"help_option_names": ["-h", "--help"],
                                                 "max_content_width": 100})
@click.version_option(__version__, prog_name="hostctl")
@click.option("--debug", is_flag=True, help="Show full tracebacks for internal errors.")
@click.pass_context
def main(ctx: click.Context, debug: bool) -> None:
    """Deploy dockerised services and jobs as systemd units on plain Linux hosts.

    Hosts are described in an inventory, workloads in short YAML specs. Start with
    `hostctl validate -i inventories/site.yml`; `hostctl docs` shows every setting.
    """
    ctx.ensure_object(dict)
    ctx.obj["debug"] = debug


@main.command()
@inventory_option
@json_option
def validate(inventory: str, as_json: bool) -> None:
    """Check an inventory and all its specs; report every problem at once (exit 2)."""
    # imported here: keeps hostctl --help and start-up fast
    from hostctl.spec.summary import site_summary
    from hostctl.validate import load_site

    site = load_site(inventory)
    summary = site_summary(site)
    if as_json:
        click.echo(json.dumps({"ok": True, **summary}, indent=2))
    else:
        click.echo(f"ok: {summary['text']}")


@main.command()
@inventory_option
@click.option("-o", "--out", "out_dir", default="out", show_default=True,
              type=click.Path(file_okay=False),
              help="Folder to write; one subfolder per host. Replaced whole each time; a "
                   "folder with files render did not write is refused.")
@json_option
def render(inventory: str, out_dir: str, as_json: bool) -> None:
    """Render every host's files into a folder to inspect (secret values are not written)."""
    # imported here: keeps hostctl --help and start-up fast
    from hostctl.observability.files import site_files
    from hostctl.render.output import rendered_listing, replace_tree
    from hostctl.render.site import RenderedFile, render_site
    from hostctl.spec.platform import with_platform
    from hostctl.validate import load_site

    site = with_platform(load_site(inventory))
    rendered = render_site(site)
    # Not for any host: Prometheus' scrape config and rules, Grafana dashboards, the Logstash
    # pipeline and Elasticsearch requests, to read before deploying. "_site" is no host name.
    extra = [RenderedFile("/" + path, content) for path, content in site_files(site).items()]
    if extra:
        rendered["_site"] = extra
    replace_tree(rendered, out_dir)
    listing = rendered_listing(rendered)
    if as_json:
        click.echo(json.dumps({"ok": True, "out": out_dir, "hosts": listing}, indent=2))
        return
    for host, files in listing.items():
        click.echo(f"{host}: {len(files)} file(s)")
        for f in files:
            click.echo(f"  {f['mode']} {f['path']}")
    click.echo(f"written to {out_dir}/")


@main.command()
def disconnect() -> None:
    """Close the SSH connections kept by `ssh.persist` now; commands under way on them
    finish first, then their keeper exits."""
    # imported here: keeps hostctl --help and start-up fast
    from hostctl.runner.persist_client import stop_keeper

    click.echo(stop_keeper())


@main.command()
@click.argument("section", required=False)
def docs(section: str | None) -> None:
    """Show the annotated reference for SECTION (inventory, service, job)."""
    # imported here: keeps hostctl --help and start-up fast
    from hostctl.spec.docs import available, read_doc

    if section is None:
        click.echo("Sections: " + ", ".join(available()) + "\nRun: hostctl docs SECTION")
        return
    click.echo(read_doc(section), nl=False)
