"""The alerting rules hostctl renders, proven with promtool on what the real exporter says.

Each scenario drives the exporter's own Sampler against a fake host (Docker, systemd and the
state folder, changed minute by minute), takes its /metrics exposition every minute, and
turns it into promtool's input_series the way Prometheus would have stored the scrape: the
rendered target's labels added (an exposed label that collides with one is renamed
exported_<name>, as Prometheus does), `up` 1 or 0, a series that vanishes marked stale.
`promtool test rules` then checks that each alert fires when it should, with the labels and
summary it should, and stays quiet where it should. `promtool check rules` and `check
config` read the rendered files as they are.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from hostctl.k8s.handoff_records import record_line
from hostctl.observability.exporter import ExporterConf, Sampler, registry_for
from hostctl.observability.exporter_bundle import exporter_config
from hostctl.observability.files import site_files
from hostctl.observability.grafana import dashboard
from hostctl.observability.prometheus import (
    alert_rules,
    job_name,
    promql_string,
    rules_file,
    targets,
)
from hostctl.spec import model as m
from tests.rigs.exporter_host import FakeHost, inspect_item, labels
from tests.rigs.site_factory import made_site

pytestmark = pytest.mark.skipif(
    shutil.which("promtool") is None,
    reason="promtool not installed (Debian's prometheus package has it; "
           "scripts/ci-setup.sh installs it)")

INVENTORY = """\
site: alerts
hosts:
  app-1: {address: 10.0.0.1}
specs: [specs/*.yml]
secrets: {env_file: secrets.env}
metrics:
  exporter: {sample_interval: 5s}
"""

SPECS = {"shop.yml": """\
    kind: service
    name: api
    project: shop
    image: example.org/shop/api:1.0
    instances: 2
    health: {command: [/bin/true]}
    ---
    kind: service
    name: web
    project: shop
    image: example.org/shop/web:1.0
    """}


@pytest.fixture()
def site(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> m.Site:
    monkeypatch.chdir(tmp_path)
    return made_site(tmp_path / "site", SPECS, INVENTORY, environ={})


class MinuteClock:
    def __init__(self) -> None:
        self.now = 0.0  # promtool's time starts at 0

    def __call__(self) -> float:
        return self.now


class Scrapes:
    """The real exporter of `app-1`, sampled and scraped once a minute."""

    def __init__(self, site: m.Site, state: Path):
        inv = site.inventory
        met = inv.metrics
        assert met is not None
        host = inv.hosts["app-1"]
        conf = exporter_config(site, host, met)
        conf["state_dir"] = str(state)
        self.state = state
        self.host = FakeHost()
        self.clock = MinuteClock()
        self.sampler = Sampler(ExporterConf.from_json(conf), run=self.host, clock=self.clock)
        (target,) = [t for t in targets(inv, met) if t["labels"]["host"] == "app-1"]
        self.target = {"job": job_name(inv.site), "instance": target["targets"][0],
                       **target["labels"]}
        self.minutes: list[dict[str, float] | None] = []

    @classmethod
    def healthy(cls, site: m.Site, state: Path) -> Scrapes:
        """The usual start: both replicas of api running and healthy, web handed off."""
        s = cls(site, state)
        s.run("api", 1)
        s.run("api", 2)
        s.hand_off("web")
        return s

    def run(self, service: str, replica: int, health: str = "healthy",
            running: bool = True) -> None:
        name = f"hostctl-{service}-{replica}"
        self.host.items = [i for i in self.host.items if i["Id"] != name]
        self.host.items.append(inspect_item(
            name, name, labels(service, "shop", instance=str(replica)), running=running,
            pid=100 + replica, health=health))

    def restarts(self, **units: int) -> None:
        self.host.units = "\n\n".join(
            f"Id=hostctl-{unit.replace('_', '-')}.service\nNRestarts={n}\nActiveState=active"
            for unit, n in units.items()) + "\n"

    def hand_off(self, service: str) -> None:
        record = self.state / "cluster" / service
        record.parent.mkdir(parents=True, exist_ok=True)
        record.write_text(record_line("ops", "r1", "k3s", None, now=0) + "\n")

    def minute(self, *, sample: bool = True, answers: bool = True) -> None:
        """One scrape at the next minute; `sample=False`: the sampler is stuck (the last
        sample is served again); `answers=False`: the exporter is down."""
        self.clock.now = 60.0 * len(self.minutes)
        if sample:
            self.sampler.sample()
        if not answers:
            self.minutes.append(None)
            return
        text = generate_latest(registry_for(self.sampler)).decode()
        self.minutes.append(self._stored(text))

    def _stored(self, text: str) -> dict[str, float]:
        """series -> value as Prometheus stores the scrape (honor_labels: false)."""
        out: dict[str, float] = {}
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                labels_ = {(f"exported_{k}" if k in self.target else k): v
                           for k, v in sample.labels.items()}
                labels_.update(self.target)
                out[series_key(sample.name, labels_)] = float(sample.value)
        return out

    def input_series(self) -> list[dict[str, str]]:
        up = series_key("up", self.target)
        names = sorted({k for minute in self.minutes if minute for k in minute})
        columns: dict[str, list[float | None]] = {
            up: [0.0 if minute is None else 1.0 for minute in self.minutes]}
        for key in names:
            columns[key] = [None if minute is None else minute.get(key)
                            for minute in self.minutes]
        return [{"series": key, "values": promtool_values(values)}
                for key, values in columns.items()]


def series_key(name: str, labels_: dict[str, str]) -> str:
    inner = ",".join(f"{k}={promql_string(v)}" for k, v in sorted(labels_.items()))
    return f"{name}{{{inner}}}"


def promtool_values(values: list[float | None]) -> str:
    """One value per minute; a series that vanishes gets a stale marker, as after a
    scrape that lacks it, then nothing."""
    out, seen = [], False
    for v in values:
        if v is None:
            out.append("stale" if seen else "_")
            seen = False
        else:
            out.append(repr(v))
            seen = True
    return " ".join(out)


def target_labels(scrapes: Scrapes, **extra: str) -> dict[str, str]:
    return {**scrapes.target, **extra}


def replica(scrapes: Scrapes, service: str, n: int, severity: str = "page") -> dict[str, str]:
    return target_labels(scrapes, service=service, project="shop", replica=str(n),
                         severity=severity)


def promtool_test(site: m.Site, tmp_path: Path, cases: list[dict[str, Any]]) -> None:
    met = site.inventory.metrics
    assert met is not None
    rules = tmp_path / "rules.yml"
    rules.write_text(alert_rules(site.inventory, met))
    tests = tmp_path / "tests.yml"
    tests.write_text(yaml.safe_dump({"rule_files": [str(rules)], "evaluation_interval": "1m",
                                     "tests": cases}, sort_keys=False, width=1000))
    res = subprocess.run(["promtool", "test", "rules", str(tests)], capture_output=True,
                         text=True, timeout=120)
    assert res.returncode == 0, res.stdout + res.stderr


def case(scrapes: Scrapes, checks: list[tuple[str, str, list[dict[str, Any]]]]
         ) -> dict[str, Any]:
    """(eval time, alert, the alerts expected as (labels, summary)) on this scenario."""
    return {"interval": "1m", "input_series": scrapes.input_series(),
            "alert_rule_test": [{"eval_time": at, "alertname": alert, "exp_alerts": [
                {"exp_labels": labels_, "exp_annotations": {"summary": summary}}
                for labels_, summary in expected]}
                for at, alert, expected in checks]}


# -- the scenarios ---------------------------------------------------------------------------

def service_down(site: m.Site, state: Path, handed_off: bool) -> dict[str, Any]:
    """api #2 exited; web does not run here: handed to the cluster, or simply down."""
    s = Scrapes(site, state)
    s.run("api", 1)
    s.run("api", 2, running=False)
    if handed_off:
        s.hand_off("web")
    for _ in range(5):
        s.minute()
    down = [(replica(s, "api", 2), "api #2 (project shop) is not running on app-1")]
    if not handed_off:
        down.append((replica(s, "web", 1), "web #1 (project shop) is not running on app-1"))
    return case(s, [("1m", "HostctlServiceDown", []), ("4m", "HostctlServiceDown", down),
                    ("4m", "HostctlServiceUnhealthy", [])])


def unhealthy(site: m.Site, state: Path) -> dict[str, Any]:
    s = Scrapes(site, state)
    s.run("api", 1, health="unhealthy")
    s.run("api", 2)
    s.hand_off("web")
    for _ in range(8):
        s.minute()
    summary = "api #1 on app-1 runs but fails its health check"
    return case(s, [("4m", "HostctlServiceUnhealthy", []),
                    ("6m", "HostctlServiceUnhealthy", [(replica(s, "api", 1), summary)]),
                    ("6m", "HostctlServiceDown", [])])


def restarting(site: m.Site, state: Path) -> dict[str, Any]:
    """api #1 crashes and systemd restarts it, once a minute."""
    s = Scrapes.healthy(site, state)
    for n in range(7):
        s.restarts(api_1=n, api_2=0)
        s.minute()
    summary = "api #1 on app-1 restarted more than 3 times in 15 minutes"
    return case(s, [("3m", "HostctlServiceRestarting", []),
                    ("5m", "HostctlServiceRestarting",
                     [(replica(s, "api", 1, "ticket"), summary)])])


def docker_down(site: m.Site, state: Path) -> dict[str, Any]:
    s = Scrapes.healthy(site, state)
    s.minute()
    s.host.docker_up = False
    for _ in range(3):
        s.minute()
    return case(s, [("1m", "HostctlDockerDown", []),
                    ("2m", "HostctlDockerDown", [(
                        target_labels(s, severity="page"),
                        "Docker on app-1 does not answer the exporter")])])


def stale_sample(site: m.Site, state: Path) -> dict[str, Any]:
    """The sampler stops (a hung docker command), the exporter serves its last sample."""
    s = Scrapes.healthy(site, state)
    s.minute()
    s.minute()
    for _ in range(5):
        s.minute(sample=False)
    summary = "the exporter on app-1 has not read its containers for over 60s"
    return case(s, [("4m", "HostctlSampleStale", []),
                    ("5m", "HostctlSampleStale", [(target_labels(s, severity="ticket"),
                                                   summary)])])


def exporter_down(site: m.Site, state: Path) -> dict[str, Any]:
    s = Scrapes.healthy(site, state)
    s.minute()
    for _ in range(4):
        s.minute(answers=False)
    summary = ("hostctl exporter on app-1 does not answer (host down, or "
               "hostctl-exporter.service stopped); its services are not watched")
    return case(s, [("2m", "HostctlExporterDown", []),
                    ("3m", "HostctlExporterDown", [(target_labels(s, severity="page"),
                                                    summary)]),
                    # its series went stale with the scrape: nothing else pages
                    ("3m", "HostctlServiceDown", []), ("3m", "HostctlDockerDown", [])])


# -- the tests -------------------------------------------------------------------------------

def test_every_alert_fires_on_the_real_exporters_series(site: m.Site, tmp_path: Path) -> None:
    cases = [service_down(site, tmp_path / "a", handed_off=True),
             service_down(site, tmp_path / "b", handed_off=False),
             unhealthy(site, tmp_path / "c"), restarting(site, tmp_path / "d"),
             docker_down(site, tmp_path / "e"), stale_sample(site, tmp_path / "f"),
             exporter_down(site, tmp_path / "g")]
    met = site.inventory.metrics
    assert met is not None
    shipped = {r["alert"] for g in yaml.safe_load(alert_rules(site.inventory, met))["groups"]
               for r in g["rules"]}
    proven = {t["alertname"] for c in cases for t in c["alert_rule_test"] if t["exp_alerts"]}
    assert proven == shipped  # a new alert needs a scenario here
    promtool_test(site, tmp_path, cases)


def test_the_series_carry_no_exported_labels(site: m.Site, tmp_path: Path) -> None:
    """Nothing the exporter says collides with the target's labels (issue 10 #7)."""
    s = Scrapes(site, tmp_path)
    s.run("api", 1)
    s.minute()
    assert s.minutes[0] is not None
    assert not [k for k in s.minutes[0] if "exported_" in k]


def test_promtool_checks_the_rendered_config_and_rules(site: m.Site, tmp_path: Path) -> None:
    out = tmp_path / "out"
    for rel, content in site_files(site).items():
        (out / rel).parent.mkdir(parents=True, exist_ok=True)
        (out / rel).write_bytes(content)
    rules = out / "prometheus" / rules_file(site.inventory.site)
    checked = subprocess.run(["promtool", "check", "rules", str(rules)], capture_output=True,
                             text=True, timeout=60)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "SUCCESS: 6 rules found" in checked.stdout
    config = subprocess.run(["promtool", "check", "config", str(out / "prometheus" /
                                                               "prometheus.yml")],
                            capture_output=True, text=True, timeout=60)
    assert config.returncode == 0, config.stdout + config.stderr


@pytest.mark.parametrize(("interval", "timeout", "written"), [
    ("1500ms", "1.001s", ("1500ms", "1001ms")),
    ("1h", "1h", ("3600s", "3600s")),
    ("1s", "1s", ("1s", "1s")),
])
def test_every_scrape_duration_validate_takes_promtool_takes(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, interval: str, timeout: str,
        written: tuple[str, str]) -> None:
    """Prometheus durations are whole units: `1.5s` or `1e+06s` would be refused."""
    monkeypatch.chdir(tmp_path)
    inventory = INVENTORY + (f"  prometheus: {{scrape_interval: {interval}, "
                             f"scrape_timeout: {timeout}}}\n")
    site = made_site(tmp_path / "site", SPECS, inventory, environ={})
    config = site_files(site)["prometheus/prometheus.yml"]
    scrape = yaml.safe_load(config)["scrape_configs"][0]
    assert (scrape["scrape_interval"], scrape["scrape_timeout"]) == written
    path = tmp_path / "prometheus.yml"
    path.write_bytes(config)
    checked = subprocess.run(["promtool", "check", "config", "--syntax-only", str(path)],
                             capture_output=True, text=True, timeout=60)
    assert checked.returncode == 0, checked.stdout + checked.stderr


@pytest.mark.parametrize("value", ['a"b', "back\\slash", "line\nbreak", "ünï", "$host"])
def test_a_promql_string_selects_exactly_its_value(tmp_path: Path, value: str) -> None:
    """promql_string, which the rules and dashboards write label values with, read by
    Prometheus' own parser: it selects the series with that value and no other."""
    rules = tmp_path / "rules.yml"
    rules.write_text(yaml.safe_dump({"groups": [{"name": "g", "rules": [
        {"record": "selected", "expr": f"count(up{{job={promql_string(value)}}})"}]}]}))
    tests = tmp_path / "tests.yml"
    tests.write_text(yaml.safe_dump({"rule_files": [str(rules)], "tests": [{
        "interval": "1m",
        "input_series": [{"series": f"up{{job={promql_string(v)}}}", "values": "1 1"}
                         for v in (value, value + "x", "a")],
        "promql_expr_test": [{"expr": "selected", "eval_time": "1m",
                              "exp_samples": [{"labels": "selected", "value": 1}]}]}]}))
    res = subprocess.run(["promtool", "test", "rules", str(tests)], capture_output=True,
                         text=True, timeout=60)
    assert res.returncode == 0, res.stdout + res.stderr


def test_the_dashboard_expects_no_replica_of_a_service_in_the_cluster(
        site: m.Site, tmp_path: Path) -> None:
    """"Replicas expected" of the rendered dashboard, on the real exporter's series of a host
    where api runs two replicas and web was handed to the cluster."""
    met = site.inventory.metrics
    assert met is not None
    panels = dashboard(site.inventory.site, "shop", met)["panels"]
    (expr,) = [p["targets"][0]["expr"] for p in panels if p["title"] == "Replicas expected"]
    scenario = service_down(site, tmp_path / "s", handed_off=True)
    rules = tmp_path / "rules.yml"
    rules.write_text(yaml.safe_dump({"groups": [{"name": "g", "rules": [
        {"record": "expected", "expr": expr.replace("$host", ".*")}]}]}))
    tests = tmp_path / "tests.yml"
    tests.write_text(yaml.safe_dump({"rule_files": [str(rules)], "tests": [{
        "interval": "1m", "input_series": scenario["input_series"],
        "promql_expr_test": [{"expr": "expected", "eval_time": "2m",
                              "exp_samples": [{"labels": "expected", "value": 2}]}]}]},
        width=1000))
    res = subprocess.run(["promtool", "test", "rules", str(tests)], capture_output=True,
                         text=True, timeout=60)
    assert res.returncode == 0, res.stdout + res.stderr
