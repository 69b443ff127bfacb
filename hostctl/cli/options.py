"""Options shared by several commands. A list option takes both forms on every command:
repeated (`--hosts a --hosts b`) and comma-separated (`--hosts a,b`), or a mix of them."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import click

F = TypeVar("F", bound=Callable[..., Any])


def split_names(ctx: click.Context | None, param: click.Parameter,
                values: tuple[str, ...] | None) -> tuple[str, ...]:
    """Every occurrence of a list option, split on commas, in order, each name once.

    An empty name (`--hosts ''`, `a,,b`) is refused rather than read as "all": a script
    whose variable came out empty must not act on every host."""
    names: list[str] = []
    for value in values or ():
        for part in value.split(","):
            name = part.strip()
            if not name:
                raise click.BadParameter(
                    f"empty name in '{value}': give names separated by commas, or repeat "
                    "the option", ctx=ctx, param=param)
            if name not in names:
                names.append(name)
    return tuple(names)


def names_option(*decls: str, metavar: str, help: str) -> Callable[[F], F]:
    """A list option (see the module docstring); the command gets a tuple of names, empty
    when the option was not given."""
    return click.option(*decls, multiple=True, metavar=metavar, callback=split_names,
                        help=help)


def hosts_option(f: F) -> F:
    """`--hosts H1,H2`: only these inventory hosts."""
    return names_option("--hosts", "hosts", metavar="H1,H2",
                        help="Only these hosts (comma-separated, or repeat the option).")(f)


INVENTORY_HELP = "Inventory file (or set HOSTCTL_INVENTORY)."


def inventory_option(f: F) -> F:
    return click.option(
        "-i", "--inventory", "inventory", envvar="HOSTCTL_INVENTORY", required=True,
        type=click.Path(dir_okay=False), metavar="FILE", help=INVENTORY_HELP,
    )(f)


def _remember_json(ctx: click.Context, _: click.Parameter, value: bool) -> bool:
    ctx.meta["hostctl.json"] = value  # meta is shared with the group's error handler
    return value


def json_option(f: F) -> F:
    return click.option("--json", "as_json", is_flag=True, callback=_remember_json,
                        help="Print machine-readable JSON instead of text.")(f)
