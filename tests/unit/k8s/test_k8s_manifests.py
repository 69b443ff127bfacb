"""Kubernetes manifests from specs: golden files for the worked example, strict schema
validation (kubernetes-validate, three newest versions), generated specs, and the mapping
of each spec setting, asserted as whole objects."""

from __future__ import annotations

import os
import shutil
import string
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hostctl.errors import ConfigError
from hostctl.k8s.manifests import (
    Rendering,
    dump_all,
    escape_expansion,
    files,
    materialize,
    render_manifests,
)
from hostctl.spec import model as m
from hostctl.spec.secrets import Secret, SecretStore
from hostctl.spec.sections.k3s import K3sConfig
from hostctl.validate import load_site
from tests.rigs.k8s_validation import newest_versions, strict_problems
from tests.rigs.site_factory import BASE_INVENTORY, make_site
from tests.rigs.site_factory import SERVICE as FACTORY_SERVICE

REPO = Path(__file__).resolve().parents[3]
GOLDEN = Path(__file__).resolve().parents[2] / "golden" / "k8s"
VARIANTS = {"kong": K3sConfig(ingress="kong"),
            "traefik": K3sConfig(ingress="traefik", time_zone="Europe/Berlin",
                                 storage_class="local-path", namespace_prefix="acme-")}


@pytest.fixture
def example(monkeypatch: pytest.MonkeyPatch) -> m.Site:
    monkeypatch.chdir(REPO)  # messages name files relative to the repository
    return load_site("inventories/site.yml")


def by_key(r: Rendering) -> dict[tuple[str, str, str], dict[str, Any]]:
    return {(d["kind"], d["metadata"].get("namespace", ""), d["metadata"]["name"]): d
            for d in r.manifests}


def test_three_kubernetes_versions_are_checked() -> None:
    assert len(newest_versions(3)) == 3


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_worked_example_matches_golden_files(variant: str, example: m.Site) -> None:
    """Every file, byte for byte. HOSTCTL_UPDATE_GOLDEN=1 rewrites the copies."""
    got = files(render_manifests(example, VARIANTS[variant]), site=example.inventory.site)
    folder = GOLDEN / variant
    if os.environ.get("HOSTCTL_UPDATE_GOLDEN") == "1":
        shutil.rmtree(folder, ignore_errors=True)
        for rel, text in got.items():
            (folder / rel).parent.mkdir(parents=True, exist_ok=True)
            (folder / rel).write_text(text)
    want = {str(p.relative_to(folder)): p.read_text() for p in sorted(folder.rglob("*"))
            if p.is_file()}
    assert sorted(got) == sorted(want)
    for rel in want:
        assert got[rel] == want[rel], rel


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_worked_example_passes_strict_schemas_of_three_versions(variant: str,
                                                                example: m.Site) -> None:
    r = render_manifests(example, VARIANTS[variant])
    assert strict_problems(materialize(r.manifests, reveal=False), newest_versions(3)) == []
    assert strict_problems(materialize(r.manifests, reveal=True), newest_versions(3)) == []


def test_rendering_is_identical_across_runs_and_working_directories(
        example: m.Site, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    first = dump_all(render_manifests(example).manifests, reveal=True)
    monkeypatch.chdir(tmp_path)
    again = load_site(str(REPO / "inventories" / "site.yml"))
    assert dump_all(render_manifests(again).manifests, reveal=True) == first


def test_secret_values_only_when_revealed(example: m.Site) -> None:
    r = render_manifests(example)
    values = [s.reveal() for s in example.secrets.values.values()]
    redacted = "".join(files(r).values())
    assert not any(v in redacted for v in values)
    assert "<secret TRIAGE_DB_PASSWORD>" in redacted
    revealed = dump_all(r.manifests, reveal=True)
    assert "example-not-a-real-password" in revealed
    # Pods refer to secrets; no value sits in a Deployment.
    deployments = dump_all([d for d in r.manifests if d["kind"] != "Secret"], reveal=True)
    assert not any(v in deployments for v in values)


def test_worked_example_objects(example: m.Site) -> None:
    r = render_manifests(example, K3sConfig(ingress="kong"))
    objs = by_key(r)
    api = objs[("Deployment", "triage", "triage-api")]
    assert api["spec"]["replicas"] == 2  # 2 instances x 1 host with role=app
    assert objs[("Deployment", "triage", "triage-worker")]["spec"]["replicas"] == 1
    pod = api["spec"]["template"]["spec"]
    assert pod["containers"][0]["readinessProbe"] == {
        "httpGet": {"path": "/health", "port": "http"}, "periodSeconds": 2,
        "timeoutSeconds": 1, "failureThreshold": 3, "successThreshold": 1}
    assert pod["containers"][0]["livenessProbe"]["initialDelaySeconds"] == 1
    assert pod["containers"][0]["resources"] == {
        "requests": {"cpu": "500m", "memory": "128Mi"},
        "limits": {"cpu": "500m", "memory": "128Mi"}}
    labels = api["spec"]["template"]["metadata"]["labels"]
    assert labels["io.hostctl/project"] == "triage"
    assert len(labels["io.hostctl/spec-hash"]) == 12
    train = objs[("Job", "triage", "train-triage")]
    tpod = train["spec"]["template"]["spec"]
    assert tpod["runtimeClassName"] == "nvidia"
    assert tpod["containers"][0]["resources"]["limits"]["nvidia.com/gpu"] == "1"
    assert tpod["restartPolicy"] == "Never"
    assert tpod["activeDeadlineSeconds"] == 7200
    assert train["spec"]["backoffLimit"] == 1
    cron = objs[("CronJob", "triage", "nightly-validation")]["spec"]
    assert cron["schedule"] == "0 2 * * *"
    job = cron["jobTemplate"]["spec"]
    assert (job["completionMode"], job["completions"], job["parallelism"]) == ("Indexed", 4, 4)
    env = job["template"]["spec"]["containers"][0]["env"]
    assert env == [
        {"name": "HOSTCTL_SHARD_INDEX", "valueFrom": {"fieldRef": {
            "fieldPath": "metadata.annotations['batch.kubernetes.io/job-completion-index']"}}},
        {"name": "HOSTCTL_SHARD_COUNT", "value": "4"}]
    ingress = objs[("Ingress", "triage", "triage-api")]
    assert ingress["spec"]["ingressClassName"] == "kong"
    plugins = ingress["metadata"]["annotations"]["konghq.com/plugins"].split(",")
    assert plugins == ["triage-api-acl", "triage-api-key-auth", "triage-api-rate-limiting"]
    for name in plugins:
        assert ("KongPlugin", "triage", name) in objs
    assert objs[("KongPlugin", "triage", "triage-api-rate-limiting")]["config"] == {
        "minute": 600, "policy": "local", "limit_by": "consumer"}


def test_traefik_keeps_auth_routes_closed_and_says_so(example: m.Site) -> None:
    r = render_manifests(example, K3sConfig(ingress="traefik"))
    objs = by_key(r)
    assert ("Ingress", "triage", "triage-api") not in objs
    assert ("Ingress", "reports", "reports-web") in objs
    report = [str(i) for i in r.report]
    assert any("triage.yml" in i and "route/auth: auth key-auth needs Kong" in i
               for i in report), report
    assert any("route/methods: methods GET, HEAD are not carried" in i for i in report)
    strip = objs[("Middleware", "reports", "reports-web-strip-prefix")]
    assert strip["spec"] == {"stripPrefix": {"prefixes": ["/reports"]}}
    ingress = objs[("Ingress", "reports", "reports-web")]
    assert ingress["metadata"]["annotations"] == {
        "traefik.ingress.kubernetes.io/router.middlewares":
            "reports-reports-web-strip-prefix@kubernetescrd"}


def test_only_selects_a_workload_and_what_it_needs(example: m.Site) -> None:
    r = render_manifests(example).select(["triage-worker"])
    kinds = sorted({(k, n) for k, _, n in by_key(r)})
    assert kinds == [("ConfigMap", "triage-worker-env"), ("Deployment", "triage-worker"),
                     ("Namespace", "triage"), ("NetworkPolicy", "hostctl-project-isolation"),
                     ("Secret", "triage-worker-secrets"), ("Service", "triage-worker")]
    assert all(i.workload in ("", "triage-worker") for i in r.report)


# -- single settings ------------------------------------------------------------------------

# The factory's service without its health check.
SERVICE = FACTORY_SERVICE.replace("health:\n  http: {path: /health, port: http}\n", "")
assert "health" not in SERVICE

JOB = """\
kind: job
name: batch
project: shop
image: example.org/shop/batch:1.0
command: [sh, -c, 'echo $HOME $(date) $$']
"""


def render_specs(tmp_path: Path, specs: dict[str, str], cfg: K3sConfig | None = None,
                 inventory_extra: str = "") -> Rendering:
    inv = make_site(tmp_path, specs, inventory=BASE_INVENTORY + inventory_extra)
    return render_manifests(load_site(str(inv), environ={}), cfg)


def test_command_words_pass_through_kubernetes_expansion_unchanged(tmp_path: Path) -> None:
    r = render_specs(tmp_path, {"b.yml": JOB})
    job = by_key(r)[("Job", "shop", "batch")]
    assert job["spec"]["template"]["spec"]["containers"][0]["command"] == [
        "sh", "-c", "echo $$HOME $$(date) $$$$"]
    assert escape_expansion("a$b") == "a$$b"


@pytest.mark.parametrize(("schedule", "cron", "zone"), [
    ("daily", "0 0 * * *", None),
    ("Mon..Fri *-*-* 02:00:00", "0 2 * * 1-5", None),
    ("*:0/15", "*/15 * * * *", None),
    ("*-*-* 03:30:00 UTC", "30 3 * * *", "Etc/UTC"),
    ("*-*-* 03:30:00 Europe/Berlin", "30 3 * * *", "Europe/Berlin"),
])
def test_schedules_become_cron(tmp_path: Path, schedule: str, cron: str, zone: str | None
                               ) -> None:
    r = render_specs(tmp_path, {"b.yml": JOB + f"schedule: {schedule!r}\n"})
    spec = by_key(r)[("CronJob", "shop", "batch")]["spec"]
    assert (spec["schedule"], spec.get("timeZone")) == (cron, zone)
    assert spec["concurrencyPolicy"] == "Forbid"


@pytest.mark.parametrize(("schedule", "why"), [
    ("*-*-* 02:00:30", "it fires at seconds other than :00"),
    ("2030-*-* 00:00", "it names years"),
    ("*-*~1 00:00", "it counts days from the month's end ('~')"),
    ("Mon *-*-1 00:00", "it restricts both days and weekdays"),
])
def test_schedules_without_cron_equivalent_are_errors_at_the_spec_line(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, schedule: str, why: str) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigError) as exc:
        render_specs(tmp_path, {"b.yml": JOB + f"schedule: {schedule!r}\n"})
    [problem] = exc.value.problems
    assert (problem.file, problem.line, problem.path) == ("specs/b.yml", 6, "schedule")
    assert "has no cron equivalent for a Kubernetes CronJob: " + why in problem.message


def test_names_kubernetes_refuses_are_refused_by_validate_at_the_spec_line(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    spec = SERVICE.replace("name: api", "name: 9api").replace(
        "http: {", "metrics-and-health: {")
    spec += "volumes: [Data_1:/data]\n"
    with pytest.raises(ConfigError) as exc:
        render_specs(tmp_path, {"a.yml": spec})
    assert [str(p) for p in exc.value.problems] == [
        "specs/a.yml:2: name: '9api' must start with a letter: a service with ports becomes "
        "a Kubernetes Service, whose name is an RFC 1035 label; rename it (e.g. 's-9api')",
        "specs/a.yml:6: ports/metrics-and-health: port name 'metrics-and-health' is not "
        "valid in Kubernetes (IANA service name): at most 15 lowercase letters, digits and "
        "single '-', with a letter; rename it",
        "specs/a.yml:8: volumes/0: volume 'Data_1' is not a valid Kubernetes name (RFC 1123 "
        "subdomain): use lowercase letters, digits, '-' and '.' (a named volume becomes a "
        "PersistentVolumeClaim of that name); rename it",
    ]


def test_reach_opens_both_directions_between_two_projects(tmp_path: Path) -> None:
    other = SERVICE.replace("name: api", "name: db").replace("project: shop",
                                                            "project: data")
    other = other.replace("18080", "18081")
    r = render_specs(tmp_path, {"a.yml": SERVICE + "reach: [data]\n", "b.yml": other})
    objs = by_key(r)
    into_data = objs[("NetworkPolicy", "data", "api-reach-from-shop")]["spec"]
    assert into_data["podSelector"] == {}
    assert into_data["ingress"] == [{"from": [{
        "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "shop"}},
        "podSelector": {"matchLabels": {"io.hostctl/workload": "api"}}}]}]
    back = objs[("NetworkPolicy", "shop", "api-reached-from-data")]["spec"]
    assert back["podSelector"] == {"matchLabels": {"io.hostctl/workload": "api"}}
    assert back["ingress"] == [{"from": [{"namespaceSelector": {"matchLabels": {
        "kubernetes.io/metadata.name": "data"}}}]}]
    for ns in ("shop", "data"):
        assert objs[("NetworkPolicy", ns, "hostctl-project-isolation")]["spec"]["ingress"] == [
            {"from": [{"podSelector": {}}]}]


def test_settings_without_kubernetes_meaning_are_reported_not_dropped(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    spec = SERVICE + "restart: on-failure\nstop_timeout: 2.5s\nvolumes: [/srv/x:/x]\n"
    r = render_specs(tmp_path, {"a.yml": spec})
    report = [str(i) for i in r.report]
    assert report == [
        "specs/a.yml:6: ports/http/host: host port 18080 has no meaning in the cluster: "
        "Service api.shop serves port 8080 inside it",
        "specs/a.yml:7: placement/hosts: hosts app-1 are not carried: Kubernetes chooses "
        "nodes; replicas = instances x eligible hosts = 1",
        "specs/a.yml:8: restart: restart: on-failure has no Deployment equivalent: "
        "Kubernetes always restarts a service's containers",
        "specs/a.yml:9: stop_timeout: 2.5s becomes 3s: Kubernetes counts whole seconds",
        "specs/a.yml:10: volumes/0: host path /srv/x becomes a hostPath volume: it is the "
        "node's directory, so data differs from node to node and the directory must exist "
        "there",
    ]


# -- generated specs ------------------------------------------------------------------------

HOSTS = {f"h{i}": m.Host(f"h{i}", f"10.0.0.{i + 1}", labels={"role": "app"}, gpus=1)
         for i in range(3)}
names = st.from_regex(r"[a-z]([a-z0-9-]{0,12}[a-z0-9])?", fullmatch=True)
port_names = st.sampled_from(["http", "grpc", "metrics", "p-2", "a1"])
SCHEDULES = ["daily", "hourly", "Mon..Fri 09:00", "*:0/5", "*-*-* 01:00:00 Asia/Tokyo",
             "*-*-1 04:00 UTC", "weekly"]
# Now and then one setting Kubernetes (or cron) refuses: it must be a located error.
BREAKAGES = {
    "name": lambda w: replace(w, name="9" + w.name),
    "port": lambda w: replace(w, ports={"http-and-metrics": m.Port(8080)}, route=None,
                              health=None) if w.ports else w,
    "volume": lambda w: replace(w, volumes=(m.Volume("Cache_1", "/c"),)),
    "schedule": lambda w: replace(w, schedule="*-*-* 02:00:30") if w.is_job else w,
}
healths = st.one_of(
    st.none(),
    st.builds(m.Health, http=st.just(m.HttpCheck("P", "/h")),
              interval=st.sampled_from([0.5, 2.0, 10.0]), timeout=st.sampled_from([0.2, 1.0]),
              retries=st.integers(1, 5), start_period=st.sampled_from([0.0, 1.5, 30.0])),
    st.builds(m.Health, tcp=st.just(m.TcpCheck("P"))),
    st.builds(m.Health, command=st.just(("pg_isready", "-q"))),
)
routes = st.one_of(st.none(), st.builds(
    m.Route, paths=st.lists(st.from_regex(r"/[a-z0-9/_-]{0,10}", fullmatch=True), min_size=1,
                            max_size=2, unique=True).map(tuple),
    hosts=st.lists(st.sampled_from(["a.example.org", "*.example.org"]), max_size=2,
                   unique=True).map(tuple),
    methods=st.lists(st.sampled_from(["GET", "POST"]), max_size=2, unique=True).map(tuple),
    strip_path=st.booleans(), auth=st.sampled_from(["none", "key-auth", "jwt"]),
    rate_limit=st.one_of(st.none(), st.builds(m.RateLimit, second=st.sampled_from([None, 5]),
                                              minute=st.sampled_from([None, 100]),
                                              hour=st.just(1000))),
    max_body=st.sampled_from([None, 1024]),
    cors=st.one_of(st.none(), st.builds(m.Cors, origins=st.sampled_from([
        ("*",), ("https://a.example.org", r"https://.*\.example\.org")]))),
    timeouts=st.one_of(st.none(), st.just(m.Timeouts(1.5, 30, 30)))))
resources = st.builds(m.Resources, cpus=st.sampled_from([None, 0.25, 2.0, 0.0005]),
                      memory=st.sampled_from([None, 128 * 2**20, 10**9 + 7]),
                      gpus=st.sampled_from([0, 0, 1]))
volumes = st.lists(st.builds(m.Volume, source=st.sampled_from(["data", "/srv/x", "cache.v1"]),
                             target=st.sampled_from(["/a", "/b"]),
                             read_only=st.booleans()), max_size=2, unique_by=lambda v: v.target)


@st.composite
def workloads(draw: st.DrawFn, i: int) -> m.Workload:
    name = draw(names)[:30] + f"-{i}"
    kind = draw(st.sampled_from(["service", "job"]))
    common = dict(kind=kind, name=name, project=draw(st.sampled_from(["p0", "p1", "9x"])),
                  image="registry.example.org/app:1", file=f"specs/{name}.yml", line=1,
                  command=draw(st.one_of(st.none(), st.just(("sh", "-c", "echo $(x) $$"))
                                         .map(tuple))),
                  env=draw(st.dictionaries(st.sampled_from(["A", "B_1", "PORT"]),
                                           st.text(string.printable, max_size=8),
                                           max_size=2)),
                  secrets=tuple(draw(st.lists(st.sampled_from(["S1", "S2"]), unique=True))),
                  volumes=tuple(draw(volumes)), resources=draw(resources),
                  placement=m.Placement(hosts=tuple(draw(st.lists(st.sampled_from(
                      sorted(HOSTS)), min_size=1, max_size=3, unique=True)))),
                  stop_timeout=draw(st.sampled_from([10.0, 2.5])),
                  image_source=draw(st.sampled_from(["pull", "push"])),
                  lines={"name": 2, "schedule": 9, "route": 12, "ports": 5})
    if kind == "job":
        return m.Workload(**common, timeout=draw(st.sampled_from([None, 90.0, 0.5])),
                          retries=draw(st.integers(0, 3)), shards=draw(st.integers(1, 4)),
                          schedule=draw(st.one_of(st.none(), st.sampled_from(SCHEDULES))))
    port = draw(port_names)
    health = draw(healths)
    if health is not None and health.http is not None:
        health = replace(health, http=m.HttpCheck(port, "/h"))
    elif health is not None and health.tcp is not None:
        health = replace(health, tcp=m.TcpCheck(port))
    route = draw(routes)
    return m.Workload(**common, ports={port: m.Port(8080, 20000 + i)}, health=health,
                      instances=draw(st.integers(1, 3)),
                      route=None if route is None else replace(route, port=port),
                      reach=tuple(draw(st.lists(st.sampled_from(["p0", "p1"]), max_size=1))))


@st.composite
def sites(draw: st.DrawFn) -> tuple[m.Site, K3sConfig]:
    ws = [draw(workloads(i)) for i in range(draw(st.integers(1, 4)))]
    ws = [replace(w, reach=tuple(p for p in w.reach if p != w.project)) for w in ws]
    breakage = draw(st.sampled_from([None] * 6 + sorted(BREAKAGES)))
    if breakage is not None:
        ws[0] = BREAKAGES[breakage](ws[0])
    store = SecretStore({n: Secret(n, f"value-of-{n}-xyz") for n in ("S1", "S2")})
    inv = m.Inventory(file="site.yml", site="gen", hosts=HOSTS)
    cfg = K3sConfig(ingress=draw(st.sampled_from(["kong", "traefik"])),
                    node_selector=draw(st.booleans()),
                    time_zone=draw(st.sampled_from([None, "Europe/Berlin"])))
    return m.Site(inventory=inv, workloads=tuple(ws), secrets=store), cfg


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(sites())
def test_generated_specs_are_refused_with_locations_or_pass_strict_schemas(
        generated: tuple[m.Site, K3sConfig]) -> None:
    site, cfg = generated
    try:
        r = render_manifests(site, cfg)
    except ConfigError as exc:
        assert exc.problems
        for p in exc.problems:
            assert p.file.startswith("specs/") and p.line > 0, p
        return
    assert strict_problems(materialize(r.manifests, reveal=True), newest_versions(3)) == []
    redacted = dump_all(r.manifests)
    assert "value-of-S" not in redacted
    assert dump_all(render_manifests(site, cfg).manifests) == redacted  # deterministic
