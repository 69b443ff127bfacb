"""What a Kubernetes cluster would refuse is refused by `hostctl validate`, for sites with or
without a `k3s:` section (hostctl/k8s/site_checks.py): input -> exact problems; consumer
object names; no Ingress for a UDP port; and generated sites, written as YAML and loaded as
an operator's would be: validate passes => `k8s render` succeeds, and every object passes
kubernetes-validate --strict (built-in kinds) or Kong's CRDs (KongPlugin, KongConsumer)."""

from __future__ import annotations

import hashlib
import re
import textwrap
from dataclasses import replace
from pathlib import Path

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from hostctl.errors import ConfigError
from hostctl.k8s.manifests import materialize, render_manifests
from hostctl.k8s.names import consumer_object_name
from hostctl.spec import model as m
from hostctl.spec.secrets import Secret, SecretStore
from hostctl.spec.sections.gateway import Consumer, GatewayConfig
from hostctl.spec.sections.k3s import K3sConfig
from hostctl.validate import load_site
from tests.rigs.k8s_validation import crd_problems, newest_versions, strict_problems
from tests.rigs.site_factory import BASE_INVENTORY, make_site

REPO = Path(__file__).resolve().parents[3]

SERVICE = """\
kind: service
name: api
project: shop
image: example.org/shop/api:1.0
placement: {hosts: [app-1]}
ports:
  http: {container: 8080, host: 18080}
"""
JOB = """\
kind: job
name: batch
project: shop
image: example.org/shop/batch:1.0
placement: {hosts: [app-1]}
"""


def validate(tmp_path: Path, spec: str, inventory: str = BASE_INVENTORY) -> list[str]:
    make_site(tmp_path, {"a.yml": spec}, inventory=inventory)
    try:
        load_site(str(tmp_path / "site.yml"), environ={})
    except ConfigError as exc:
        return [str(p) for p in exc.problems]
    return []


CASES = [
    # A Service's name is an RFC 1035 label: a service with ports starts with a letter...
    (SERVICE.replace("name: api", "name: 0s"),
     ["specs/a.yml:2: name: '0s' must start with a letter: a service with ports becomes a "
      "Kubernetes Service, whose name is an RFC 1035 label; rename it (e.g. 's-0s')"]),
    # ... a job or a service without ports has no Service: a digit first is fine.
    (JOB.replace("name: batch", "name: 0s"), []),
    ("kind: service\nname: 9worker\nproject: shop\nimage: example.org/w:1\n", []),
    (SERVICE.replace("http: {", "http-and-metrics: {"),
     ["specs/a.yml:7: ports/http-and-metrics: port name 'http-and-metrics' is not valid in "
      "Kubernetes (IANA service name): at most 15 lowercase letters, digits and single '-', "
      "with a letter; rename it"]),
    (SERVICE.replace("http: {", "a--b: {"),
     ["specs/a.yml:7: ports/a--b: port name 'a--b' is not valid in Kubernetes (IANA service "
      "name): at most 15 lowercase letters, digits and single '-', with a letter; rename it"]),
    (SERVICE.replace("http: {", "'8080': {"),
     ["specs/a.yml:7: ports/8080: port name '8080' is not valid in Kubernetes (IANA service "
      "name): at most 15 lowercase letters, digits and single '-', with a letter; rename it"]),
    (SERVICE + "  local: {container: 8080, host: 18081, bind: 127.0.0.1}\n",
     ["specs/a.yml:8: ports/local: container port 8080/tcp is also port 'http': a "
      "Kubernetes Service takes each port and protocol once; keep one of them"]),
    (SERVICE + "  dns: {container: 8080, protocol: udp}\n", []),
    (JOB + f"env: {{{'A' * 254}: x, {'B' * 253}: y}}\n",
     [f"specs/a.yml:6: env/{'A' * 254}: variable name is 254 characters long; a Kubernetes "
      "ConfigMap key holds at most 253: shorten it"]),
    (JOB + "volumes: [Data_1:/d, cache.v1:/c, 'x.:/x', /srv/../etc:/e, /srv/a..b:/f]\n",
     ["specs/a.yml:6: volumes/0: volume 'Data_1' is not a valid Kubernetes name (RFC 1123 "
      "subdomain): use lowercase letters, digits, '-' and '.' (a named volume becomes a "
      "PersistentVolumeClaim of that name); rename it",
      "specs/a.yml:6: volumes/2: volume 'x.' is not a valid Kubernetes name (RFC 1123 "
      "subdomain): use lowercase letters, digits, '-' and '.' (a named volume becomes a "
      "PersistentVolumeClaim of that name); rename it",
      "specs/a.yml:6: volumes/3: host path '/srv/../etc' contains '..', which a Kubernetes "
      "hostPath volume refuses: write the path without it"]),
    # Values Kong takes and an Ingress does not (what Kong refuses too is its rules' to say).
    (SERVICE + "route:\n  path: [/a, '/e%2Fx']\n  hosts: [10.0.0.9, '*.example.org', "
     "api.example.org:8443]\n",
     ["specs/a.yml:9: route/path/1: '/e%2Fx': a Kubernetes Ingress path must not contain "
      "'%2F'; write the path without it",
      "specs/a.yml:10: route/hosts/0: '10.0.0.9': an Ingress host must be a DNS name, not an "
      "IP address",
      "specs/a.yml:10: route/hosts/2: 'api.example.org:8443': an Ingress host cannot carry a "
      "port; remove ':PORT'"]),
    (SERVICE + "route: {path: /x, hosts: " + "a" * 64 + ".example.org}\n",
     ["specs/a.yml:8: route/hosts: '" + "a" * 64 + ".example.org': not a DNS name a "
      "Kubernetes Ingress takes: dot-separated labels of at most 63 lowercase letters, digits "
      "and '-', each starting and ending with a letter or digit, 253 characters in all"]),
    (JOB + "schedule: '*-*-* 02:00:30'\n",
     ["specs/a.yml:6: schedule: '*-*-* 02:00:30' (normalized: *-*-* 02:00:30) has no cron "
      "equivalent for a Kubernetes CronJob: it fires at seconds other than :00; use whole "
      "minutes, no years, no '~', and either days or weekdays"]),
    (JOB + "schedule: '*-*-* 02:00 Europe/Nowhere'\n",
     ["specs/a.yml:6: schedule: 'Europe/Nowhere' is not a time zone a Kubernetes CronJob "
      "knows (IANA database); name one such as Europe/Berlin, or UTC"]),
    (JOB + "schedule: '*-*-* 02:00 Europe/Berlin'\n", []),
]


@pytest.mark.parametrize(("spec", "problems"), CASES)
def test_what_kubernetes_refuses_validate_refuses_at_the_spec_line(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, spec: str, problems: list[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    assert validate(tmp_path, spec) == problems


def test_inventory_values_kubernetes_refuses(tmp_path: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    inventory = BASE_INVENTORY.replace("labels: {role: app}", "labels: {role: -app}")
    inventory += "k3s:\n  node_selector: true\n  time_zone: Mars/Olympus\n"
    spec = JOB.replace("placement: {hosts: [app-1]}", "placement: {labels: {role: -app}}")
    assert validate(tmp_path, spec, inventory) == [
        "site.yml:12: k3s/time_zone: 'Mars/Olympus' is not a time zone a Kubernetes CronJob "
        "knows (IANA database); name one such as Europe/Berlin, or Etc/UTC",
        "specs/a.yml:5: placement/labels/role: label 'role' value '-app' must be letters, "
        "digits, '-', '_' or '.', starting and ending with a letter or digit "
        "(k3s/node_selector makes it a nodeSelector)"]


_TARGET_HINT = ("give host:port, e.g. 10.20.0.50:80 or [fd00::50]:80 (an IP address or DNS "
                "name, and a port 1..65535)")


@pytest.mark.parametrize(("section", "problems"), [
    ("  gateway_target: 10.0.0.256:80\n",
     ["site.yml:11: k3s/gateway_target: '10.0.0.256:80' has no IP address or DNS name "
      "before the port: " + _TARGET_HINT]),
    ("  gateway_target: -lb.example.org:80\n",
     ["site.yml:11: k3s/gateway_target: '-lb.example.org:80' has no IP address or DNS name "
      "before the port: " + _TARGET_HINT]),
    ("  gateway_target: 'lb.example.org:0'\n",
     ["site.yml:11: k3s/gateway_target: 'lb.example.org:0' has no port 1..65535: "
      + _TARGET_HINT]),
    ("  gateway_target: 'lb:' \n",
     ["site.yml:11: k3s/gateway_target: 'lb:' has no port 1..65535: " + _TARGET_HINT]),
    ("  gateway_target: 'fd00::50:80'\n",
     ["site.yml:11: k3s/gateway_target: 'fd00::50:80' is not valid: give host:port, e.g. "
      "10.20.0.50:80"]),
    ("  gateway_target: lb.example.org\n",
     ["site.yml:11: k3s/gateway_target: 'lb.example.org' is not valid: give host:port, e.g. "
      "10.20.0.50:80"]),
    # A DNS name Kong does not take as a target (its hostname rule: no '_', no empty label).
    ("  gateway_target: 'a..b:80'\n",
     ["site.yml:11: k3s/gateway_target: 'a..b:80' has no IP address or DNS name before the "
      "port: " + _TARGET_HINT]),
    ("  gateway_target: '" + "9" * 5000 + "'\n",
     ["site.yml:11: k3s/gateway_target: '" + "9" * 57 + "...' is not valid: give host:port, e.g. "
      "10.20.0.50:80"]),
    # An address Python takes and Kong's target rule does not.
    ("  gateway_target: '[::ffff:10.0.0.1]:80'\n",
     ["site.yml:11: k3s/gateway_target: '[::ffff:10.0.0.1]:80' is refused by Kong as an "
      "upstream target (Invalid target ('[::ffff:10.0.0.1]:80'); not a valid hostname or ip "
      "address): " + _TARGET_HINT]),
    # A claim's storageClassName is a DNS subdomain (the API server refuses others).
    ("  storage_class: 'fast..ssd'\n",
     ["site.yml:11: k3s/storage_class: 'fast..ssd' is not valid: storage class names are "
      "lowercase letters, digits, '.' and '-', each part between dots starting and ending "
      "with a letter or digit"]),
    ("  storage_class: " + "a" * 254 + "\n",
     ["site.yml:11: k3s/storage_class: is 254 characters long; at most 253"]),
    ("  storage_class: fast.ssd-1\n", []),
    # open() raises ValueError on a NUL when a k8s command reads the kubeconfig.
    ("  kubeconfig: \"kube\\0config\"\n",
     ["site.yml:11: k3s/kubeconfig: 'kube\\x00config' is not valid: a file name cannot hold "
      "a NUL character; remove it"]),
    ("  rollout_timeout: 2d\n",
     ["site.yml:11: k3s/rollout_timeout: must be at most 1d, got '2d'"]),
    ("  gateway_target: '[fd00::50]:80'\n  rollout_timeout: 1d\n", []),
    ("  gateway_target: lb.example.org:8080\n", []),
])
def test_k3s_values_the_handoff_would_fail_on(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                              section: str, problems: list[str]) -> None:
    monkeypatch.chdir(tmp_path)
    assert validate(tmp_path, JOB, BASE_INVENTORY + "k3s:\n" + section) == problems


def test_placement_labels_are_free_without_node_selector(tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch
                                                         ) -> None:
    monkeypatch.chdir(tmp_path)
    inventory = BASE_INVENTORY.replace("labels: {role: app}", "labels: {role: -app}")
    spec = JOB.replace("placement: {hosts: [app-1]}", "placement: {labels: {role: -app}}")
    assert validate(tmp_path, spec, inventory) == []


def test_two_objects_with_one_name_are_refused_not_one_lost(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Workload `a` of project `ingress` reaching `shop` and workload `a-reach` of `shop`
    with a route both make NetworkPolicy shop/a-reach-from-ingress."""
    monkeypatch.chdir(tmp_path)
    a = SERVICE.replace("name: api", "name: a").replace("project: shop", "project: ingress")
    a = a.replace("18080", "18081") + "reach: [shop]\n"
    b = SERVICE.replace("name: api", "name: a-reach") + "route: {path: /r}\n"
    make_site(tmp_path, {"a.yml": a, "b.yml": b})
    with pytest.raises(ConfigError) as exc:
        load_site("site.yml", environ={})
    assert [str(p) for p in exc.value.problems] == [
        "specs/b.yml:8: route: the NetworkPolicy 'a-reach-from-ingress' (namespace shop) made "
        "from this is also made from specs/a.yml:8 (reach/0); rename one of them"]


# -- consumers ------------------------------------------------------------------------------

def _hash(name: str) -> str:
    return hashlib.sha256(name.encode()).hexdigest()[:10]


@pytest.mark.parametrize(("username", "object_name"), [
    ("triage-ci", "triage-ci"),
    ("ci_bot", f"ci-bot-{_hash('ci_bot')}"),
    ("ci-bot", "ci-bot"),
    ("app.v1", f"app-v1-{_hash('app.v1')}"),
    ("Ops_Team", f"ops-team-{_hash('Ops_Team')}"),
    ("_", _hash("_")),
    ("a" * 250, f"{'a' * 189}-{_hash('a' * 250)}"),
])
def test_consumer_object_names(username: str, object_name: str) -> None:
    assert consumer_object_name(username) == object_name


@given(st.lists(st.from_regex(r"[a-z0-9]([a-z0-9._-]{0,30}[a-z0-9])?", fullmatch=True),
                unique=True, max_size=8))
def test_consumer_object_names_are_valid_and_never_shared(names: list[str]) -> None:
    objects = [consumer_object_name(n) for n in names]
    assert len(set(objects)) == len(objects)
    for obj in objects:
        assert re.fullmatch(r"[a-z0-9]([a-z0-9-]*[a-z0-9])?", obj) and len(obj) <= 200


GATEWAY = """\
gateway:
  hosts: [app-1]
  consumers:
    ci_bot: {project: shop, key_auth: [API_TOKEN]}
    ci-bot: {project: shop, jwt: [{secret: DB_PASSWORD}]}
"""


def test_consumers_with_underscores_render_with_exact_usernames(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    spec = SERVICE + "route: {path: /api, auth: key-auth}\n"
    make_site(tmp_path, {"a.yml": spec}, inventory=BASE_INVENTORY + GATEWAY)
    site = load_site("site.yml", environ={})
    r = render_manifests(site)
    consumers = {d["metadata"]["name"]: d for d in r.manifests if d["kind"] == "KongConsumer"}
    hashed = f"ci-bot-{_hash('ci_bot')}"
    assert sorted(consumers) == ["ci-bot", hashed]
    assert consumers[hashed]["username"] == "ci_bot"
    assert consumers[hashed]["credentials"] == [f"{hashed}-acl", f"{hashed}-key-auth-0"]
    assert consumers["ci-bot"]["username"] == "ci-bot"
    assert consumers["ci-bot"]["credentials"] == ["ci-bot-acl", "ci-bot-jwt-0"]
    secrets = {d["metadata"]["name"] for d in r.manifests if d["kind"] == "Secret"}
    assert {f"{hashed}-acl", f"{hashed}-key-auth-0", "ci-bot-acl", "ci-bot-jwt-0"} <= secrets
    jwt = next(d for d in r.manifests if d["metadata"]["name"] == "ci-bot-jwt-0")
    assert jwt["stringData"]["key"] == "ci-bot"  # the iss claim: the exact username
    docs = materialize(r.manifests, reveal=True)
    assert strict_problems(docs, newest_versions(1)) == []


def test_consumers_that_would_share_an_object_name_are_refused(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    taken = f"ci-bot-{_hash('ci_bot')}"  # the name ci_bot's objects get
    gateway = GATEWAY.replace("ci-bot:", f"{taken}:")
    spec = SERVICE + "route: {path: /api, auth: key-auth}\n"
    make_site(tmp_path, {"a.yml": spec}, inventory=BASE_INVENTORY + gateway)
    with pytest.raises(ConfigError) as exc:
        load_site("site.yml", environ={})
    assert [str(p) for p in exc.value.problems] == [
        f"site.yml:13: gateway/consumers/ci_bot: consumers '{taken}' and 'ci_bot' would "
        f"both be the KongConsumer '{taken}' in a cluster; rename one of them"]


def test_route_values_are_checked_for_either_ingress_class(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Traefik gives an auth route no Ingress; its path is refused all the same, since the
    same site under `ingress: kong` would render it."""
    monkeypatch.chdir(tmp_path)
    spec = SERVICE + "route: {path: '/e%2Fx', auth: key-auth}\n"
    inventory = BASE_INVENTORY + GATEWAY + "k3s: {ingress: traefik}\n"
    assert validate(tmp_path, spec, inventory) == [
        "specs/a.yml:8: route/path: '/e%2Fx': a Kubernetes Ingress path must not contain "
        "'%2F'; write the path without it"]


# -- UDP ------------------------------------------------------------------------------------

def test_a_route_to_a_udp_port_never_becomes_an_ingress_backend() -> None:
    w = m.Workload(kind="service", name="dns", project="net", image="example.org/dns:1",
                   file="specs/dns.yml", line=1, lines={"route": 7, "route/port": 8},
                   ports={"dns": m.Port(53, 1053, protocol="udp")},
                   route=m.Route(paths=("/dns",), port="dns"))
    inv = m.Inventory(file="site.yml", site="s",
                      hosts={"h": m.Host("h", "10.0.0.1")})
    for cfg in (K3sConfig(ingress="kong"), K3sConfig(ingress="traefik")):
        with pytest.raises(ConfigError) as exc:
            render_manifests(m.Site(inventory=inv, workloads=(w,), secrets=SecretStore({})),
                             cfg)
        assert [str(p) for p in exc.value.problems] == [
            "specs/dns.yml:8: route/port: port 'dns' is UDP: an Ingress routes HTTP, which "
            "runs over TCP; route a TCP port"]
    ok = replace(w, route=None)
    r = render_manifests(m.Site(inventory=inv, workloads=(ok,), secrets=SecretStore({})))
    assert [d["kind"] for d in r.manifests if d["kind"] == "Ingress"] == []
    service = next(d for d in r.manifests if d["kind"] == "Service")
    assert service["spec"]["ports"] == [{"name": "dns", "port": 53, "targetPort": "dns",
                                         "protocol": "UDP"}]


# -- Kong's CRDs ----------------------------------------------------------------------------

@pytest.mark.parametrize(("doc", "problems"), [
    ({"username": "a", "credentials": ["a-acl"]}, []),
    ({"credentials": ["a-acl"]}, [".: Need to provide either username or custom_id"]),
    ({"username": "a", "credentials": ["x", "x"]},
     ["credentials: ['x', 'x'] has non-unique elements"]),
    ({"username": "a", "credentials": "a-acl"}, ["credentials: 'a-acl' is not of type 'array'"]),
    ({"username": "a", "spec": {}}, [".: Additional properties are not allowed ('spec' was "
                                     "unexpected)"]),
])
def test_kong_consumer_crd(doc: dict[str, object], problems: list[str]) -> None:
    """The ported CRD refuses what the API server would: the checker can fail."""
    full = {"apiVersion": "configuration.konghq.com/v1", "kind": "KongConsumer",
            "metadata": {"name": "a", "namespace": "n"}, **doc}
    assert crd_problems(full) == problems


@pytest.mark.parametrize(("doc", "problems"), [
    ({"plugin": "acl", "config": {"allow": ["x"], "nested": {"any": 1}}}, []),
    ({"config": {}}, [".: 'plugin' is a required property"]),
    ({"plugin": "acl", "config": {}, "configFrom": {"secretKeyRef": {"name": "s", "key": "k"}}},
     [".: Using both config and configFrom fields is not allowed."]),
    ({"plugin": "acl", "protocols": ["http", "smtp"]},
     ["protocols/1: 'smtp' is not one of ['http', 'https', 'grpc', 'grpcs', 'tcp', 'tls', "
      "'udp']"]),
])
def test_kong_plugin_crd(doc: dict[str, object], problems: list[str]) -> None:
    full = {"apiVersion": "configuration.konghq.com/v1", "kind": "KongPlugin",
            "metadata": {"name": "a", "namespace": "n"}, **doc}
    assert crd_problems(full) == problems


def test_an_unknown_kong_api_version_has_no_schema() -> None:
    doc = {"apiVersion": "configuration.konghq.com/v9", "kind": "KongPlugin", "plugin": "acl"}
    assert crd_problems(doc) == ["no ported CRD for configuration.konghq.com/v9 KongPlugin"]


# -- generated sites, as files --------------------------------------------------------------

# Odd but valid values: names with digits first (jobs, services without ports), dots in
# volume names, consumers with '_' and '.', long env names, UDP ports beside TCP ones,
# wildcard hosts, zones, every route option.
workload_names = st.from_regex(r"[a-z0-9]([a-z0-9-]{0,10}[a-z0-9])?", fullmatch=True)
port_names = st.sampled_from(["http", "h2", "metrics", "p-2", "a1", "0x", "web-admin"])
env_names = st.one_of(st.sampled_from(["A", "B_1", "_x", "PORT"]),
                      st.integers(200, 260).map(lambda n: "E" * n))
volume_sources = st.sampled_from(["data", "cache.v1", "a-b.c", "/srv/x", "/srv/a..b", "Data",
                                  "x_y"])
paths = st.sampled_from(["/", "/a", "/a/b-c", "/x.y", "/a//b", "/v1/~u", "/p%20q"])
hosts = st.sampled_from(["a.example.org", "*.example.org", "x-1.example.org", "10.1.2.3"])
schedules = st.sampled_from(["daily", "Mon..Fri 09:00", "*:0/5", "*-*-* 01:00:00 Asia/Tokyo",
                             "*-*-1 04:00 UTC", "*-*-* 02:00:30"])
consumer_names = st.sampled_from(["ci", "ci_bot", "ci-bot", "app.v1", "x" * 70])


@st.composite
def spec_yaml(draw: st.DrawFn, i: int) -> str:
    name = draw(workload_names)
    lines = [f"name: {name}-{i}" if draw(st.booleans()) else f"name: w{i}-{name}",
             f"project: {draw(st.sampled_from(['shop', 'data', '9lives']))}",
             "image: registry.example.org/app:1"]
    env = draw(st.lists(env_names, max_size=2, unique=True))
    if env:
        lines.append("env: {" + ", ".join(f"{k}: v" for k in env) + "}")
    if draw(st.booleans()):
        lines.append("secrets: [API_TOKEN]")
    vols = draw(st.lists(volume_sources, max_size=2, unique=True))
    if vols:
        lines.append("volumes: [" + ", ".join(f"'{v}:/m{j}'" for j, v in enumerate(vols))
                     + "]")
    if draw(st.booleans()):
        lines.append(f"schedule: '{draw(schedules)}'")
        lines.append(f"shards: {draw(st.integers(1, 3))}")
        return "kind: job\n" + "\n".join(lines) + "\n"
    ports = draw(st.lists(port_names, min_size=0, max_size=2, unique=True))
    if ports:
        lines.append("ports:")
        for j, p in enumerate(ports):
            proto = "udp" if j == 1 and draw(st.booleans()) else "tcp"
            container = 8080 if draw(st.booleans()) else 8080 + j
            lines.append(f"  {p}: {{container: {container}, host: {20000 + 10 * i + j}, "
                         f"protocol: {proto}}}")
        lines.append(f"health: {{tcp: {{port: {ports[0]}}}}}")
        if draw(st.booleans()):
            route_paths = draw(st.lists(paths, min_size=1, max_size=2, unique=True))
            route_hosts = draw(st.lists(hosts, max_size=2, unique=True))
            auth = draw(st.sampled_from(["none", "key-auth", "jwt"]))
            lines.append("route:")
            lines.append("  path: [" + ", ".join(f"'{p}'" for p in route_paths) + "]")
            if route_hosts:
                lines.append("  hosts: [" + ", ".join(f"'{h}'" for h in route_hosts) + "]")
            lines.append(f"  port: {ports[0]}")
            lines.append(f"  auth: {auth}")
            if draw(st.booleans()):
                lines.append("  rate_limit: {second: 5, minute: 100}")
            if draw(st.booleans()):
                lines.append("  cors: {origins: ['*']}")
            if draw(st.booleans()):
                lines.append("  timeouts: {connect: 1.5s, read: 30s, write: 30s}")
    return "kind: service\n" + "\n".join(lines) + "\nplacement: {hosts: [app-1]}\n"


@st.composite
def site_files(draw: st.DrawFn) -> tuple[dict[str, str], str]:
    specs = {f"s{i}.yml": draw(spec_yaml(i)) for i in range(draw(st.integers(1, 4)))}
    inventory = BASE_INVENTORY
    if draw(st.booleans()):
        consumers = draw(st.lists(consumer_names, min_size=1, max_size=3, unique=True))
        inventory += "gateway:\n  hosts: [app-1]\n  consumers:\n" + "".join(
            f"    {c}: {{project: shop, key_auth: [API_TOKEN], jwt: [{{secret: DB_PASSWORD}}]}}"
            "\n" for c in consumers)
    k3s = draw(st.sampled_from(["", "k3s: {ingress: kong}\n", "k3s: {ingress: traefik}\n",
                                "k3s: {time_zone: Europe/Berlin, namespace_prefix: acme-}\n"]))
    return specs, inventory + k3s


@settings(max_examples=60, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(site_files())
def test_a_site_that_validates_renders_and_every_object_passes_its_schema(
        tmp_path_factory: pytest.TempPathFactory, generated: tuple[dict[str, str], str]
) -> None:
    specs, inventory = generated
    root = tmp_path_factory.mktemp("site")
    make_site(root, specs, inventory=inventory)
    try:
        site = load_site(str(root / "site.yml"), environ={})
    except ConfigError as exc:
        for p in exc.problems:
            assert p.line > 0 and p.path, p
        event("refused by validate")
        return
    event("validated")
    r = render_manifests(site)  # the inventory's k3s section, as `hostctl k8s render`
    docs = materialize(r.manifests, reveal=True)
    assert strict_problems(docs, newest_versions(1)) == []
    if r.ingress_class == "kong":
        assert all(d["username"] in (site.inventory.gateway.consumers or {})  # type: ignore
                   for d in docs if d["kind"] == "KongConsumer")


def test_the_worked_example_with_odd_values_renders_and_validates(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The worked example, plus a consumer with '_' and a digit-first job."""
    monkeypatch.chdir(REPO)
    inventory = (REPO / "inventories" / "site.yml").read_text() + textwrap.indent(
        "ops_bot.v2:\n  project: triage\n  key_auth: [OPS_BOT_API_KEY]\n", "    ")
    (tmp_path / "site.yml").write_text(inventory.replace(
        "  - specs/*.yml", f"  - {REPO}/inventories/specs/*.yml\n  - {tmp_path}/0job.yml")
        .replace("env_file: example.secrets.env",
                 f"env_file: {REPO}/inventories/example.secrets.env"))
    (tmp_path / "0job.yml").write_text(JOB.replace("name: batch", "name: 0job").replace(
        "project: shop", "project: triage").replace("hosts: [app-1]", "labels: {role: app}"))
    # Kong refuses two credentials with one key: the new consumer's comes from the environment.
    site = load_site(str(tmp_path / "site.yml"),
                     environ={"HOSTCTL_SECRET_OPS_BOT_API_KEY": "ops-bot-key"})
    for cfg in (K3sConfig(ingress="kong"), K3sConfig(ingress="traefik")):
        r = render_manifests(site, cfg)
        docs = materialize(r.manifests, reveal=True)
        assert strict_problems(docs, newest_versions(3)) == []
    kong = render_manifests(site, K3sConfig(ingress="kong"))
    names = {d["username"]: d["metadata"]["name"] for d in kong.manifests
             if d["kind"] == "KongConsumer"}
    assert names == {"triage-ci": "triage-ci",
                     "ops_bot.v2": f"ops-bot-v2-{_hash('ops_bot.v2')}"}


def test_what_only_the_rendering_finds_is_located_too(tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """A Secret's values are over 1 MiB: the spec names them, the values are elsewhere (each
    fits Docker's 64 KiB env-file line, together they do not fit one Secret)."""
    monkeypatch.chdir(tmp_path)
    names = [f"S{i}" for i in range(17)]
    make_site(tmp_path, {"a.yml": JOB + f"secrets: [{', '.join(names)}]\n"},
              secrets="".join(f"{n}={'x' * 62000}\n" for n in names))
    with pytest.raises(ConfigError) as exc:
        load_site("site.yml", environ={})
    assert [str(p) for p in exc.value.problems] == [
        "specs/a.yml:6: secrets: Secret batch-secrets: its values add up to 1054000 bytes; "
        "Kubernetes allows 1048576 (1 MiB)"]


def test_secret_values_stay_out_of_problems(tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    spec = JOB + "secrets: [DB_PASSWORD]\nvolumes: [Bad_Name:/x]\n"
    problems = validate(tmp_path, spec)
    assert problems and not any("s3cr3t-value" in p for p in problems)


def test_rendering_is_checked_only_when_everything_else_passed() -> None:
    """A route without a port is route_ports' to report; rendering it would fail on it."""
    from hostctl.k8s.site_checks import kubernetes_problems

    w = m.Workload(kind="service", name="api", project="p", image="example.org/a:1",
                   file="a.yml", line=1, route=m.Route(paths=("/a",)))
    inv = m.Inventory(file="site.yml", site="s", hosts={"h": m.Host("h", "10.0.0.1")})
    assert kubernetes_problems(inv, [w], SecretStore({}), others_found=True) == []
    gw = GatewayConfig(hosts=("h",), consumers={"c": Consumer(name="c", project="p")})
    inv = replace(inv, gateway=gw)
    ok = replace(w, route=None)
    store = SecretStore({"S": Secret("S", "v")})
    assert kubernetes_problems(inv, [ok], store, others_found=False) == []
