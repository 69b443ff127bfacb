"""`hostctl k8s render | diff | apply | handoff`: the same specs, on a k3s cluster.

Added to `main` by hostctl/cli/root.py (COMMANDS at the bottom). Heavy
imports stay inside the commands so `hostctl --help` stays fast.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import click

from hostctl.cli.options import inventory_option, json_option, names_option
from hostctl.errors import ConfigError

ONLY_HELP = ("Only these workloads (comma-separated names, or repeat the option) and what "
             "they need.")
REPORT_MARKER = "hostctl-report.txt"


@click.group()
def k8s() -> None:
    """Hand workloads to a k3s/Kubernetes cluster from the same specs.

    `render` writes the manifests, `diff` shows what applying would change (from the
    server's own dry run), `apply` applies them (server-side apply, field manager hostctl)
    and waits for rollouts; `handoff` moves one service between the hosts and the cluster.
    The cluster comes from the inventory's `k3s:` section (kubeconfig, context).
    """


def _render(inventory: str, only: tuple[str, ...]) -> tuple[Any, Any, Any]:
    """(site, k3s config, rendering), narrowed to --only."""
    # imported here: keeps hostctl --help and start-up fast
    from hostctl.k8s.manifests import render_manifests
    from hostctl.spec.schema import did_you_mean
    from hostctl.validate import load_site

    site = load_site(inventory)
    cfg = site.inventory.k3s
    rendering = render_manifests(site, cfg)
    names = list(only)
    known = {w.name for w in site.workloads}
    for name in names:
        if name not in known:
            raise click.BadParameter(f"no workload '{name}'" + did_you_mean(name, known)
                                     + f" (known: {', '.join(sorted(known))})",
                                     param_hint="--only")
    return site, cfg, rendering.select(names) if names else rendering


@k8s.command()
@inventory_option
@click.option("-o", "--out", "out_dir", type=click.Path(file_okay=False),
              help="Write one file per object (NAMESPACE/kind-name.yaml) into this folder, "
                   "replacing an earlier render there. Default: one YAML stream on stdout.")
@names_option("--only", metavar="NAMES", help=ONLY_HELP)
@click.option("--with-secrets", is_flag=True,
              help="Write secret values into the Secret manifests (files mode 0600). "
                   "Default: `<secret NAME>` in their place.")
@json_option
def render(inventory: str, out_dir: str | None, only: tuple[str, ...], with_secrets: bool,
           as_json: bool) -> None:
    """Render Kubernetes manifests from the inventory and specs, offline.

    What a spec says that Kubernetes cannot is listed (on stderr, and in
    hostctl-report.txt with -o); nothing is dropped silently.
    """
    # imported here: keeps hostctl --help and start-up fast
    from hostctl.k8s.manifests import dump_all, files, report_text

    started = time.perf_counter()
    site, _, rendering = _render(inventory, only)
    if out_dir is None and not as_json:
        click.echo(dump_all(rendering.manifests, reveal=with_secrets), nl=False)
        click.echo(report_text(rendering.report), err=True, nl=False)
        return
    written: list[str] = []
    if out_dir is not None:
        texts = files(rendering, reveal=with_secrets, site=site.inventory.site)
        write_tree(texts, out_dir, secret_files={
            name for name, doc in _by_file(rendering).items() if doc["kind"] == "Secret"}
            if with_secrets else set())
        written = sorted(texts)
    elapsed = time.perf_counter() - started
    if as_json:
        click.echo(json.dumps({
            "ok": True, "out": out_dir, "files": written, "ingress_class": rendering.ingress_class,
            "objects": [_key(d) for d in rendering.manifests],
            "report": [{"file": r.file, "line": r.line, "path": r.path, "message": r.message}
                       for r in rendering.report]}, indent=2))
        return
    click.echo(report_text(rendering.report), err=True, nl=False)
    click.echo(f"{len(rendering.manifests)} object(s) written to {out_dir}/ "
               f"(ingress class {rendering.ingress_class}) in {elapsed:.2f}s")


def _key(doc: dict[str, Any]) -> dict[str, str]:
    meta = doc["metadata"]
    return {"kind": doc["kind"], "namespace": meta.get("namespace", ""), "name": meta["name"]}


def _by_file(rendering: Any) -> dict[str, dict[str, Any]]:
    # imported here: keeps hostctl --help and start-up fast
    from hostctl.k8s.manifests import file_name

    return {file_name(d): d for d in rendering.manifests}


def write_tree(texts: dict[str, str], out_dir: str, secret_files: set[str]) -> None:
    """Replace `out_dir` with `texts`; refuse a folder hostctl did not render (no report).
    The rule, the swap and the writing are render's too (render.output)."""
    # imported here: keeps hostctl --help and start-up fast
    from hostctl.render.output import replace_folder, write_files

    def write(folder: str) -> None:
        write_files(folder, (("", rel, text.encode("utf-8"),
                              0o600 if rel in secret_files else 0o644)
                             for rel, text in sorted(texts.items())))

    replace_folder(out_dir, write, REPORT_MARKER, "hostctl k8s render")


@contextmanager
def _cluster(site: Any, cfg: Any) -> Iterator[Any]:
    # imported here: keeps hostctl --help and start-up fast
    from hostctl.k8s.client import Cluster
    from hostctl.k8s.kubeconfig import load_kubeconfig
    from hostctl.spec.sections.k3s import kubeconfig_path

    auth = load_kubeconfig(kubeconfig_path(cfg, site.inventory), cfg.context)
    secrets = list(site.secrets.values.values())
    with Cluster(auth, secrets=secrets) as cluster:
        yield cluster


def _progress(as_json: bool) -> Callable[[str], None]:
    def show(line: str) -> None:
        if not as_json:
            click.echo(f"  {line}", err=True)
    return show


@k8s.command()
@inventory_option
@names_option("--only", metavar="NAMES", help=ONLY_HELP)
@click.option("--prune", is_flag=True,
              help="Also list objects hostctl made for this site that the specs no longer name.")
@json_option
def diff(inventory: str, only: tuple[str, ...], prune: bool, as_json: bool) -> None:
    """Show what `apply` would change in the cluster (exit 1 when something would).

    Each object is dry-run applied on the server, so defaults and admission are the
    cluster's own; secret values are shown as <redacted> (changed or not).
    """
    # imported here: keeps hostctl --help and start-up fast
    from hostctl.k8s.client import plan_changes

    site, cfg, rendering = _render(inventory, only)
    with _cluster(site, cfg) as cluster:
        changes = plan_changes(cluster, rendering.manifests,
                               prune_site=site.inventory.site if prune and not only else "")
    changed = [c for c in changes if c.action != "unchanged"]
    if as_json:
        click.echo(json.dumps({"ok": True, "changes": [
            {"action": c.action, "kind": c.kind, "namespace": c.namespace, "name": c.name,
             "diff": c.diff} for c in changes]}, indent=2))
    else:
        for c in changes:
            click.echo(str(c))
            if c.diff and c.action != "create":
                click.echo(c.diff.rstrip("\n"))
        click.echo(f"{len(changed)} of {len(changes)} object(s) would change")
    sys.exit(1 if changed else 0)


@k8s.command()
@inventory_option
@names_option("--only", metavar="NAMES", help=ONLY_HELP)
@click.option("--prune", is_flag=True,
              help="Delete objects hostctl made for this site that the specs no longer name.")
@click.option("--force-conflicts", is_flag=True,
              help="Take over fields another manager (e.g. kubectl edit) set.")
@click.option("--wait/--no-wait", default=True, show_default=True,
              help="Wait for Deployments to roll out (k3s/rollout_timeout).")
@json_option
def apply(inventory: str, only: tuple[str, ...], prune: bool, force_conflicts: bool, wait: bool,
          as_json: bool) -> None:
    """Apply the manifests to the cluster (server-side apply, field manager hostctl).

    Secret values are sent here and nowhere else. A refusal stops the run with the
    cluster's own message; what was applied before it stays applied.
    """
    # imported here: keeps hostctl --help and start-up fast
    from hostctl.k8s.client import apply_all, wait_rollouts

    site, cfg, rendering = _render(inventory, only)
    show = _progress(as_json)
    with _cluster(site, cfg) as cluster:
        result = apply_all(cluster, rendering.manifests, force=force_conflicts,
                           prune_site=site.inventory.site if prune and not only else "",
                           progress=show)
        if wait:
            wait_rollouts(cluster, rendering.manifests, cfg.rollout_timeout, progress=show)
    if as_json:
        click.echo(json.dumps({"ok": True, "applied": result.applied,
                               "replaced": result.replaced, "deleted": result.deleted},
                              indent=2))
    else:
        click.echo(f"applied {len(result.applied)} object(s)"
                   + (f", recreated {len(result.replaced)} Job(s)" if result.replaced else "")
                   + (f", deleted {len(result.deleted)}" if result.deleted else "")
                   + ("; rolled out" if wait else ""))


@k8s.command()
@inventory_option
@click.argument("service")
@click.option("--back", is_flag=True, help="Move it from the cluster back to the hosts.")
@click.option("--dry-run", is_flag=True, help="Print the steps; change nothing.")
@json_option
def handoff(inventory: str, service: str, back: bool, dry_run: bool, as_json: bool) -> None:
    """Move SERVICE to the cluster: apply, wait until ready, point its gateway route at the
    cluster, stop it on the hosts (--back reverses it). A failed step is undone with the
    steps before it, so the service keeps serving from where it was.

    A routed service needs k3s/gateway_target: Kong on the gateway hosts then sends its
    route (same paths, auth and plugins) to the cluster's ingress there. The hosts record
    the handoff (/var/lib/hostctl/cluster/SERVICE): `deploy` leaves the service stopped and
    routed to the cluster, `status` shows it "in cluster", until --back.
    """
    # imported here: keeps hostctl --help and start-up fast
    from hostctl.k8s.handoff import plan_handoff, run_handoff
    from hostctl.k8s.handoff_actions import check_handoff, is_routed
    from hostctl.ops.day2 import find_workload

    site, cfg, rendering = _render(inventory, (service,))
    w = find_workload(site, service)
    problems = check_handoff(site, cfg, w, rendering, back)
    if problems:
        raise ConfigError(problems)
    plan = plan_handoff(service, back=back, routed=is_routed(site, w))
    if dry_run:
        click.echo(json.dumps(plan.as_json(), indent=2) if as_json else "\n".join(plan.lines()))
        return
    show = _progress(as_json)
    with _cluster(site, cfg) as cluster:
        # imported here: keeps hostctl --help and start-up fast
        from hostctl.k8s.handoff_actions import handoff_actions

        done = run_handoff(plan, handoff_actions(site, cfg, w, rendering, cluster, show), show)
    if as_json:
        click.echo(json.dumps({"ok": True, **plan.as_json(), "done": done}, indent=2))
    else:
        click.echo(f"{service} now serves from {plan.destination}")


COMMANDS = (k8s,)
