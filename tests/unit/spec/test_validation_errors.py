"""Error text is an interface: a table of bad input -> the exact messages hostctl prints."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from hostctl.errors import ConfigError
from hostctl.validate import load_site
from tests.rigs.site_factory import BASE_INVENTORY, JOB, SERVICE, make_site, refusals

CASES = [
    pytest.param(
        {"a.yml": SERVICE.replace("port: http}", "port: htp}")},
        ["specs/a.yml:8: health/http/port: 'htp' is not a port name of this service; "
         "did you mean 'http'? (known: http)"],
        id="health-port-typo",
    ),
    pytest.param(
        {"a.yml": SERVICE + "imgae: x\n"},
        ["specs/a.yml:10: imgae: unknown key 'imgae'; did you mean 'image'? (known: args, "
         "command, env, health, image, image_source, instances, kind, name, placement, ports, "
         "project, reach, report, resources, restart, retries, route, schedule, secrets, "
         "shards, stop_timeout, timeout, volumes)"],
        id="unknown-key",
    ),
    pytest.param(
        {"a.yml": SERVICE.replace("name: api", "name: API_v2")},
        ["specs/a.yml:2: name: 'API_v2' is not valid: use lowercase letters, digits and '-', "
         "starting and ending with a letter or digit"],
        id="bad-name",
    ),
    pytest.param(
        {"a.yml": SERVICE, "b.yml": SERVICE},
        ["specs/b.yml:2: name: 'api' is already the name of the service at specs/a.yml:2; "
         "names must be unique across all specs",
         "specs/b.yml:6: ports/http/host: host port 18080 on app-1 is also used by api "
         "(specs/a.yml); instances use host, host+1, ...: pick ports that do not overlap"],
        id="duplicate-name",
    ),
    pytest.param(
        {"a.yml": SERVICE + "resources: cpu_smal\n"},
        ["specs/a.yml:10: resources: unknown profile 'cpu_smal'; did you mean 'cpu_small'? "
         "(known: cpu_small, gpu_medium); define it under profiles: in site.yml"],
        id="unknown-profile",
    ),
    pytest.param(
        {"a.yml": SERVICE.replace("placement: {hosts: [app-1]}",
                                  "placement: {hosts: [app-1]}\nresources: gpu_medium")},
        ["specs/a.yml:10: resources: needs 1 GPU(s) on every host it runs on, but app-1 has "
         "fewer; narrow placement to GPU hosts"],
        id="gpu-on-cpu-host",
    ),
    pytest.param(
        {"a.yml": SERVICE.replace("[app-1]", "[app-2]")},
        ["specs/a.yml:9: placement/hosts/0: no host 'app-2' in site.yml; did you mean "
         "'app-1'? (known: app-1, gpu-1)"],
        id="unknown-host",
    ),
    pytest.param(
        {"a.yml": SERVICE.replace("placement: {hosts: [app-1]}",
                                  "placement: {labels: {role: db}}")},
        ["specs/a.yml:9: placement: matches no host of the inventory; check the host names "
         "and labels under placement"],
        id="placement-matches-nothing",
    ),
    pytest.param(
        {"a.yml": SERVICE + "route: {path: /api}\nsecrets: [NOPE]\n"},
        ["specs/a.yml:11: secrets/0: secret 'NOPE' is not in secrets.env; add it there "
         "(never in the spec)"],
        id="missing-secret",
    ),
    pytest.param(
        {"a.yml": SERVICE.replace("{container: 8080, host: 18080}", "8080")
         + "route: {path: /api}\n"},
        ["specs/a.yml:6: ports/http: is routed by the gateway, so it must be published: "
         "add host: PORT"],
        id="route-port-unpublished",
    ),
    pytest.param(
        {"a.yml": SERVICE.replace("ports:\n  http: {container: 8080, host: 18080}\n", "")
         .replace("health:\n  http: {path: /health, port: http}\n", "")
         + "route: {path: /api}\n"},
        ["specs/a.yml:6: route: a route needs a port: name it with route/port, and declare "
         "it under ports: {http: {container: 8080, host: 18080}}"],
        id="route-without-port",
    ),
    pytest.param(
        {"a.yml": SERVICE + "instances: 3\n",
         "b.yml": SERVICE.replace("name: api", "name: web").replace("18080", "18082")},
        ["specs/b.yml:6: ports/http/host: host port 18082 on app-1 is also used by api "
         "(specs/a.yml); instances use host, host+1, ...: pick ports that do not overlap"],
        id="instances-collide-on-ports",
    ),
    pytest.param(
        {"a.yml": SERVICE.replace("18080", "65535") + "instances: 2\n"},
        ["specs/a.yml:6: ports/http/host: 2 instances need host ports 65535..65536, past "
         "65535; lower host"],
        id="instances-past-port-range",
    ),
    pytest.param(
        {"a.yml": SERVICE + "schedule: daily\n"},
        ["specs/a.yml:10: schedule: services have no schedule; remove it, or make this "
         "kind: job"],
        id="service-with-schedule",
    ),
    pytest.param(
        {"a.yml": "kind: job\nname: j\nproject: p\nimage: x:1\nschedule: '*-*-* 25:00'\n"},
        ["specs/a.yml:5: schedule: '*-*-* 25:00' is not a systemd calendar expression: "],
        id="bad-calendar",
    ),
    pytest.param(
        {"a.yml": SERVICE + "instances: many\nstop_timeout: soon\n"},
        ["specs/a.yml:10: instances: expected a whole number, got 'many'",
         "specs/a.yml:11: stop_timeout: expected a duration such as 30s, 5m, 1h30m or 500ms, "
         "got 'soon'"],
        id="all-errors-reported-together",
    ),
    pytest.param(
        {"a.yml": SERVICE + "env: {DEBUG: yes}\n"},
        ["specs/a.yml:10: env/DEBUG: got a boolean (true); YAML reads yes/no/on/off/"
         "true/false as booleans, quote it: 'true'"],
        id="yaml-boolean-trap",
    ),
    pytest.param(
        {"a.yml": "kind: service\nname: [x\n"},
        ["specs/a.yml:3: invalid YAML: did not find expected ',' or ']'"],
        id="malformed-yaml",
    ),
    pytest.param(
        {"a.yml": "\n# nothing here\n"},
        ["specs/a.yml:1: no workload in this file; add a spec or remove the file"],
        id="empty-file",
    ),
    pytest.param(
        {"a.yml": SERVICE + "name: again\n"},
        ["specs/a.yml:10: name: duplicate key 'name' (first at line 2); remove one of them"],
        id="duplicate-key",
    ),
    pytest.param(
        {"a.yml": "- kind: service\n"},
        ["specs/a.yml:1: a workload spec is a YAML mapping with kind, name, project and image"],
        id="not-a-mapping",
    ),
    pytest.param(
        {"a.yml": SERVICE + "memory: 1Gi\n".replace("memory", "resources") .replace(
            "1Gi", "{cpus: 0, memory: 1Kb}")},
        ["specs/a.yml:10: resources/cpus: must be greater than 0, got 0",
         "specs/a.yml:10: resources/memory: expected a size such as 512Mi, 1Gi or 2G, "
         "got '1Kb'"],
        id="bad-resources",
    ),
    pytest.param(
        {"a.yml": SERVICE + "report: [val_auc]\n"},
        ["specs/a.yml:10: report: services have no report; remove it, or make this "
         "kind: job"],
        id="service-with-report",
    ),
    pytest.param(
        {"a.yml": JOB + "report: [val_auc, 1st, 'a b', ok/x:y.z-w]\n"},
        ["specs/a.yml:6: report/1: '1st' is not valid: metric names start with a letter or "
         "'_', then letters, digits and '_', '.', ':', '/', '-'",
         "specs/a.yml:6: report/2: 'a b' is not valid: metric names start with a letter or "
         "'_', then letters, digits and '_', '.', ':', '/', '-'"],
        id="report-bad-names",
    ),
    pytest.param(
        {"a.yml": JOB + f"report: [{'m' * 65}]\n"},
        ["specs/a.yml:6: report/0: is 65 characters long; at most 64"],
        id="report-name-too-long",
    ),
    pytest.param(
        {"a.yml": JOB + "report:\n  - loss\n  - val_auc\n  - loss\n"},
        ["specs/a.yml:9: report/2: 'loss' is listed twice; list each metric once"],
        id="report-duplicate",
    ),
    pytest.param(
        {"a.yml": JOB + f"report: [{', '.join(f'm{i}' for i in range(21))}]\n"},
        ["specs/a.yml:6: report: lists 21 metrics; at most 20: keep the ones you watch in "
         "Prometheus (every run keeps all of its metrics anyway)"],
        id="report-too-many",
    ),
    pytest.param(
        {"a.yml": JOB + "report: {val_auc: max}\n"},
        ["specs/a.yml:6: report: expected a list of metric names such as [val_auc, loss], "
         "got a mapping"],
        id="report-not-a-list",
    ),
]


@pytest.mark.parametrize(("specs", "expected"), CASES)
def test_bad_input_gives_exact_messages(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                        specs: dict[str, str], expected: list[str]) -> None:
    monkeypatch.chdir(tmp_path)
    got = refusals(tmp_path, specs)
    assert got and len(got) == len(expected), got
    for line, want in zip(got, expected, strict=True):
        assert line.startswith(want) if want.endswith(": ") else line == want


INVENTORY_CASES = [
    pytest.param(BASE_INVENTORY.replace("site: t\n", ""),
                 ["site.yml:1: site: missing required key 'site'"], id="missing-site"),
    pytest.param(BASE_INVENTORY + "hosst: {}\n",
                 ["site.yml:10: hosst: unknown key 'hosst'; did you mean 'hosts'? (known: "
                  "gateway, hosts, image_source, jobs, k3s, logging, metrics, profiles, projects, "
                  "secrets, site, specs, ssh)"], id="unknown-top-key"),
    pytest.param(BASE_INVENTORY.replace("address: 10.0.0.2", "adress: 10.0.0.2"),
                 ["site.yml:4: hosts/gpu-1: missing required key 'address'",
                  "site.yml:4: hosts/gpu-1/adress: unknown key 'adress'; did you mean "
                  "'address'? (known: address, docker, gpu_mode, gpus, labels, ssh)"],
                 id="host-typo"),
    pytest.param(BASE_INVENTORY.replace("specs/*.yml", "nowhere/*.yml"),
                 ["site.yml:8: specs/0: 'nowhere/*.yml' matches no file; fix the path (it is "
                  "relative to the inventory)"], id="specs-glob-empty"),
    pytest.param(BASE_INVENTORY.replace("10.0.0.2", "10.0.0.1"),
                 ["site.yml:4: hosts/gpu-1: same SSH address and port as host 'app-1'; each "
                  "host must be a different machine"], id="same-host-twice"),
    pytest.param("", ["site.yml: an inventory is one YAML mapping (site, hosts, specs, ...)"],
                 id="empty-inventory"),
    *[pytest.param(BASE_INVENTORY + "projects:\n" + section, expected, id=f"projects-{name}")
      for name, section, expected in [
          ("not-a-mapping", "  - shop\n",
           ["site.yml:10: projects: expected a mapping, got a list"]),
          ("ledger-host-unknown", "  ledger_host: app-2\n",
           ["site.yml:11: projects/ledger_host: no host 'app-2' in site.yml; did you mean "
            "'app-1'? (known: app-1, gpu-1)"]),
          ("ledger-host-bad", "  ledger_host: App_1\n",
           ["site.yml:11: projects/ledger_host: 'App_1' is not valid: use lowercase letters, "
            "digits and '-', starting and ending with a letter or digit"]),
          ("key-with-underscore", "  ledger_hots: app-1\n",
           ["site.yml:11: projects/ledger_hots: unknown key 'ledger_hots'; did you mean "
            "'ledger_host'? (known: ledger_host, or a project name: use lowercase letters, "
            "digits and '-', starting and ending with a letter or digit)"]),
          ("bad-project-name", "  Shop: {}\n",
           ["site.yml:11: projects/Shop: 'Shop' is not valid: use lowercase letters, digits "
            "and '-', starting and ending with a letter or digit"]),
          ("unused-project", "  shpo: {gpus: 1}\n",
           ["site.yml:11: projects/shpo: no spec has project 'shpo'; did you mean 'shop'? "
            "(known: shop); fix the name or remove the entry"]),
          ("unknown-quota-key", "  shop: {gpu: 1}\n",
           ["site.yml:11: projects/shop/gpu: unknown key 'gpu'; did you mean 'gpus'? (known: "
            "cpus, gpu_hours_per_month, gpus, memory, owners, priority)"]),
          ("zero-gpus", "  shop: {gpus: 0}\n",
           ["site.yml:11: projects/shop/gpus: must be at least 1, got 0"]),
          ("fractional-gpus", "  shop: {gpus: 1.5}\n",
           ["site.yml:11: projects/shop/gpus: expected a whole number, got a number (1.5)"]),
          ("zero-cpus", "  shop: {cpus: 0}\n",
           ["site.yml:11: projects/shop/cpus: must be greater than 0, got 0"]),
          ("bad-memory", "  shop: {memory: 32GB-ish}\n",
           ["site.yml:11: projects/shop/memory: expected a size such as 512Mi, 1Gi or 2G, got "
            "'32GB-ish'"]),
          ("negative-budget", "  shop: {gpu_hours_per_month: -5}\n",
           ["site.yml:11: projects/shop/gpu_hours_per_month: must be greater than 0, got -5"]),
          ("bad-priority", "  shop: {priority: urgent}\n",
           ["site.yml:11: projects/shop/priority: 'urgent' is not one of: high, normal, low"]),
          ("owners-not-a-list", "  shop: {owners: alice}\n",
           ["site.yml:11: projects/shop/owners: expected a list, got 'alice'"]),
          ("owners-empty", "  shop: {owners: []}\n",
           ["site.yml:11: projects/shop/owners: needs at least 1 item(s)"]),
          ("owner-bad-name", "  shop: {owners: [alice, -bob]}\n",
           ["site.yml:11: projects/shop/owners/1: '-bob' is not valid: owners are user names: "
            "letters, digits, '.', '_', '@' and '-', not starting with '.', '@' or '-'"]),
      ]],
]


@pytest.mark.parametrize(("inventory", "expected"), INVENTORY_CASES)
def test_bad_inventory_gives_exact_messages(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                            inventory: str, expected: list[str]) -> None:
    monkeypatch.chdir(tmp_path)
    assert refusals(tmp_path, {"a.yml": SERVICE}, inventory=inventory) == expected


def test_secrets_file_bad_lines_are_named_without_their_content(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    inv = make_site(tmp_path, {"a.yml": SERVICE},
                    secrets="GOOD=1\nthis line leaks hunter2\n1BAD=x\nQ='open\n")
    with pytest.raises(ConfigError) as info:
        load_site(str(inv), environ={})
    text = str(info.value)
    assert text.splitlines() == [
        "secrets.env:2: expected NAME=VALUE (no '=' on this line)",
        "secrets.env:3: the name before '=' must be letters, digits and _ and not start with a "
        "digit",
        "secrets.env:4: Q: the value's opening quote is never closed",
    ]
    assert "hunter2" not in text


def test_unreadable_spec_file_is_reported(tmp_path: Path, monkeypatch: pytest.MonkeyPatch
                                          ) -> None:
    if os.geteuid() == 0:
        # root reads anything; a directory named like a spec still cannot be read as one
        monkeypatch.chdir(tmp_path)
        inv = make_site(tmp_path, {"a.yml": SERVICE},
                        inventory=BASE_INVENTORY.replace("specs/*.yml", "specs"))
        with pytest.raises(ConfigError) as info:
            load_site(str(inv), environ={})
        assert [str(p) for p in info.value.problems] == [
            "site.yml:8: specs/0: 'specs' is a directory; name the spec files in it, such as "
            "'specs/*.yml'"]
        return
    monkeypatch.chdir(tmp_path)
    inv = make_site(tmp_path, {"a.yml": SERVICE})
    (tmp_path / "specs" / "a.yml").chmod(0)
    with pytest.raises(ConfigError) as info:
        load_site(str(inv), environ={})
    assert [str(p) for p in info.value.problems] == [
        "specs/a.yml: cannot read spec file: permission denied"]


def test_secret_from_environment_wins_and_is_never_shown(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    inv = make_site(tmp_path, {"a.yml": SERVICE + "secrets: [DB_PASSWORD]\n"},
                    inventory=BASE_INVENTORY.replace(
                        "{env_file: secrets.env}", "{env_file: secrets.env, env_prefix: HS_}"))
    site = load_site(str(inv), environ={"HS_DB_PASSWORD": "from-env"})
    secret = site.secrets.get("DB_PASSWORD")
    assert secret is not None and secret.reveal() == "from-env"
    assert "from-env" not in f"{secret} {secret!r} {site.secrets}"


def test_report_takes_one_name_or_a_list_and_keeps_their_order(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    inv = make_site(tmp_path, {"a.yml": JOB + "report: val_auc\n",
                               "b.yml": JOB.replace("etl", "etl-2") + "report: [z, a/b, _c]\n"})
    site = load_site(str(inv), environ={})
    assert {w.name: w.report for w in site.workloads} == {"etl": ("val_auc",),
                                                          "etl-2": ("z", "a/b", "_c")}


QUOTA_CASES = [
    pytest.param(
        "  shop: {gpus: 1}\n",
        {"a.yml": JOB.replace("app-1", "gpu-1") + "resources: {gpus: 2}\n"},
        ["site.yml:11: projects/shop/gpus: is 1 but job etl (specs/a.yml:6) asks for 2 GPU(s) "
         "per run: it could never start; raise the quota or lower its resources"],
        id="job-gpus-over-quota"),
    pytest.param(
        "  shop: {cpus: 4, memory: 8Gi}\n",
        {"a.yml": SERVICE + "resources: gpu_medium\n".replace("gpu_medium", "{cpus: 8, "
                                                              "memory: 16Gi}")},
        ["site.yml:11: projects/shop/cpus: is 4 but service api (specs/a.yml:10) asks for 8 "
         "CPU(s) per instance: it could never start; raise the quota or lower its resources",
         "site.yml:11: projects/shop/memory: is 8Gi but service api (specs/a.yml:10) asks for "
         "16Gi of memory per instance: it could never start; raise the quota or lower its "
         "resources"],
        id="service-profile-over-quota"),
    pytest.param(
        "  shop:\n    cpus: 0.5\n", {"a.yml": JOB + "resources: cpu_small\n"},
        ["site.yml:12: projects/shop/cpus: is 0.5 but job etl (specs/a.yml:6) asks for 1 "
         "CPU(s) per run: it could never start; raise the quota or lower its resources"],
        id="job-profile-over-quota"),
]


@pytest.mark.parametrize(("section", "specs", "expected"), QUOTA_CASES)
def test_quota_below_one_run_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                        section: str, specs: dict[str, str],
                                        expected: list[str]) -> None:
    monkeypatch.chdir(tmp_path)
    # gpu-1 has 4 GPUs here: a job asking 2 fits the host and not the quota
    inventory = BASE_INVENTORY.replace("gpus: 1}", "gpus: 4}") + "projects:\n" + section
    assert refusals(tmp_path, specs, inventory=inventory) == expected


def test_projects_section_is_typed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from hostctl.spec.sections.projects import ProjectQuota, ProjectsConfig

    monkeypatch.chdir(tmp_path)
    inv = make_site(tmp_path, {"a.yml": SERVICE, "b.yml": JOB.replace("shop", "lab")},
                    inventory=BASE_INVENTORY + "projects:\n  ledger_host: gpu-1\n"
                    "  shop: {gpus: 1, cpus: 2.5, memory: 32Gi, gpu_hours_per_month: 200,\n"
                    "         priority: high, owners: [alice, bob.k]}\n  lab:\n")
    site = load_site(str(inv), environ={})
    projects = site.inventory.projects
    assert isinstance(projects, ProjectsConfig)
    assert (projects.ledger_host, projects.projects) == ("gpu-1", {
        "lab": ProjectQuota(),
        "shop": ProjectQuota(gpus=1, cpus=2.5, memory=32 * 2**30, gpu_hours_per_month=200.0,
                             priority="high", owners=("alice", "bob.k"))})
    bare = load_site(str(make_site(tmp_path, {"a.yml": SERVICE})), environ={})
    assert bare.inventory.projects.projects == {} and bare.inventory.projects.ledger_host is None
