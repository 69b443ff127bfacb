"""The declarative config: golden file, Kong's schema, provenance, secrets, determinism, and
generated specs (hypothesis): either hostctl rejects a site with located problems, or Kong's
schema accepts what hostctl makes of it."""

from __future__ import annotations

import os
import shutil
import string
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hostctl.errors import ConfigError
from hostctl.gateway import kong_schema as ks
from hostctl.gateway.declarative import (
    build_declarative,
    gateway_files,
    preflight,
    render_declarative,
)
from hostctl.spec import model as m
from hostctl.spec.secrets import Secret, SecretStore
from hostctl.spec.sections.gateway import (
    Consumer,
    GatewayConfig,
    JwtCredential,
    Source,
    check_gateway,
)
from tests.rigs.gateway_sites import (
    EXAMPLE_SECRETS,
    REPO,
    example_site,
    without_gateway,
)

GOLDEN = Path(__file__).resolve().parents[2] / "golden" / "kong"


@pytest.fixture
def in_repo(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(REPO)  # spec files are then named inventories/specs/...


def test_worked_example_matches_golden_file(tmp_path: Path, in_repo: None) -> None:
    """The redacted file, byte for byte. HOSTCTL_UPDATE_GOLDEN=1 rewrites the copy."""
    rendered = render_declarative(example_site(tmp_path))
    assert rendered is not None
    golden = GOLDEN / "kong.yml"
    if os.environ.get("HOSTCTL_UPDATE_GOLDEN") == "1":
        shutil.rmtree(GOLDEN, ignore_errors=True)
        GOLDEN.mkdir(parents=True)
        golden.write_bytes(rendered.redacted)
    assert rendered.redacted.decode() == golden.read_text()


def test_worked_example_passes_kongs_schema_and_hostctls_lints(tmp_path: Path) -> None:
    rendered = render_declarative(example_site(tmp_path))
    assert rendered is not None
    assert ks.check(yaml.safe_load(rendered.text)) == []
    assert ks.check(yaml.safe_load(rendered.redacted)) == []


def test_values_only_in_the_file_for_the_gateway_host(tmp_path: Path) -> None:
    site = example_site(tmp_path)
    rendered = render_declarative(site)
    assert rendered is not None
    for value in EXAMPLE_SECRETS.values():
        assert value.encode() in rendered.text
        assert value.encode() not in rendered.redacted
        assert value not in repr(rendered.provenance)
    assert b"<secret TRIAGE_CI_API_KEY>" in rendered.redacted
    files = gateway_files(site)
    assert list(files) == ["edge-1"]
    (f,) = files["edge-1"]
    assert (f.path, f.mode, f.secret) == ("/etc/hostctl/gateway/kong.yml", 0o600, True)
    assert f.content == rendered.text and f.shown() == rendered.redacted


def test_rendering_is_identical_across_runs_and_working_directories(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    first = render_declarative(example_site(tmp_path / "a"))
    monkeypatch.chdir(tmp_path)
    second = render_declarative(example_site(tmp_path / "b"))
    assert first is not None and second is not None
    assert (first.text, first.redacted) == (second.text, second.redacted)


def _line_of(path: Path, needle: str) -> int:
    return next(i for i, line in enumerate(path.read_text().splitlines(), 1) if needle in line)


def test_provenance_points_at_the_spec_key_behind_each_field(tmp_path: Path,
                                                             in_repo: None) -> None:
    rendered = render_declarative(example_site(tmp_path))
    assert rendered is not None
    p = rendered.provenance
    triage = REPO / "inventories" / "specs" / "triage.yml"
    spec = "inventories/specs/triage.yml"
    limit = p.entities["plugin:triage-api:rate-limiting"].locate("config.minute")
    assert limit == Source(spec, _line_of(triage, "rate_limit:"), "route/rate_limit/minute")
    interval = p.entities["upstream:triage-api"].locate("healthchecks.active.healthy.interval")
    assert interval == Source(spec, _line_of(triage, "interval: 2s"), "health/interval")
    target = p.entities["target:triage-api:app-1:2"]
    assert target.locate("target") == Source(spec, _line_of(triage, "host: 18080"),
                                              "ports/http/host")
    assert target.label == ("target '10.20.0.11:18081' (hostctl-triage-api-2 on app-1) of "
                            "upstream 'hostctl-triage-api'")
    paths = p.entities["route:triage-api"].locate("paths.1")
    assert paths == Source(spec, _line_of(triage, "path: /triage"), "route/path")
    key = p.entities["keyauth_credential:triage-ci:0"].source
    assert key.path == "gateway/consumers/triage-ci/key_auth/0" and key.line > 0
    assert key.file.endswith("site.yml")


def test_weights_drain_one_instance(tmp_path: Path) -> None:
    site = example_site(tmp_path)
    rendered = render_declarative(site, weights={("app-1", "hostctl-triage-api-1"): 0})
    assert rendered is not None
    config = yaml.safe_load(rendered.redacted)
    (up,) = [u for u in config["upstreams"] if u["name"] == "hostctl-triage-api"]
    assert [(t["target"], t["weight"]) for t in up["targets"]] == [
        ("10.20.0.11:18080", 0), ("10.20.0.11:18081", 100)]


def test_no_gateway_section_renders_nothing(tmp_path: Path) -> None:
    from hostctl.validate import load_site

    inv = tmp_path / "site.yml"
    inv.write_text(without_gateway((REPO / "inventories" / "site.yml").read_text()).replace(
        "  - specs/*.yml", f"  - {REPO}/inventories/specs/*.yml").replace(
        "env_file: example.secrets.env", f"env_file: {REPO}/inventories/example.secrets.env"))
    site = load_site(str(inv), environ={})
    assert render_declarative(site) is None and gateway_files(site) == {}


SPEC_PROBLEMS = [
    ("path: /triage", "path: /triage/../admin", "route/path: '/triage/../admin' is not a "
     "usable path prefix: Kong refuses it and matches requests against its normalized form "
     "'/admin' (no '.' or '..' segments, no escapes of unreserved characters): write that"),
    ("path: /triage", "path: '/tri%zzage'", "route/path: '/tri%zzage' is not a usable path "
     "prefix: Kong refuses it (invalid url-encoded value: '%zz'): '%' starts a %XX escape, "
     "write a literal '%' as %25"),
    ("rate_limit: {minute: 600}", "rate_limit: {second: 20, minute: 10}",
     "route/rate_limit/minute: allows fewer requests per minute (10) than per second (20), "
     "which Kong refuses: raise it to at least 20, or lower second"),
    ("path: /triage", "path: /tri\\age", "route/path: '/tri\\age' is not a usable path "
     "prefix: it has '\\', which a request path cannot hold: use letters, digits and - . _ ~ ! "
     "$ & ' ( ) * + , ; = : @ / (RFC 3986), and %XX escapes for the rest"),
    ("path: /health, port: http", "path: '/health?deep=1', port: http", "health/http/path: "
     "'/health?deep=1' is also the gateway's active health check of this routed service, and "
     "Kong refuses it (invalid path: '/health?deep=1' (characters outside of the reserved list "
     "of RFC 3986 found)): use a path without a query string, '//' or characters outside RFC "
     "3986, such as /health"),
    ("path: /health, port: http", "path: /api//health, port: http", "health/http/path: "
     "'/api//health' is also the gateway's active health check of this routed service, and "
     "Kong refuses it (must not have empty segments): use a path without a query string, '//' "
     "or characters outside RFC 3986, such as /health"),
]


def _triage_site(tmp_path: Path, old: str, new: str) -> tuple[Path, Path]:
    specs = tmp_path / "specs"
    shutil.copytree(REPO / "inventories" / "specs", specs)
    triage = specs / "triage.yml"
    text = triage.read_text()
    assert old in text
    triage.write_text(text.replace(old, new, 1))
    inv = tmp_path / "inv"
    inv.mkdir()
    site_file = tmp_path / "inv" / "site.yml"
    site_file.write_text(without_gateway((REPO / "inventories" / "site.yml").read_text()).replace(
        "  - specs/*.yml", f"  - {specs}/*.yml").replace(
        "env_file: example.secrets.env", f"env_file: {REPO}/inventories/example.secrets.env")
        + "\n" + (REPO / "kong" / "gateway.example.yml").read_text())
    return site_file, triage


@pytest.mark.parametrize(("old", "new", "message"), SPEC_PROBLEMS)
def test_what_kong_would_refuse_validate_refuses_at_the_spec_line(
        tmp_path: Path, old: str, new: str, message: str) -> None:
    from hostctl.validate import load_site

    site_file, triage = _triage_site(tmp_path, old, new)
    with pytest.raises(ConfigError) as err:
        load_site(str(site_file), environ=EXAMPLE_SECRETS)
    (problem,) = err.value.problems
    assert problem.file.endswith("specs/triage.yml")
    assert problem.line == _line_of(triage, new.split(",")[0])
    assert f"{problem.path}: {problem.message}" == message


@pytest.mark.parametrize(("paths", "message"), [
    (("/triage/../admin",), "route/path: Kong would reject route 'triage-api': paths.1: "
     "non-normalized path, consider use '/admin' instead"),
    (("/triage", "/tri%zzage"), "route/path: Kong would reject route 'triage-api': paths.2: "
     "invalid url-encoded value: '%zz'"),
])
def test_what_kong_would_refuse_render_reports_at_the_spec_line(
        tmp_path: Path, paths: tuple[str, ...], message: str) -> None:
    """Render checks the file again (a Site made without validate, as tests and tools do)."""
    site = example_site(tmp_path)
    (api,) = [w for w in site.workloads if w.name == "triage-api"]
    assert api.route is not None
    bad = replace(api, route=replace(api.route, paths=paths))
    site = replace(site, workloads=tuple(bad if w is api else w for w in site.workloads))
    with pytest.raises(ConfigError) as err:
        render_declarative(site)
    (problem,) = err.value.problems
    assert problem.file.endswith("specs/triage.yml") and problem.line == api.lines["route/path"]
    assert f"{problem.path}: {problem.message}" == message


def test_duplicate_keys_are_refused_without_showing_them(tmp_path: Path) -> None:
    gateway = (REPO / "kong" / "gateway.example.yml").read_text().replace(
        "key_auth: [TRIAGE_CI_API_KEY]", "key_auth: [TRIAGE_CI_API_KEY, SAME_KEY]")
    env = {**EXAMPLE_SECRETS, "HOSTCTL_SECRET_SAME_KEY": EXAMPLE_SECRETS[
        "HOSTCTL_SECRET_TRIAGE_CI_API_KEY"]}
    with pytest.raises(ConfigError) as err:
        example_site(tmp_path, gateway, env)
    (problem,) = err.value.problems
    assert problem.path == "gateway/consumers/triage-ci/key_auth/1"
    assert problem.message == (
        "secret 'SAME_KEY' holds the same key as secret 'TRIAGE_CI_API_KEY' at "
        "gateway/consumers/triage-ci/key_auth/0, and Kong refuses two key-auth credentials "
        "with one key: give each credential its own secret value")
    assert EXAMPLE_SECRETS["HOSTCTL_SECRET_TRIAGE_CI_API_KEY"] not in str(err.value)


# -- route extras the gateway adds to specs (cors, max_body, timeouts) ----------------------


def test_route_extras_become_plugins_and_service_timeouts(tmp_path: Path) -> None:
    site = example_site(tmp_path)
    (web,) = [w for w in site.workloads if w.name == "reports-web"]
    assert web.route is not None
    route = m.Route(**{
        **vars(web.route), "max_body": 10 * 2**20,
        "cors": m.Cors(origins=("https://reports.example.org",), methods=("GET",),
                     max_age=3600.0),
        "timeouts": m.Timeouts(connect=5, read=30.5, write=30)})
    site = replace(site, workloads=tuple(replace(w, route=route) if w is web else w
                                         for w in site.workloads))
    config, provenance = build_declarative(site, _gw(site))
    assert preflight(config, provenance) == []
    service = next(s for s in config["services"] if s["name"] == "reports-web")
    assert (service["connect_timeout"], service["read_timeout"],
            service["write_timeout"]) == (5000, 30500, 30000)
    plugins = {p["name"]: p["config"] for p in service["routes"][0]["plugins"]}
    assert plugins == {
        "cors": {"origins": ["https://reports.example.org"], "methods": ["GET"],
                 "max_age": 3600, "credentials": False},
        "request-size-limiting": {"allowed_payload_size": 10485760, "size_unit": "bytes"},
    }


def _gw(site: m.Site) -> GatewayConfig:
    gw = site.inventory.gateway
    assert gw is not None
    return gw


# -- generated sites ------------------------------------------------------------------------

HOSTS = {f"h{i}": m.Host(f"h{i}", f"10.0.0.{i + 1}") for i in range(3)}
PATH_ALPHABET = string.ascii_lowercase + string.digits + "/.-_~%"

paths = st.one_of(
    st.from_regex(r"/[a-z][a-z0-9-]{0,8}(/[a-z0-9._-]{1,6}){0,2}", fullmatch=True),
    st.text(PATH_ALPHABET, min_size=0, max_size=12).map(lambda s: "/" + s),
)
rate_limits = st.one_of(st.none(), st.builds(  # {} and a longer period lower, too
    m.RateLimit, second=st.one_of(st.none(), st.integers(1, 100)),
    minute=st.one_of(st.none(), st.integers(1, 10000)),
    hour=st.one_of(st.none(), st.integers(1, 100000)), day=st.none(),
))
cors = st.one_of(st.none(), st.builds(m.Cors, origins=st.lists(st.sampled_from([
    "*", "https://a.example.org", r"https://.*\.example\.org", "https://(a|b).example.org",
    "invalid_**regex", "https://x.org(", r"https://\x41.org"]), min_size=1, max_size=2)
    .map(tuple)))
routes = st.builds(
    m.Route,
    paths=st.lists(paths, min_size=1, max_size=3, unique=True).map(tuple),
    hosts=st.lists(st.sampled_from(["a.example.org", "*.example.org", "b.example.org",
                                    "a..example.org", "x-.example.org", "c.example.org:99999",
                                    "d.example.org:8080"]),
                   max_size=2, unique=True).map(tuple),
    methods=st.lists(st.sampled_from(["GET", "POST", "OPTIONS", "DELETE"]), max_size=3,
                     unique=True).map(tuple),
    strip_path=st.booleans(),
    auth=st.sampled_from(["none", "key-auth", "jwt"]),
    rate_limit=rate_limits,
    cors=cors,
    allow_projects=st.lists(st.sampled_from(["p0", "p1"]), max_size=1).map(tuple),
).map(lambda r: replace(r, allow_projects=()) if r.auth == "none" and r.paths[0] < "/m"
      else r)
healths = st.one_of(
    st.none(),
    st.builds(m.Health, http=st.builds(m.HttpCheck, port=st.just("http"),
                                       path=st.sampled_from(["/", "/health", "/up/z",
                                                             "/health?deep=1", "/a//health",
                                                             "/h%zz", "/h{x}"])),
              interval=st.sampled_from([1.0, 2.0, 2.5, 30.0]), timeout=st.just(1.0),
              retries=st.integers(1, 5)),
    st.builds(m.Health, tcp=st.builds(m.TcpCheck, port=st.just("http"))),
    st.builds(m.Health, command=st.just(("true",))),
)


@st.composite
def sites(draw: st.DrawFn) -> m.Site:
    count = draw(st.integers(1, 4))
    workloads = []
    for i in range(count):
        workloads.append(m.Workload(
            kind="service", name=f"svc-{i}", project=draw(st.sampled_from(["p0", "p1"])),
            image="img:1", file=f"specs/svc-{i}.yml", line=1,
            ports={"http": m.Port(8080, 20000 + 100 * i,
                                  protocol=draw(st.sampled_from(["tcp"] * 9 + ["udp"])))},
            placement=m.Placement(hosts=tuple(draw(st.lists(
                st.sampled_from(sorted(HOSTS)), min_size=1, max_size=3, unique=True)))),
            instances=draw(st.integers(1, 3)), health=draw(healths),
            route=draw(st.one_of(st.none(), routes)),
            lines={"route": 10, "route/path": 11, "health": 20, "ports/http/host": 5},
        ))
    # Every project has a consumer with both kinds of credential, so most sites are valid
    # and reach Kong's schema; an occasional extra consumer has none (a located refusal).
    projects = sorted({w.project for w in workloads})
    consumers = {f"c{j}": Consumer(f"c{j}", p, key_auth=(f"KEY_{j}",),
                                   jwt=(JwtCredential(f"KEY_{j + 3}"),))
                 for j, p in enumerate(projects)}
    if draw(st.integers(0, 9)) == 7:
        consumers["lonely"] = Consumer("lonely", projects[0])
    gw = GatewayConfig(hosts=("h0",), consumers=consumers, file="site.yml",
                       lines={"gateway": 3})
    # Now and then two keys share a value, or one is empty: Kong refuses both.
    values = {j: f"value-{j}-xyz" for j in range(6)}
    values[draw(st.integers(0, 5))] = draw(st.sampled_from(["value-0-xyz", "", "value-9-xyz"]))
    store = SecretStore({f"KEY_{j}": Secret(f"KEY_{j}", v) for j, v in values.items()})
    inv = m.Inventory(file="site.yml", site="gen", hosts=HOSTS, gateway=gw)
    return m.Site(inventory=inv, workloads=tuple(workloads), secrets=store)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(sites())
def test_generated_sites_are_refused_with_locations_or_accepted_by_kongs_schema(
        site: m.Site) -> None:
    """What validate's checks accept, render turns into a file Kong's schema accepts."""
    from hostctl import validate

    problems = validate.problems(site.inventory, list(site.workloads), site.secrets)
    if not problems:
        rendered = render_declarative(site)  # raises if Kong's rules refuse the file
        assert rendered is not None
        assert ks.check(yaml.safe_load(rendered.text)) == []
        return
    for p in problems:
        assert p.file and p.line > 0 and p.path, p  # located, never a bare complaint
        assert "value-" not in p.message


@settings(max_examples=60, deadline=None)
@given(sites())
def test_generated_sites_never_show_secret_values_when_redacted(site: m.Site) -> None:
    try:
        rendered = render_declarative(site)
    except ConfigError:
        return
    assert rendered is not None
    assert b"value-" not in rendered.redacted
    for c in site.inventory.gateway.consumers.values():  # type: ignore[union-attr]
        for name in c.key_auth:
            assert f"<secret {name}>".encode() in rendered.redacted


def test_generated_paths_cover_what_kong_refuses() -> None:
    """The path strategy must reach the paths Kong refuses, or the property above is weak."""
    refused = ["/a/../b", "/a//b", "/a%zz", "/a/%7e", "/./a"]
    assert all(ks._router_path(p) for p in refused)
    accepted: list[Any] = ["/", "/a", "/a/b-c_d.e~f", "/a/"]
    assert not any(ks._router_path(p) for p in accepted)


def test_cors_on_a_route_with_methods_needs_options(tmp_path: Path, in_repo: None) -> None:
    site = example_site(tmp_path)
    (web,) = [w for w in site.workloads if w.name == "reports-web"]
    assert web.route is not None
    route = m.Route(**{**vars(web.route), "cors": m.Cors()})
    site = replace(site, workloads=tuple(replace(w, route=route) if w is web else w
                                         for w in site.workloads))
    assert [str(p) for p in check_gateway(site.inventory, list(site.workloads),
                                          site.secrets)] == [
        f"inventories/specs/reports.yml:{web.lines['route/methods']}: route/methods: browsers "
        "send CORS preflight requests as OPTIONS: add OPTIONS to route/methods"]


def test_an_http_probe_passes_on_any_2xx_3xx_and_fails_on_4xx_5xx(tmp_path: Path) -> None:
    """docs/service.yml: "GET must answer 2xx/3xx" (hostctl's probe is `curl -f`); Kong's
    defaults ([200, 302]) would never mark a target healthy again whose health answers 204."""
    config = yaml.safe_load(render_declarative(example_site(tmp_path)).redacted)  # type: ignore[union-attr]
    (up,) = [u for u in config["upstreams"] if u["name"] == "hostctl-triage-api"]
    active = up["healthchecks"]["active"]
    assert active["type"] == "http"
    assert active["healthy"]["http_statuses"] == list(range(200, 400))
    assert active["unhealthy"]["http_statuses"] == list(range(400, 600))
    assert {204, 301, 302, 399} <= set(active["healthy"]["http_statuses"])
    tcp = [u for u in config["upstreams"] if u["healthchecks"]["active"]["type"] == "tcp"]
    assert all("http_statuses" not in u["healthchecks"]["active"]["healthy"] for u in tcp)
