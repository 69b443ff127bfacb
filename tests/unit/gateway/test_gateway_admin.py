"""The Admin API client against the stand-in DB-less Kong on 127.0.0.1: 201 and the hash,
304, 400 mapped to spec lines, 429 retried within a bound, reads, and the plan's diff."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
import yaml

from hostctl.errors import ConfigError
from hostctl.gateway.admin import (
    EMPTY_CONFIG_HASH,
    ConfigRejected,
    GatewayBusy,
    GatewayError,
    KongAdmin,
    TargetHealth,
    config_hash,
    ready,
)
from hostctl.gateway.declarative import RenderedGateway, dump, render_declarative
from hostctl.gateway.diff import diff_configs, hash_summary
from tests.rigs.gateway_sites import EXAMPLE_SECRETS, REPO, example_site
from tests.rigs.kong_admin_standin import KongAdminStandIn


@pytest.fixture
def kong() -> Iterator[KongAdminStandIn]:
    with KongAdminStandIn() as server:
        yield server


@pytest.fixture
def rendered(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> RenderedGateway:
    monkeypatch.chdir(REPO)
    out = render_declarative(example_site(tmp_path))
    assert out is not None
    return out


class Sleeps(list[float]):
    def __call__(self, seconds: float) -> None:
        self.append(seconds)


def admin(kong: KongAdminStandIn, **kwargs: object) -> KongAdmin:
    sleeps = kwargs.pop("sleep", Sleeps())
    return KongAdmin(kong.url, timeout=5, sleep=sleeps, **kwargs)  # type: ignore[arg-type]


def test_sync_loads_then_304_and_the_hash_proves_it(kong: KongAdminStandIn,
                                                    rendered: RenderedGateway) -> None:
    client = admin(kong)
    assert client.configuration_hash() == EMPTY_CONFIG_HASH
    assert not ready(kong.url)
    first = client.sync(rendered.text, rendered.provenance)
    assert (first.changed, first.configuration_hash, first.attempts) == (
        True, config_hash(rendered.text), 1)
    assert ready(kong.url)
    second = client.sync(rendered.text, rendered.provenance)
    assert (second.changed, second.configuration_hash) == (False, first.configuration_hash)
    assert [(m, p, q) for m, p, q in kong.state.log if m == "POST"] == [
        ("POST", "/config", "check_hash=1&flatten_errors=1")] * 2


def test_a_refused_config_maps_to_spec_lines_and_keeps_the_running_one(
        kong: KongAdminStandIn, rendered: RenderedGateway) -> None:
    client = admin(kong)
    client.sync(rendered.text, rendered.provenance)
    running = kong.state.config_hash
    config = yaml.safe_load(rendered.text)
    triage = next(s for s in config["services"] if s["name"] == "triage-api")
    limit = next(p for p in triage["routes"][0]["plugins"] if p["name"] == "rate-limiting")
    limit["config"]["minute"] = -1
    up = next(u for u in config["upstreams"] if u["name"] == "hostctl-triage-api")
    up["healthchecks"]["active"]["healthy"]["interval"] = 70000
    bad = dump(config, reveal=True)
    with pytest.raises(ConfigRejected) as err:
        client.sync(bad, rendered.provenance)
    spec = "inventories/specs/triage.yml"
    lines = (REPO / spec).read_text().splitlines()
    rate_line = next(i for i, t in enumerate(lines, 1) if "rate_limit:" in t)
    interval_line = next(i for i, t in enumerate(lines, 1) if "interval: 2s" in t)
    assert [str(p) for p in err.value.problems] == sorted([
        f"{spec}:{rate_line}: route/rate_limit/minute: Kong rejected plugin 'rate-limiting' "
        "on route 'triage-api': config.minute: value must be greater than 0",
        f"{spec}:{interval_line}: health/interval: Kong rejected upstream "
        "'hostctl-triage-api': healthchecks.active.healthy.interval: value should be between "
        "0 and 65535",
    ])
    assert isinstance(err.value, ConfigError)
    assert kong.state.config_hash == running


def test_a_refused_credential_never_shows_its_value(kong: KongAdminStandIn,
                                                    rendered: RenderedGateway) -> None:
    config = yaml.safe_load(rendered.text)
    config["consumers"].append({"username": "copycat", "keyauth_credentials": [
        {"key": EXAMPLE_SECRETS["HOSTCTL_SECRET_TRIAGE_CI_API_KEY"]}]})
    with pytest.raises(ConfigRejected) as err:
        admin(kong).sync(dump(config, reveal=True), rendered.provenance)
    text = str(err.value)
    assert EXAMPLE_SECRETS["HOSTCTL_SECRET_TRIAGE_CI_API_KEY"] not in text
    assert "key set to '<secret TRIAGE_CI_API_KEY>' already declared" in text
    (problem,) = err.value.problems
    assert problem.path == "gateway" and problem.file.endswith("site.yml")


def test_busy_kong_is_retried_after_retry_after(kong: KongAdminStandIn,
                                                rendered: RenderedGateway) -> None:
    kong.state.busy, kong.state.retry_after = 2, "3"
    sleeps = Sleeps()
    result = admin(kong, sleep=sleeps).sync(rendered.text, rendered.provenance)
    assert (result.changed, result.attempts, sleeps) == (True, 3, [3.0, 3.0])


def test_busy_kong_is_given_up_on_within_the_bound(kong: KongAdminStandIn,
                                                   rendered: RenderedGateway) -> None:
    kong.state.busy = 100
    sleeps = Sleeps()
    with pytest.raises(GatewayBusy, match="after 3 attempt"):
        admin(kong, sleep=sleeps, max_attempts=3).sync(rendered.text, rendered.provenance)
    assert kong.posts() == 3 and sleeps == [1.0, 1.0]
    kong.state.busy, kong.state.retry_after = 100, "20"
    with pytest.raises(GatewayBusy):
        admin(kong, max_wait=30).sync(rendered.text, rendered.provenance)
    assert kong.posts() == 3 + 2  # a second 20 s wait would pass max_wait: stop instead


def test_a_hash_that_does_not_match_is_an_error(kong: KongAdminStandIn,
                                                rendered: RenderedGateway) -> None:
    kong.state.report_hash = "f" * 32
    with pytest.raises(GatewayError, match=f"reports hash {'f' * 32}, not "
                                           f"{config_hash(rendered.text)}"):
        admin(kong, hash_wait=0.5).sync(rendered.text, rendered.provenance)


def test_unreachable_kong_is_one_clear_line() -> None:
    with KongAdminStandIn() as server:
        url = server.url
    with pytest.raises(GatewayError) as err:
        KongAdmin(url, timeout=2).status()
    assert str(err.value) == (f"cannot reach Kong's Admin API at {url} (ConnectionError); is "
                              "the gateway running and its tunnel open?")


def test_upstream_health_and_entity_writes(kong: KongAdminStandIn,
                                          rendered: RenderedGateway) -> None:
    client = admin(kong)
    with pytest.raises(GatewayError, match="no upstream 'hostctl-triage-api'"):
        client.upstream_health("hostctl-triage-api")
    client.sync(rendered.text, rendered.provenance)
    kong.state.health[("hostctl-triage-api", "10.20.0.11:18081")] = "UNHEALTHY"
    assert client.upstream_health("hostctl-triage-api") == [
        TargetHealth("10.20.0.11:18080", 100, "HEALTHY"),
        TargetHealth("10.20.0.11:18081", 100, "UNHEALTHY")]
    refused = requests.post(kong.url + "/services", json={"name": "x"}, timeout=5)
    assert refused.status_code == 405


# -- the plan: what Kong runs against what hostctl would send ---------------------------------

def test_in_sync_means_an_empty_diff(kong: KongAdminStandIn, rendered: RenderedGateway) -> None:
    client = admin(kong)
    desired = yaml.safe_load(rendered.text)
    before = diff_configs(client.running_config(), desired, rendered.provenance)
    assert [c.sign for c in before.changes] == ["+"] * 18
    client.sync(rendered.text, rendered.provenance)
    after = diff_configs(client.running_config(), desired, rendered.provenance)
    assert after.empty and after.text() == "Kong already runs this configuration.\n"


def test_diff_reads_like_a_plan_and_hides_credentials(
        kong: KongAdminStandIn, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        rendered: RenderedGateway) -> None:
    client = admin(kong)
    running = yaml.safe_load(rendered.text)
    running["services"].append({"name": "old", "host": "old.internal"})
    client.sync(dump(running, reveal=True), rendered.provenance)
    env = {**EXAMPLE_SECRETS, "HOSTCTL_SECRET_TRIAGE_CI_API_KEY": "rotated-key-9876543210"}
    new = render_declarative(example_site(tmp_path, environ=env),
                             weights={("app-1", "hostctl-triage-api-1"): 0})
    assert new is not None
    diff = diff_configs(client.running_config(), yaml.safe_load(new.text), new.provenance)
    assert diff.text() == (
        "- service 'old'  (not in the specs: sync removes it)\n"
        "~ target '10.20.0.11:18080' of upstream 'hostctl-triage-api'  "
        "(inventories/specs/triage.yml:11)\n"
        "    weight: 100 -> 0\n"
        "~ key-auth credential of consumer 'triage-ci'  "
        f"({new.provenance.entities['keyauth_credential:triage-ci:0'].source.file}:"
        f"{new.provenance.entities['keyauth_credential:triage-ci:0'].source.line})\n"
        "    key: (changed)\n")
    for value in (*EXAMPLE_SECRETS.values(), "rotated-key-9876543210"):
        assert value not in diff.text()


def test_diff_names_hand_made_changes_back_to_kongs_defaults(
        kong: KongAdminStandIn, rendered: RenderedGateway) -> None:
    running = yaml.safe_load(rendered.text)
    running["services"][0]["routes"][0]["preserve_host"] = True
    running["services"][0]["retries"] = 1
    admin(kong).sync(dump(running, reveal=True), rendered.provenance)
    diff = diff_configs(admin(kong).running_config(), yaml.safe_load(rendered.text),
                        rendered.provenance)
    assert [line for c in diff.changes for line in c.lines()[1:]] == [
        "    retries: 1 -> 5 (Kong's default)", "    preserve_host: true -> false (Kong's "
                                                 "default)"]


def test_without_an_export_the_hashes_still_tell() -> None:
    assert hash_summary("a" * 32, "a" * 32).startswith("Kong already runs")
    assert hash_summary(EMPTY_CONFIG_HASH, "b" * 32) == (
        "Kong runs no configuration yet; sync loads this one.\n")
    assert "aaaaaaaaaaaa, hostctl would send bbbbbbbbbbbb" in hash_summary("a" * 32, "b" * 32)


def test_a_file_kong_cannot_parse_is_reported_at_the_gateway_section(
        kong: KongAdminStandIn, rendered: RenderedGateway) -> None:
    with pytest.raises(ConfigRejected) as err:
        admin(kong).sync(b"services: [unclosed\n", rendered.provenance)
    (problem,) = err.value.problems
    assert problem.path == "gateway" and problem.file.endswith("site.yml")
    assert problem.message.startswith("Kong rejected the configuration (its running config is "
                                      "unchanged): declarative config is invalid: ")
