"""`hostctl k8s render | diff | apply | handoff` through click's CliRunner; diff and apply
against the stand-in kube-apiserver on 127.0.0.1 (tests/rigs/k8s_apiserver_standin.py)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

import hostctl.cli.k8s  # noqa: F401  (registers `k8s` on main)
from hostctl.cli.root import main
from tests.rigs.k8s_apiserver_standin import StandIn, running
from tests.rigs.site_factory import BASE_INVENTORY, SERVICE, make_site

REPO = Path(__file__).resolve().parents[3]
EXAMPLE = REPO / "inventories" / "site.yml"


def invoke(*args: str) -> object:
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def test_render_prints_one_stream_and_reports_on_stderr(monkeypatch: pytest.MonkeyPatch
                                                        ) -> None:
    monkeypatch.chdir(REPO)
    res = CliRunner().invoke(main, ["k8s", "render", "-i", "inventories/site.yml"])
    assert res.exit_code == 0, res.output
    assert res.stdout.startswith("---\napiVersion: v1\nkind: Namespace\n")
    assert "<secret TRIAGE_DB_PASSWORD>" in res.stdout
    assert "example-not-a-real-password" not in res.stdout
    assert "inventories/specs/triage.yml:11: ports/http/host" in res.stderr


def test_render_writes_a_tree_and_secrets_only_when_asked(tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch
                                                          ) -> None:
    monkeypatch.chdir(REPO)
    out = tmp_path / "k8s"
    res = CliRunner().invoke(main, ["k8s", "render", "-i", "inventories/site.yml", "-o",
                                    str(out), "--only", "triage-api"])
    assert res.exit_code == 0, res.output
    assert res.stdout.endswith(f"object(s) written to {out}/ (ingress class kong) in "
                               f"{res.stdout.split(' in ')[-1]}")
    names = sorted(str(p.relative_to(out)) for p in out.rglob("*") if p.is_file())
    assert "triage/deployment-triage-api.yaml" in names
    assert "triage/deployment-triage-worker.yaml" not in names
    secret = out / "triage" / "secret-triage-api-secrets.yaml"
    assert "<secret TRIAGE_DB_PASSWORD>" in secret.read_text()
    res = CliRunner().invoke(main, ["k8s", "render", "-i", "inventories/site.yml", "-o",
                                    str(out), "--with-secrets"])
    assert res.exit_code == 0, res.output
    assert "example-not-a-real-password" in secret.read_text()
    assert secret.stat().st_mode & 0o777 == 0o600
    assert (out / "triage" / "deployment-triage-api.yaml").stat().st_mode & 0o777 == 0o644


def test_render_refuses_a_folder_it_did_not_write(tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(REPO)
    (tmp_path / "mine.txt").write_text("keep me")
    res = CliRunner().invoke(main, ["k8s", "render", "-i", "inventories/site.yml", "-o",
                                    str(tmp_path)])
    assert res.exit_code == 1
    assert "is not empty and was not written by `hostctl k8s render`" in res.stderr
    assert (tmp_path / "mine.txt").read_text() == "keep me"


def test_render_json_and_unknown_only(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(REPO)
    res = CliRunner().invoke(main, ["k8s", "render", "-i", "inventories/site.yml", "--json"])
    data = json.loads(res.stdout)
    assert data["ok"] and data["ingress_class"] == "kong"
    assert {"kind": "CronJob", "namespace": "triage", "name": "nightly-validation"} in (
        data["objects"])
    res = CliRunner().invoke(main, ["k8s", "render", "-i", "inventories/site.yml", "--only",
                                    "triage-apj"])
    assert res.exit_code == 2
    assert "no workload 'triage-apj'; did you mean 'triage-api'?" in res.stderr


@pytest.mark.parametrize("command", [["k8s", "render"], ["validate"]])
def test_what_kubernetes_refuses_is_located_by_render_and_validate_alike(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, command: list[str]) -> None:
    monkeypatch.chdir(tmp_path)
    make_site(tmp_path, {"a.yml": SERVICE.replace("name: api", "name: 1api")})
    res = CliRunner().invoke(main, [*command, "-i", "site.yml"])
    assert res.exit_code == 2
    assert res.stderr == (
        "error: specs/a.yml:2: name: '1api' must start with a letter: a service with ports "
        "becomes a Kubernetes Service, whose name is an RFC 1035 label; rename it (e.g. "
        "'s-1api')\n1 problem found; nothing was changed.\n")


@pytest.fixture
def cluster_site(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[StandIn]:
    with running() as api:
        api.write_kubeconfig(tmp_path / "kube.yaml", "cli-token")
        make_site(tmp_path, {"a.yml": SERVICE + "instances: 2\nsecrets: [DB_PASSWORD]\n"},
                  inventory=BASE_INVENTORY + "k3s: {kubeconfig: kube.yaml, rollout_timeout: "
                                             "20s}\n")
        monkeypatch.chdir(tmp_path)
        yield api


def test_diff_then_apply_then_diff(cluster_site: StandIn) -> None:
    res = CliRunner().invoke(main, ["k8s", "diff", "-i", "site.yml"])
    assert res.exit_code == 1, res.output
    assert "+ Deployment shop/api\n" in res.stdout
    assert res.stdout.endswith("5 of 5 object(s) would change\n")
    res = CliRunner().invoke(main, ["k8s", "apply", "-i", "site.yml"])
    assert res.exit_code == 0, res.output
    assert res.stdout == "applied 5 object(s); rolled out\n"
    assert "  Deployment shop/api: 2 of 2 available\n" in res.stderr
    assert all(r.authorization == "Bearer cli-token" for r in cluster_site.requests)
    res = CliRunner().invoke(main, ["k8s", "diff", "-i", "site.yml", "--json"])
    assert res.exit_code == 0
    assert {c["action"] for c in json.loads(res.stdout)["changes"]} == {"unchanged"}


def test_apply_failure_shows_the_clusters_message(cluster_site: StandIn) -> None:
    cluster_site.reject["/apis/apps/v1/namespaces/shop/deployments/api"] = (
        403, 'deployments.apps "api" is forbidden: exceeded quota: compute')
    res = CliRunner().invoke(main, ["k8s", "apply", "-i", "site.yml"])
    assert res.exit_code == 1
    assert res.stderr.endswith("  applied Service shop/api\nerror: Deployment shop/api: "
                               'deployments.apps "api" is forbidden: exceeded quota: compute\n')


def test_handoff_dry_run_prints_the_plan(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(REPO)
    res = CliRunner().invoke(main, ["k8s", "handoff", "triage-worker", "-i",
                                    "inventories/site.yml", "--dry-run"])
    assert res.exit_code == 0, res.output
    assert res.stdout.splitlines()[0] == "hand triage-worker over to the cluster:"
    assert "gateway" not in res.stdout  # not routed: no gateway steps
    res = CliRunner().invoke(main, ["k8s", "handoff", "triage-api", "-i",
                                    "inventories/site.yml", "--dry-run", "--back", "--json"])
    assert [s["step"] for s in json.loads(res.stdout)["steps"]] == [
        "start-on-hosts", "wait-hosts-healthy", "gateway-to-hosts", "remove-from-cluster"]


def test_handoff_of_a_routed_service_needs_the_gateway_target(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Refused before any step runs (not even the dry run), naming the inventory field;
    going back needs no target."""
    monkeypatch.chdir(REPO)
    for extra in ((), ("--dry-run",)):
        res = CliRunner().invoke(main, ["k8s", "handoff", "triage-api", "-i",
                                        "inventories/site.yml", *extra])
        assert res.exit_code == 2
        assert res.stdout == ""
        assert res.stderr == (
            "error: inventories/site.yml: k3s/gateway_target: handing off triage-api, which "
            "the gateway routes, needs the address where the gateway hosts reach the "
            "cluster's ingress: set k3s/gateway_target (host:port, e.g. 10.20.0.50:80) in the "
            "inventory\n1 problem found; nothing was changed.\n")


def test_handoff_of_a_route_the_cluster_keeps_closed_is_refused(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Traefik cannot check auth, so the route gets no Ingress: the gateway would have
    nowhere to send it."""
    inventory = (EXAMPLE.read_text().replace("  - specs/*.yml", f"  - {REPO}/inventories/"
                                             "specs/*.yml")
                 .replace("env_file: example.secrets.env",
                          f"env_file: {REPO}/inventories/example.secrets.env")
                 + "k3s: {ingress: traefik, gateway_target: '10.20.0.50:80'}\n")
    (tmp_path / "site.yml").write_text(inventory)
    monkeypatch.chdir(tmp_path)
    res = CliRunner().invoke(main, ["k8s", "handoff", "triage-api", "-i", "site.yml",
                                    "--dry-run"])
    assert res.exit_code == 2
    assert "route: triage-api gets no Ingress in the cluster, so the gateway could not " \
           "reach it there: auth key-auth needs Kong" in res.stderr
