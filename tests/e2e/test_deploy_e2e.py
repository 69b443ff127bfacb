"""hostctl deploy end to end: real sshd, real systemd, real Docker in sandbox hosts.

The tests run in order against one site: first deploy, no-op, one change, a failing
change rolled back, removal, secrets, hostile arguments. Faults are in test_deploy_faults.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import docker
import pytest

from hostctl.runner.persist_client import keeper_call
from tests.rigs.deploy_rig import Site, example_site, wait_for

pytestmark = pytest.mark.sandbox
__all__ = ["example_site"]

SECRETS = ("example-not-a-real-password", "example-token-0000")


def test_a_platform_service_that_cannot_start_is_said_at_plan_time(example_site: Site) -> None:
    s = example_site
    res = s.hostctl("deploy", "-i", str(s.inventory), "--yes", "--fail-fast")
    assert res.returncode == 1, res.stdout + res.stderr
    assert "--fail-fast: nothing was changed, because: edge-1: platform service" in res.stderr
    assert ("edge-1: ERROR platform service gateway-kong cannot start: its image kong:3.9.1 "
            "is not on this machine (image_source push); load it here (docker load), or leave "
            "it out explicitly with --skip-platform gateway") in res.stdout
    for host in s.hosts:
        assert s.ssh(host, "ls /etc/systemd/system | grep -c hostctl- || true").strip() == "0"


def test_first_deploy_brings_every_host_to_healthy(example_site: Site) -> None:
    s = example_site
    res = s.deploy("--json")
    # at once, as a script would: the image's own HEALTHCHECK (every 10 s) has not run yet
    status = s.hostctl("status", "-i", str(s.inventory), "--json")
    docker_says = s.ssh("app-1", "docker ps --format '{{.Names}} {{.Status}}'")
    assert "gateway: skipped (--skip-platform gateway)" in res.stderr
    assert res.returncode == 0, res.stdout + res.stderr
    assert status.returncode == 0, status.stdout + status.stderr
    report = json.loads(status.stdout)
    assert report["ok"] is True, status.stdout
    rows = [r for h in report["hosts"].values() for r in h["rows"] if r["container"]]
    assert {r["health"] for r in rows} == {"healthy"} and len(rows) == 4, status.stdout
    assert "(health: starting)" in docker_says, docker_says  # else this proved nothing
    out = json.loads(res.stdout)
    assert {h: v["status"] for h, v in out["hosts"].items()} == {
        "edge-1": "deployed", "app-1": "deployed", "gpu-1": "deployed"}
    assert all(h["ok"] for v in out["hosts"].values() for h in v["health"])
    assert s.http("app-1", 18080, "/version") == (200, "1.0\n")
    assert s.http("app-1", 18081, "/health") == (200, "ok\n")
    assert s.http("edge-1", 18090, "/version") == (200, "1.0\n")
    units = s.ssh("app-1", "systemctl is-enabled hostctl-triage-api-1 hostctl-triage-api-2 "
                           "hostctl-triage-worker-1 hostctl-job-nightly-validation.timer")
    assert units.split() == ["enabled"] * 4
    assert s.ssh("gpu-1", "ls /etc/systemd/system/ | grep hostctl").split() == [
        "hostctl-job-train-triage@.service"]


def test_second_identical_deploy_changes_nothing(example_site: Site) -> None:
    s = example_site
    before = {h: s.active_since(h) for h in s.hosts}
    res = s.deploy("--json")
    assert res.returncode == 0, res.stdout + res.stderr
    out = json.loads(res.stdout)
    assert {h: v["status"] for h, v in out["hosts"].items()} == {
        "edge-1": "unchanged", "app-1": "unchanged", "gpu-1": "unchanged"}
    # facts (with the lock) and finish (audit, unlock): two round trips per host
    assert {h: v["round_trips"] for h, v in out["hosts"].items()} == {
        "edge-1": 2, "app-1": 2, "gpu-1": 2}
    assert {h: s.active_since(h) for h in s.hosts} == before
    plan = s.plan()
    assert plan.returncode == 0, plan.stdout + plan.stderr
    assert "no changes" in plan.stdout


def test_kept_connections_serve_consecutive_commands(example_site: Site,
                                                     persist_dir: Path) -> None:
    """With ssh.persist, a no-op deploy, a plan and a status in a row: the same results as
    connecting each time, and one connection per host for all three (the keeper's)."""
    import yaml

    from tests.rigs.keeper_rig import keeper_pid

    s = example_site
    data = yaml.safe_load(s.inventory.read_text())
    data["ssh"]["persist"] = "30s"
    kept = s.inventory.with_name("kept.yml")
    kept.write_text(yaml.safe_dump(data, sort_keys=False))
    res = s.hostctl("deploy", "-i", str(kept), "--yes", "--skip-platform", s.skip, "--json")
    assert res.returncode == 0, res.stdout + res.stderr
    out = json.loads(res.stdout)["hosts"]
    assert {h: (v["status"], v["round_trips"]) for h, v in out.items()} == {
        h: ("unchanged", 2) for h in ("edge-1", "app-1", "gpu-1")}
    plan = s.hostctl("plan", "-i", str(kept), "--skip-platform", s.skip)
    assert plan.returncode == 0 and "no changes" in plan.stdout, plan.stdout + plan.stderr
    direct = s.hostctl("status", "-i", str(s.inventory), "--json")
    through = s.hostctl("status", "-i", str(kept), "--json")
    assert through.returncode == direct.returncode == 0, through.stdout + through.stderr

    def rows(text: str) -> object:  # what status says of each service, but its age
        return {h: sorted((r["service"], r["state"], r["health"]) for r in v["rows"])
                for h, v in json.loads(text)["hosts"].items()}

    assert rows(through.stdout) == rows(direct.stdout)
    assert keeper_pid(persist_dir) is not None
    connections = keeper_call(persist_dir, {"op": "stats"})["connections"]  # type: ignore[index]
    assert sorted((c["host"], c["connects"], c["connected"]) for c in connections) == [
        ("app-1", 1, True), ("edge-1", 1, True), ("gpu-1", 1, True)]

def test_docker_says_the_same_through_its_api_and_its_commands(example_site: Site) -> None:
    """The facts and status scripts ask Docker's engine with curl on its socket (the
    standard client), through one `docker system dial-stdio` (another client), or, with a
    client without dial-stdio (here a wrapper refusing it, as a pre-18.09 client does),
    through the docker commands: what is read must be the same."""
    import base64

    from hostctl.hosts.facts import facts_script, parse_facts
    from hostctl.ops.status import parse_status, status_script

    s = example_site
    s.ssh("app-1", "printf '%s\\n' '#!/bin/sh' '[ \"$1 $2\" = \"system dial-stdio\" ] && "
          "{ echo \"unknown command\" >&2; exit 1; }' 'exec docker \"$@\"' >/tmp/old-docker "
          "&& chmod 755 /tmp/old-docker")

    def facts(docker: str) -> tuple[str, object]:
        script = base64.b64encode(facts_script(docker, runtimes=True).encode()).decode()
        out = s.ssh("app-1", f"echo {script} | base64 -d | sh -s")
        f = parse_facts("app-1", out)
        return out, (f.docker_ok, f.images, f.containers, f.networks, f.runtimes)

    def status(docker: str) -> tuple[str, object]:
        script = base64.b64encode(status_script(docker).encode()).decode()
        out = s.ssh("app-1", f"echo {script} | base64 -d | sh -s")
        st = parse_status("app-1", out)
        # Docker's status text ("Up 2 seconds") moves on between the two: its health part
        return out, (st.docker_ok, st.docker_detail, {
            n: (c.image, c.state, c.status.startswith("Up "), c.health, c.labels)
            for n, c in st.containers.items()})

    # Health moves from starting to healthy between reads of containers just started:
    # compared once every container's first check has passed.
    assert wait_for(lambda: "health: starting" not in s.ssh(
        "app-1", "docker ps --format '{{.Status}}'"), timeout=90, every=1)
    # The standard client's engine is asked with curl on its socket (a curl ahead on PATH
    # that notes being run on a socket: the host's health probe runs curl too, on its own
    # timer); any other client through dial-stdio, as configured.
    s.ssh("app-1", "printf '%s\\n' '#!/bin/sh' "
          "'case \"$*\" in *--unix-socket*) echo x >> /tmp/curl-ran;; esac' "
          "'exec /usr/bin/curl \"$@\"' >/usr/local/bin/curl && chmod 755 /usr/local/bin/curl "
          "&& printf '%s\\n' '#!/bin/sh' 'exec docker \"$@\"' >/tmp/new-docker "
          "&& chmod 755 /tmp/new-docker")
    try:
        for read in (facts, status):
            s.ssh("app-1", "rm -f /tmp/curl-ran")
            api_out, api = read("docker")
            assert s.ssh("app-1", "cat /tmp/curl-ran") == "x\n"
            dial_out, dial = read("/tmp/new-docker")
            cli_out, cli = read("/tmp/old-docker")
            assert s.ssh("app-1", "cat /tmp/curl-ran") == "x\n"  # not by the others
            assert "@@api\n" in api_out and "@@api\n" in dial_out
            assert "@@api\n" not in cli_out
            # a container's health may turn from starting to healthy between two reads
            assert dial in (api, read("docker")[1])
            assert cli in (api, read("docker")[1])
    finally:
        s.ssh("app-1", "rm -f /usr/local/bin/curl /tmp/curl-ran")
    assert len(api[2]) == 3  # type: ignore[index]
    assert facts("docker")[1][1] == {  # type: ignore[index]
        "hostctl-demo-app:1.0": s.ssh("app-1", "docker image inspect -f '{{.Id}}' "
                                               "hostctl-demo-app:1.0").strip()}



def test_facts_read_units_as_systemd_shows_them_and_the_plan_starts_them_again(
        example_site: Site) -> None:
    """The facts take units' states from one `systemctl list-units` and enablement from
    the .wants links: for units stopped, disabled and never loaded they must say what
    `systemctl show` says, and a deploy must start and enable them again."""
    import base64

    from hostctl.hosts.facts import facts_script, parse_facts
    from hostctl.hosts.unit_show import parse_units

    s = example_site
    script = base64.b64encode(facts_script("docker").encode()).decode()

    def read() -> tuple[dict[str, Any], dict[str, object], dict[str, object]]:
        facts = parse_facts("app-1", s.ssh("app-1", f"echo {script} | base64 -d | sh -s")).units
        shown = parse_units(s.ssh("app-1", "systemctl show --property=Id,LoadState,"
                                           "ActiveState,SubState,UnitFileState -- "
                                           + " ".join(sorted(facts))).split("\n"))
        return (facts, {n: (u.load, u.active, u.sub, u.file_state) for n, u in facts.items()},
                {n: (u.load, u.active, u.sub, u.file_state) for n, u in shown.items()})

    s.ssh("app-1", "systemctl disable --now hostctl-triage-worker-1.service >/dev/null 2>&1; "
                   "systemctl stop hostctl-triage-api-2.service")
    try:
        # The probe timer fires every 5 s, its sub-state moving from waiting to running and
        # back on its own: the two reads are compared once both fell between its firings.
        for _ in range(10):
            facts, said, truth = read()
            if said == truth:
                break
        assert said == truth
        assert (facts["hostctl-triage-worker-1.service"].active,
                facts["hostctl-triage-worker-1.service"].file_state) == ("inactive", "disabled")
        assert facts["hostctl-triage-api-2.service"].active == "inactive"
        assert facts["hostctl-triage-api-1.service"].active == "active"
        plan = s.plan("--json")
        app = json.loads(plan.stdout)["hosts"]["app-1"]
        assert sorted((u["unit"], u["action"], u["reason"]) for u in app["units"]) == [
            ("hostctl-triage-api-2.service", "start", "was inactive"),
            ("hostctl-triage-worker-1.service", "start", "was inactive")]
        assert app["enable"] == ["hostctl-triage-worker-1.service"]
        res = s.deploy("--json")
        assert res.returncode == 0, res.stdout + res.stderr
        assert s.ssh("app-1", "systemctl is-active hostctl-triage-api-2 "
                              "hostctl-triage-worker-1; systemctl is-enabled "
                              "hostctl-triage-worker-1").split() == [
            "active", "active", "enabled"]
        assert "no changes" in s.plan().stdout
    finally:  # what the tests after this one start from, whatever happened here
        s.ssh("app-1", "systemctl enable --now hostctl-triage-worker-1.service "
                       "hostctl-triage-api-2.service >/dev/null 2>&1; true")


def test_changing_one_service_restarts_that_one_alone(example_site: Site) -> None:
    s = example_site
    s.edit("specs/triage.yml", "args: [--queue, triage]", "args: [--queue, triage-v2]")
    before = s.active_since("app-1")
    plan = s.plan()
    assert plan.returncode == 1, plan.stdout + plan.stderr
    assert "restart hostctl-triage-worker-1.service (unit changed)" in plan.stdout
    assert "-ExecStart=" in plan.stdout and "--queue triage-v2" in plan.stdout
    res = s.deploy()
    assert res.returncode == 0, res.stdout + res.stderr
    after = s.active_since("app-1")
    changed = {u for u in after if after[u] != before.get(u)}
    assert changed == {"hostctl-triage-worker-1.service"}


def test_failing_health_is_rolled_back_and_the_old_version_still_answers(
        example_site: Site) -> None:
    s = example_site
    s.edit("specs/reports.yml", "image: hostctl-demo-app:1.0", "image: hostctl-demo-app:2.0")
    s.edit("specs/reports.yml", "  PORT: 8080", "  PORT: 8080\n  APP_HEALTHY: 0")
    res = s.deploy()
    assert res.returncode == 1, res.stdout + res.stderr
    assert re.search(r"edge-1\s+rolled-back\s+unhealthy after the change: "
                     r"hostctl-reports-web-1.service; rolled back to release \S+; "
                     r"the previous version is healthy", res.stdout), res.stdout
    assert "push hostctl-demo-app:2.0 (missing on host)" in res.stdout
    assert "demo-app 2.0" in res.stdout  # the failing service's last log lines are shown
    assert re.search(r"app-1\s+unchanged", res.stdout)
    assert s.http("edge-1", 18090, "/version") == (200, "1.0\n")
    audit = s.audit("edge-1")
    assert audit[-1]["result"] == "rolled-back"
    assert audit[-1]["failed"] == ["hostctl-reports-web-1.service"]
    # put it back the way it was for the next tests
    s.edit("specs/reports.yml", "image: hostctl-demo-app:2.0", "image: hostctl-demo-app:1.0")
    s.edit("specs/reports.yml", "  APP_HEALTHY: 0\n", "")


def test_a_good_new_version_is_pushed_and_served(example_site: Site) -> None:
    s = example_site
    s.edit("specs/reports.yml", "image: hostctl-demo-app:1.0", "image: hostctl-demo-app:2.0")
    res = s.deploy()
    assert res.returncode == 0, res.stdout + res.stderr
    # the failed attempt already brought the image: it is not sent twice
    assert "push hostctl-demo-app:2.0" not in res.stdout
    assert s.http("edge-1", 18090, "/version") == (200, "2.0\n")
    releases = s.hostctl("releases", "-i", str(s.inventory), "--hosts", "edge-1")
    assert releases.returncode == 0, releases.stdout + releases.stderr
    assert releases.stdout.count("edge-1") >= 2


def test_manual_rollback_returns_to_the_previous_release(example_site: Site) -> None:
    s = example_site
    res = s.hostctl("rollback", "-i", str(s.inventory), "--hosts", "edge-1", "--yes")
    assert res.returncode == 0, res.stdout + res.stderr
    assert s.http("edge-1", 18090, "/version") == (200, "1.0\n")
    # and the specs still say 2.0, so a deploy goes forward again
    res = s.deploy("--hosts", "edge-1")
    assert res.returncode == 0, res.stdout + res.stderr
    assert s.http("edge-1", 18090, "/version") == (200, "2.0\n")


def test_removing_a_service_removes_its_unit_and_container(example_site: Site) -> None:
    s = example_site
    text = (s.root / "specs/triage.yml").read_text()
    (s.root / "specs/triage.yml").write_text(text.split("\n---\n")[0] + "\n")
    res = s.deploy()
    assert res.returncode == 0, res.stdout + res.stderr
    assert "stop hostctl-triage-worker-1.service (left the specs)" in res.stdout
    units = s.ssh("app-1", "ls /etc/systemd/system")
    assert "hostctl-triage-worker-1.service" not in units
    assert "hostctl-triage-api-1.service" in units
    names = s.ssh("app-1", "docker ps -a --format '{{.Names}}'").split()
    assert "hostctl-triage-worker-1" not in names
    assert "hostctl-triage-api-1" in names


def test_secrets_stay_out_of_units_status_output_and_audit(example_site: Site) -> None:
    s = example_site
    env = s.ssh("app-1", "stat -c '%a %U' /etc/hostctl/env/triage-api.env; "
                         "cat /etc/hostctl/env/triage-api.env")
    assert env.splitlines()[0] == "600 root"
    assert f"TRIAGE_DB_PASSWORD={SECRETS[0]}" in env
    inside = s.ssh("app-1", "docker exec hostctl-triage-api-1 printenv TRIAGE_DB_PASSWORD")
    assert inside.strip() == SECRETS[0]
    leaks = s.ssh("app-1", "cat /etc/systemd/system/hostctl-* /var/lib/hostctl/audit.log; "
                           "journalctl -u 'hostctl-*' --no-pager; true")
    outputs = [s.deploy().stdout, s.plan().stdout,
               s.deploy("--json").stdout, leaks]
    for text in outputs:
        for secret in SECRETS:
            assert secret not in text


HOSTILE = ["%n %% %i", "$HOME ${USER} $$", "it's \"quoted\"", "back\\slash \\n",
           "two  spaces", "line1\nline2", "tab\tchar", ";", "\\;", "", "ünïcødé ✓"]


def test_hostile_arguments_reach_the_process_byte_for_byte(example_site: Site) -> None:
    s = example_site
    args = json.dumps(["--queue", *HOSTILE])
    spec = s.root / "specs/hostile.yml"
    spec.write_text(
        "kind: service\nname: hostile\nproject: triage\nimage: hostctl-demo-app:1.0\n"
        f"args: {args}\nenv: {{PORT: 8080}}\nports: {{http: 8080}}\n"
        "placement: {hosts: [app-1]}\n"
        "health: {http: {port: http, path: /health}, interval: 1s, timeout: 1s}\n")
    res = s.deploy()
    assert res.returncode == 0, res.stdout + res.stderr
    raw = s.ssh_bytes("app-1", "docker exec hostctl-hostile-1 cat /proc/1/cmdline")
    argv = raw.decode().split("\0")[:-1]
    assert argv == ["/bin/sh", "/entrypoint.sh", "--queue", *HOSTILE]
    verify = s.ssh("app-1", "systemd-analyze verify /etc/systemd/system/hostctl-hostile-1.service"
                            " 2>&1; echo rc=$?")
    assert verify.strip().endswith("rc=0")
    spec.unlink()
    assert wait_for(lambda: s.deploy().returncode == 0, timeout=60, every=1)


def _ip(s: Site, host: str, container: str, network: str) -> str:
    fmt = "{{(index .NetworkSettings.Networks \"" + network + "\").IPAddress}}"
    return s.ssh(host, f"docker inspect -f '{fmt}' {container}").strip()


def _reaches(s: Site, host: str, container: str, ip: str) -> bool:
    # busybox-static's wget crashes resolving even an IP; nc speaks the HTTP by hand
    request = "printf 'GET /health HTTP/1.0\\r\\n\\r\\n' | nc -w 2 " + ip + " 8080"
    out = s.ssh(host, f"docker exec {container} sh -c \"{request}\" 2>&1; true")
    return "200 OK" in out


def test_projects_are_isolated_unless_a_spec_reaches_across(example_site: Site) -> None:
    s = example_site
    common = ("image: hostctl-demo-app:1.0\nenv: {PORT: 8080}\nports: {http: 8080}\n"
              "placement: {hosts: [app-1]}\n"
              "health: {http: {port: http, path: /health}, interval: 1s, timeout: 1s}\n")
    (s.root / "specs/isolation.yml").write_text(
        "kind: service\nname: reports-db\nproject: reports\n" + common + "---\n"
        "kind: service\nname: triage-bridge\nproject: triage\nreach: [reports]\n" + common)
    res = s.deploy()
    assert res.returncode == 0, res.stdout + res.stderr
    reports_ip = _ip(s, "app-1", "hostctl-reports-db-1", "hostctl-reports")
    triage_ip = _ip(s, "app-1", "hostctl-triage-api-1", "hostctl-triage")
    assert reports_ip and triage_ip
    # the same project meets; another project does not, unless the spec says `reach`
    assert _reaches(s, "app-1", "hostctl-triage-bridge-1", triage_ip)
    assert not _reaches(s, "app-1", "hostctl-triage-api-1", reports_ip)
    assert _reaches(s, "app-1", "hostctl-triage-bridge-1", reports_ip)
    # created, connected, then started attached: its output is its unit's journal too
    journal = s.ssh("app-1", "journalctl -o cat --no-pager -u hostctl-triage-bridge-1")
    assert "listening on :8080" in journal, journal
    (s.root / "specs/isolation.yml").unlink()
    assert s.deploy().returncode == 0


def test_a_pushed_image_arrives_under_the_reference_its_units_run(
        example_site: Site, sandbox_engine: docker.DockerClient) -> None:
    """An image with two tags, pushed by the one that does not sort first (Docker SDK's
    Image.save(named=True) would ship that first one): to app-1, which lacks the image, and to
    edge-1, which has the same image id under the other tag (2.0, pushed earlier)."""
    s = example_site
    assert sandbox_engine.images.get("hostctl-demo-app:2.0").tag("hostctl-demo-app", "3.0")
    try:
        assert sandbox_engine.images.get("hostctl-demo-app:3.0").tags[0] != \
            "hostctl-demo-app:3.0"
        s.edit("specs/reports.yml", "image: hostctl-demo-app:2.0", "image: hostctl-demo-app:3.0")
        s.edit("specs/triage.yml", "image: hostctl-demo-app:1.0", "image: hostctl-demo-app:3.0")
        plan = s.plan()
        assert plan.returncode == 1, plan.stdout + plan.stderr
        assert re.search(r"^edge-1: .*\n  image  push hostctl-demo-app:3.0 \(on the host under "
                         r"another name only\)$", plan.stdout, re.M), plan.stdout
        assert re.search(r"^app-1: .*\n  image  push hostctl-demo-app:3.0 \(missing on host\)$",
                         plan.stdout, re.M), plan.stdout
        res = s.deploy()
        assert res.returncode == 0, res.stdout + res.stderr
        assert s.http("edge-1", 18090, "/version") == (200, "2.0\n")
        assert s.http("app-1", 18080, "/version") == (200, "2.0\n")
        tags = s.ssh("app-1", "docker image ls --format '{{.Tag}}' hostctl-demo-app").split()
        assert sorted(tags) == ["1.0", "3.0"]  # exactly the reference asked for
        again = s.plan()
        assert again.returncode == 0 and "image" not in again.stdout, again.stdout
    finally:
        sandbox_engine.images.remove("hostctl-demo-app:3.0")
    s.edit("specs/reports.yml", "image: hostctl-demo-app:3.0", "image: hostctl-demo-app:2.0")
    s.edit("specs/triage.yml", "image: hostctl-demo-app:3.0", "image: hostctl-demo-app:1.0")
    res = s.deploy()
    assert res.returncode == 0, res.stdout + res.stderr
