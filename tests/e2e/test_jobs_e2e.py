"""Job runs end to end on sandbox hosts (real sshd, systemd, Docker): the GPU queue, a
crashed holder's lease, timeouts, retries, shards over three hosts, a timer's runs, and
`run --wait`'s exit status.

gpu-1 declares one GPU and hands device ids out in HOSTCTL_GPU_DEVICES (the test-only GPU
mode: no NVIDIA here), so the whole lease and queue path runs. Every wait is bounded.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any

import pytest
import yaml

from tests.rigs.deploy_rig import Site, concurrently, example_site, job_spec, wait_for

pytestmark = pytest.mark.sandbox
__all__ = ["example_site"]

APP = {"placement": {"labels": {"role": "app"}}}
GPU = {"placement": {"labels": {"role": "gpu"}}}
SPECS = yaml.safe_dump_all([
    job_spec("gpu-sleep", 'echo "run $HOSTCTL_RUN_ID on GPU(s) $HOSTCTL_GPU_DEVICES"; '
             "sleep ${SLEEP:-3}", resources={"gpus": 1, "cpus": 0.1}, stop_timeout="2s",
             **GPU, timeout="2m"),
    job_spec("slow", "echo started; sleep 60", **APP, timeout="3s", stop_timeout="2s"),
    job_spec("flaky", 'echo "attempt of $HOSTCTL_RUN_ID"; exit 3', **APP, retries=1),
    job_spec("shard", 'echo "shard $HOSTCTL_SHARD_INDEX of $HOSTCTL_SHARD_COUNT"; sleep 1',
             resources={"cpus": 0.5}),
    # minutely: the shortest a Kubernetes CronJob can say too (validate insists)
    job_spec("tick", 'echo "tick $HOSTCTL_RUN_ID"', **APP, schedule="minutely"),
    job_spec("notes", 'cat /artifacts/notes 2>/dev/null; echo "left by $HOSTCTL_RUN_ID" >> '
             "/artifacts/notes", **APP),
    job_spec("talk", 'for i in 1 2 3; do echo "line $i of $HOSTCTL_RUN_ID"; sleep 2; done; '
             "exit 4", **APP),
    job_spec("picky", 'echo "shard $HOSTCTL_SHARD_INDEX as $HOSTCTL_RUN_ID with FAIL=$FAIL"; '
             "case $HOSTCTL_RUN_ID in *-r1) exit 0;; esac; "
             'case " $FAIL " in *" $HOSTCTL_SHARD_INDEX "*) exit 5;; esac'),
    job_spec("metered", "for i in 1 2 3; do printf "
             """'{"name": "loss", "value": 0.%s, "step": %s}\\n' $i $i """
             '>> "$HOSTCTL_METRICS"; done; echo not-json >> "$HOSTCTL_METRICS"', **APP),
    job_spec("huge", "echo never", resources={"cpus": 64}, **APP),
    {"kind": "service", "name": "infer", "project": "lab", "image": "hostctl-demo-app:1.0",
     "ports": {"http": {"container": 8080, "host": 18500}},
     "health": {"http": {"path": "/health", "port": "http"}, "interval": "1s", "timeout": "1s",
                "retries": 5},
     "resources": {"gpus": 1, "cpus": 0.1}, **GPU},
])
JOBS = ("gpu-sleep", "slow", "flaky", "shard", "tick", "notes", "talk", "picky", "metered")
HELPER = "/var/lib/hostctl/bin/hostctl-jobs"
GPU_CONF = "/var/lib/hostctl/gpu/host.conf"
CLEAN = """
systemctl disable --now hostctl.jobs.timer >/dev/null 2>&1
systemctl stop 'hostctl.retry-*' >/dev/null 2>&1
rm -f /etc/systemd/system/hostctl.jobs.*
systemctl daemon-reload
true
"""


@pytest.fixture(scope="module")
def site(example_site: Site) -> Iterator[Site]:
    example_site.deploy_jobs("jobs-test.yml", SPECS, JOBS)
    yield example_site
    # the queue's own units are not hostctl-* units: the reset leaves them
    for name in example_site.hosts:
        example_site.ssh(name, CLEAN)


def host_runs(s: Site, host: str, job: str) -> list[dict[str, str]]:
    """The records of `job`'s runs on the host, read over SSH (no hostctl command, which
    would install the queue helper itself)."""
    ids = s.ssh(host, f"grep -l -x {job} /var/lib/hostctl/runs/*/job 2>/dev/null | "
                      "xargs -r -n1 dirname | xargs -r -n1 basename; true").split()
    return [{"id": i, **s.run_record(host, i)} for i in ids]


def test_deploy_installs_the_queue_so_a_timer_runs_where_hostctl_run_never_did(
        site: Site) -> None:
    from hostctl.jobs import host_files as HF

    for name, conf in (("app-1", HF.GpuConfig(0, "nvidia", "/usr/bin/docker")),
                       ("gpu-1", HF.GpuConfig(1, "env", "/usr/bin/docker"))):
        out = site.ssh(name, f"stat -c %a {HELPER}; sha256sum < {HELPER}; cat {GPU_CONF}")
        mode, digest, rest = out.split("\n", 2)
        assert (mode, digest.split()[0]) == ("755", HF.helper_hash()), name
        assert rest.encode() == HF.gpu_conf_text(conf), name
    # Only the deploy has been there: the timer's run gets a record from the queue and runs
    # (the timer is minutely: a minute at most, plus the run).
    assert wait_for(lambda: any(r.get("state") == "succeeded" and r.get("by") == "timer"
                                for r in host_runs(site, "app-1", "tick")), timeout=100, every=2)
    # and the queue's own timer (reclaiming what dead runs held) came with the first run
    assert site.ssh("app-1", "systemctl is-active hostctl.jobs.timer; true").strip() == "active"


def test_a_deploy_after_a_run_finds_the_helper_as_the_run_left_it(site: Site) -> None:
    site.ssh("edge-1", f"rm -f {HELPER} {GPU_CONF}")  # as on a host no deploy wrote them to
    assert site.on("jobs").returncode == 0  # every jobs command installs them
    res = site.plan("--only", ",".join(JOBS))
    assert res.returncode == 0, res.stdout + res.stderr  # 0: nothing to change


def test_plan_and_deploy_report_a_gpu_host_without_the_nvidia_runtime(site: Site) -> None:
    data = yaml.safe_load(site.inventory.read_text())
    del data["hosts"]["gpu-1"]["gpu_mode"]  # real GPUs wanted; the sandbox has no NVIDIA
    nvidia = site.inventory.with_name("site-nvidia.yml")
    nvidia.write_text(yaml.safe_dump(data, sort_keys=False))
    want = ("gpu-1: ERROR the inventory declares 1 GPU(s) but Docker on the host has no "
            "nvidia runtime (install the NVIDIA Container Toolkit and restart Docker)")
    plan = site.hostctl("plan", "-i", str(nvidia), "--skip-platform", "gateway")
    assert plan.returncode == 2 and want in plan.stdout + plan.stderr, plan.stdout + plan.stderr
    assert "needed by gpu-sleep, infer, train-triage" in plan.stdout + plan.stderr
    deploy = site.hostctl("deploy", "-i", str(nvidia), "--yes", "--skip-platform", "gateway",
                          "--only", "gpu-sleep")
    assert deploy.returncode != 0 and want in deploy.stdout + deploy.stderr
    # the test-only setting is what lets the sandbox's gpu-1 through
    assert site.plan("--only", "gpu-sleep").returncode == 0


def test_second_gpu_run_queues_and_starts_when_the_first_ends(site: Site) -> None:
    first = site.run_json("gpu-sleep", "--set", "SLEEP=6")
    second = site.run_json("gpu-sleep", "--set", "SLEEP=1")
    assert (first["host"], first["state"]) == ("gpu-1", "starting") or first["state"] == "running"
    assert second["state"] == "queued", second
    listing = site.on("jobs")
    assert listing.returncode == 0, listing.stderr
    row = next((line for line in listing.stdout.splitlines()
                if line.startswith(second["run"])), listing.stdout)
    assert "queued (#1: waits for GPUs)" in row
    assert wait_for(lambda: site.run_record("gpu-1", first["run"]).get("state") == "succeeded",
                    timeout=40)
    assert wait_for(lambda: site.run_record("gpu-1", second["run"]).get("state") == "succeeded",
                    timeout=30)
    a, b = site.run_record("gpu-1", first["run"]), site.run_record("gpu-1", second["run"])
    assert a["gpus"] == b["gpus"] == "0"
    assert int(b["started"]) >= int(a["ended"])  # never both on the one GPU
    log = site.ssh("gpu-1", f"journalctl -u hostctl-job-gpu-sleep@{second['run']} -o cat")
    assert f"run {second['run']} on GPU(s) 0" in log
    assert site.ssh("gpu-1", "ls /var/lib/hostctl/gpu/lease").strip() == ""


FORGE = r"""cat > /tmp/forge-run.sh <<'EOF'
set -e
d=/var/lib/hostctl/runs/$1; mkdir -p $d
for kv in job=gpu-sleep unit=hostctl-job-gpu-sleep@$1.service need=1 cpus=100 attempts=1 \
  attempt=1 group=$1 seq=$2 state=$3 host=gpu-1 shard=0 shards=1; do
  echo "${kv#*=}" > $d/${kv%%=*}; done
date +%s%3N > $d/submitted
printf 'HOSTCTL_RUN_ID=%s\nSLEEP=1\n' $1 > $d/env
: > /var/lib/hostctl/runs/.active/$1
EOF"""


def test_a_crashed_holders_lease_is_reclaimed(site: Site) -> None:
    # What a host crash leaves behind: a run recorded as running, holding GPU 0, whose unit
    # is gone; behind it a queued run. Nothing ends to wake the queue: its timer must notice
    # the dead holder and hand the GPU on.
    assert site.on("jobs").returncode == 0  # the queue and its timer are installed
    site.ssh("gpu-1", FORGE)
    site.ssh("gpu-1", "sh /tmp/forge-run.sh deadbeef 0 running && cd /var/lib/hostctl && "
                      "date +%s%3N > runs/deadbeef/started && echo 0 > runs/deadbeef/gpus && "
                      "echo deadbeef > gpu/lease/0 && sh /tmp/forge-run.sh feedf00d 1 queued")
    assert wait_for(lambda: site.run_record("gpu-1", "feedf00d").get("state") == "succeeded",
                    timeout=60, every=1)
    dead = site.run_record("gpu-1", "deadbeef")
    assert dead["state"] == "failed" and dead["note"].startswith("lost:"), dead
    assert site.run_record("gpu-1", "feedf00d")["gpus"] == "0"


def test_a_run_past_its_timeout_is_stopped_and_marked(site: Site) -> None:
    res = site.on("run", "slow", "--wait")
    assert res.returncode == 124, res.stdout + res.stderr
    assert "timed-out" in res.stdout
    assert site.ssh("app-1", "docker ps -q --filter label=io.hostctl.workload=slow") == ""


def test_a_failing_run_is_retried_then_marked_failed_and_wait_returns_its_status(
        site: Site) -> None:
    started = time.monotonic()
    res = site.on("run", "flaky", "--wait")
    assert res.returncode == 3, res.stdout + res.stderr
    assert time.monotonic() - started >= 5  # the back-off before the second attempt
    run_id = res.stdout.split()[1]
    rec = site.run_record("app-1", run_id)
    assert (rec["state"], rec["attempt"], rec["exit"]) == ("failed", "2", "3"), rec
    log = site.ssh("app-1", f"journalctl -u hostctl-job-flaky@{run_id} -o cat")
    assert log.count(f"attempt of {run_id}") == 2


def test_twenty_shards_over_three_hosts(site: Site) -> None:
    res = site.on("run", "shard", "--shards", "20", timeout=240)
    assert res.returncode == 0, res.stdout + res.stderr
    lines = res.stdout.splitlines()
    group = lines[0].split()[1].rstrip(":")
    rows = [line.split() for line in lines if line.split()[0].isdigit()]
    assert [int(r[0]) for r in rows] == list(range(20))
    assert all(r[3] == "succeeded" and r[5] == "0" for r in rows), res.stdout
    assert {r[2] for r in rows} == {"edge-1", "app-1", "gpu-1"}
    assert lines[-1] == "20/20 shard(s) succeeded"
    for r in rows[:3] + rows[-2:]:
        out = site.ssh(r[2], f"journalctl -u hostctl-job-shard@{r[1]} -o cat")
        assert f"shard {r[0]} of 20" in out
    listed = site.on("jobs", "--group", group, "--json")
    assert len(json.loads(listed.stdout)["runs"]) == 20


def test_the_timer_queues_a_scheduled_run_with_its_own_record(site: Site) -> None:
    def schedule() -> list[dict[str, Any]]:
        listing = site.on("jobs", "--json")  # installs the queue helper the timer needs
        return [x for x in json.loads(listing.stdout)["schedules"] if x["job"] == "tick"]

    # While the timer's unit is starting (or has just fired), systemd shows no next time:
    # ask again then, and keep the answer that had one (the next ask may fall in a firing).
    seen: list[list[dict[str, Any]]] = []

    def has_next() -> bool:
        tick = schedule()
        if tick and tick[0].get("next_ms"):
            seen.append(tick)
        return bool(seen)

    assert wait_for(has_next, timeout=20, every=1)
    tick = seen[0]
    assert [x["host"] for x in tick] == ["app-1"]
    assert tick[0]["next_ms"] - time.time() * 1000 < 61_000

    def timer_runs() -> list[dict[str, Any]]:
        out = json.loads(site.on("jobs", "--json").stdout)["runs"]
        return [r for r in out if r["job"] == "tick" and r["state"] == "succeeded"]

    assert wait_for(lambda: len(timer_runs()) >= 1, timeout=100, every=2)
    run = timer_runs()[0]
    assert run["by"] == "timer" and run["host"] == "app-1"
    assert f"tick {run['run']}" in site.ssh(
        "app-1", f"journalctl -u hostctl-job-tick@{run['run']} -o cat")
    site.ssh("app-1", "systemctl stop hostctl-job-tick.timer")


def test_cancel_stops_a_running_run(site: Site) -> None:
    started = site.run_json("gpu-sleep", "--set", "SLEEP=60")
    assert wait_for(lambda: site.run_record("gpu-1", started["run"]).get("state") == "running",
                    timeout=20)
    res = site.on("cancel", started["run"])
    assert res.returncode == 0, res.stdout + res.stderr
    assert "cancelled" in res.stdout
    assert site.ssh("gpu-1", "ls /var/lib/hostctl/gpu/lease").strip() == ""


def test_concurrent_operators_never_share_the_gpu(site: Site) -> None:
    results = concurrently(3, lambda: site.run_json("gpu-sleep", "--set", "SLEEP=1"), 120)
    assert len(results) == 3
    ids = [r["run"] for r in results]
    assert wait_for(lambda: all(site.run_record("gpu-1", i).get("state") == "succeeded"
                                for i in ids), timeout=60, every=1)
    spans = sorted((int(site.run_record("gpu-1", i)["started"]),
                    int(site.run_record("gpu-1", i)["ended"])) for i in ids)
    assert all(spans[k][1] <= spans[k + 1][0] for k in range(len(spans) - 1)), spans


def test_every_run_of_a_project_sees_its_artifacts_volume(site: Site) -> None:
    first = site.on("run", "notes", "--wait")
    second = site.on("run", "notes", "--wait")
    assert first.returncode == second.returncode == 0, first.stdout + second.stdout
    a, b = first.stdout.split()[1], second.stdout.split()[1]
    log = site.ssh("app-1", f"journalctl -u hostctl-job-notes@{b} -o cat")
    assert f"left by {a}" in log
    labels = json.loads(site.ssh("app-1", "docker volume inspect hostctl-lab-artifacts "
                                          "--format '{{json .Labels}}'"))
    assert labels == {"io.hostctl.managed": "true", "io.hostctl.project": "lab"}
    mounts = site.ssh("app-1", "grep -h '^ExecStart=' "
                               "/etc/systemd/system/hostctl-job-*@.service")
    assert mounts.count("dst=/artifacts,") == mounts.count("ExecStart=") > 3


def test_run_follow_streams_the_output_and_returns_the_exit_status(site: Site) -> None:
    cmd = [sys.executable, "-m", "hostctl", "run", "-i", str(site.inventory), "talk",
           "--follow"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            cwd=site.root, env={**__import__("os").environ, "NO_COLOR": "1"})
    seen: list[tuple[float, str]] = []
    assert proc.stdout is not None
    for line in proc.stdout:
        seen.append((time.monotonic(), line.rstrip("\n")))
    assert proc.wait(timeout=120) == 4, proc.stderr.read() if proc.stderr else ""
    ended = time.monotonic()
    run_id = seen[0][1].split()[1]
    lines = [(t, text.split()[-3]) for t, text in seen
             if text.endswith(f" of {run_id}") and text.split()[-4] == "line"]
    assert [n for _, n in lines] == ["1", "2", "3"], seen
    assert ended - lines[0][0] > 2  # printed while the run went on, not at its end
    assert seen[-1][1].startswith(f"run {run_id} failed") and "(exit 4)" in seen[-1][1]


def test_retry_failed_reruns_only_the_failed_shards_with_their_index_and_values(
        site: Site) -> None:
    res = site.on("run", "picky", "--shards", "5", "--set", "FAIL=1 3", timeout=240)
    assert res.returncode == 1, res.stdout + res.stderr
    group = res.stdout.split()[1].rstrip(":")
    rows = {int(r[0]): r for r in (line.split() for line in res.stdout.splitlines())
            if r and r[0].isdigit()}
    assert {i: (r[3], r[5]) for i, r in rows.items()} == {
        0: ("succeeded", "0"), 1: ("failed", "5"), 2: ("succeeded", "0"), 3: ("failed", "5"),
        4: ("succeeded", "0")}, res.stdout
    assert f"hostctl run --retry-failed {group}" in res.stdout
    retry = site.on("run", "--retry-failed", group, timeout=240)
    assert retry.returncode == 0, retry.stdout + retry.stderr
    rows = {int(r[0]): r for r in (line.split() for line in retry.stdout.splitlines())
            if r and r[0].isdigit()}
    assert sorted(rows) == [0, 1, 2, 3, 4] and all(r[3] == "succeeded" for r in rows.values())
    assert {i: r[1] for i, r in rows.items() if i in (1, 3)} == {
        1: f"{group}-1-r1", 3: f"{group}-3-r1"}, retry.stdout
    assert rows[0][1] == f"{group}-0"  # a shard that succeeded is not run again
    for i in (1, 3):
        log = site.ssh(rows[i][2], f"journalctl -u hostctl-job-picky@{group}-{i}-r1 -o cat")
        assert f"shard {i} as {group}-{i}-r1 with FAIL=1 3" in log
    listed = json.loads(site.on("jobs", "--group", group, "--json").stdout)["runs"]
    assert len(listed) == 7
    again = site.on("run", "--retry-failed", group)
    assert (again.returncode, again.stdout.strip()) == (
        0, f"group {group}: no failed shard to run again")


LEASES = "grep -H '' /var/lib/hostctl/gpu/lease/* 2>/dev/null | sed 's|.*/||'; true"


def test_a_gpu_service_leases_its_gpu_and_jobs_wait_for_it(site: Site) -> None:
    res = site.deploy("--only", "infer")
    assert res.returncode == 0, res.stdout + res.stderr
    unit = "hostctl-infer-1.service"
    try:
        assert site.ssh("gpu-1", LEASES).strip() == f"0:svc:{unit}"
        env = site.ssh("gpu-1", "docker exec hostctl-infer-1 printenv HOSTCTL_GPU_DEVICES")
        assert env.strip() == "0"
        # a job queued behind sees the GPU as taken, and starts once the service stops
        queued = site.run_json("gpu-sleep", "--set", "SLEEP=1")
        assert queued["state"] == "queued", queued
        time.sleep(2)
        assert site.run_record("gpu-1", queued["run"])["state"] == "queued"
        site.ssh("gpu-1", f"systemctl stop {unit}")
        assert wait_for(lambda: site.run_record("gpu-1", queued["run"]).get("state")
                        == "succeeded", timeout=40)
        # a run holds the GPU: the service cannot start, and its journal says why
        holder = site.run_json("gpu-sleep", "--set", "SLEEP=60")
        assert wait_for(lambda: site.run_record("gpu-1", holder["run"]).get("state")
                        == "running", timeout=20)
        site.ssh("gpu-1", f"systemctl start --no-block {unit}")
        want = f"{unit} cannot start: it needs 1 GPU(s) and 0 of this host's 1 are free " \
               f"(held by 0={holder['run']})"
        assert wait_for(lambda: want in site.ssh("gpu-1", f"journalctl -u {unit} -o cat"),
                        timeout=20)
        # so a deploy that restarts it fails on that host and returns it to the release before
        # (whose start waits for the GPU as well: systemd keeps trying)
        site.edit("specs/jobs-test.yml", "name: infer\n", "name: infer\nenv: {V: '2'}\n")
        res = site.deploy("--only", "infer")
        assert res.returncode != 0, res.stdout + res.stderr
        assert "failed: gpu-1" in res.stdout and "rollback" in res.stderr, res.stdout + res.stderr
        assert want in res.stdout, res.stdout  # the summary says why, not only "see status"
        assert "V=" not in site.ssh("gpu-1", f"cat /etc/systemd/system/{unit}")
        # the run ends: the GPU went to the waiting service, which now starts
        assert site.on("cancel", holder["run"]).returncode == 0
        assert wait_for(lambda: site.ssh("gpu-1", LEASES).strip() == f"0:svc:{unit}"
                        and site.ssh("gpu-1", f"systemctl is-active {unit}; true").strip()
                        == "active", timeout=40)
        assert "V=2" not in site.ssh("gpu-1", "docker exec hostctl-infer-1 printenv")
        # a service that died without its stop path leaves a lease the queue reclaims
        site.ssh("gpu-1", f"systemctl stop {unit} && "
                          "echo svc:hostctl-gone-1.service > /var/lib/hostctl/gpu/lease/0")
        after = site.run_json("gpu-sleep", "--set", "SLEEP=1")
        assert wait_for(lambda: site.run_record("gpu-1", after["run"]).get("state")
                        == "succeeded", timeout=40)
    finally:
        site.ssh("gpu-1", f"systemctl disable --now {unit} >/dev/null 2>&1; true")


def test_a_run_records_its_metrics_and_runs_the_image_id_it_records(site: Site) -> None:
    started = site.ssh("app-1", "date +%s").strip()
    run = site.run_json("metered")["run"]
    assert wait_for(lambda: site.run_record("app-1", run).get("state") == "succeeded",
                    timeout=60, every=1)
    rec = site.run_record("app-1", run)
    assert rec["metrics"] == ('{"loss": {"last": 0.3, "min": 0.1, "max": 0.3, "n": 3, '
                              '"step": 3}}')
    assert (rec["metrics_points"], rec["metrics_invalid"], rec["metrics_dropped"]) == (
        "3", "1", "0")
    assert site.ssh("app-1", f"cat /var/lib/hostctl/runs/{run}/metrics.tsv") == (
        "loss\t1\t0.1\nloss\t2\t0.2\nloss\t3\t0.3\n")
    image_id = site.ssh("app-1", "docker image inspect --format '{{.Id}}' "
                                 "hostctl-demo-app:1.0").strip()
    assert image_id.startswith("sha256:") and rec["image_id"] == image_id
    assert rec["image"] == "hostctl-demo-app:1.0"  # from the unit, as hostctl sent none
    # Docker created the run's container from that id, not from the tag.
    created = site.ssh("app-1", f"docker events --since {started} --until \"$(date +%s)\" "
                                f"--filter container=hostctl-job-metered-{run} "
                                "--filter event=create --format '{{.From}}'").split()
    assert created == [image_id]
    # and the history has its record, as the listing reads it
    history = site.ssh("app-1", f"grep '^{run}/' /var/lib/hostctl/runs/.history")
    assert f"{run}/state:succeeded\n" in history and f"{run}/metrics_points:3\n" in history
    listing = site.on("jobs", "--all")
    assert listing.returncode == 0 and run in listing.stdout, listing.stdout + listing.stderr


def test_a_run_asking_more_cpus_than_any_eligible_host_has_is_refused_unqueued(
        site: Site) -> None:
    cpus, kib = site.ssh("app-1", "nproc; awk '/^MemTotal:/ { print $2 }' /proc/meminfo").split()
    gib = f"{int(kib) * 1024 / 2**30:.1f}".removesuffix(".0")
    res = site.on("run", "huge", "--wait")
    assert res.returncode == 1, res.stdout + res.stderr
    assert res.stderr == (f"error: huge asks 64 CPUs: no eligible host has that much (app-1 "
                          f"has {cpus} CPU{'' if cpus == '1' else 's'}, {gib} GiB, no GPUs: "
                          "too few CPUs)\n")
    assert host_runs(site, "app-1", "huge") == []


GHOST = "127.0.0.1:9/hostctl-ghost:1.0"  # a registry nobody answers on: the pull fails at once
GHOST_SPEC = f"""
kind: job
name: ghost
project: lab
image: {GHOST}
command: [sh, -c, 'echo never']
resources: {{cpus: 0.1}}
placement: {{labels: {{role: app}}}}
retries: 2
"""


def test_a_run_whose_image_docker_cannot_get_fails_once_despite_its_retries(
        site: Site) -> None:
    # Deployed with an image this machine has, which the host then loses. Its spec only
    # while this test runs: a deploy wants every image of the specs here.
    spec = site.root / "specs" / "jobs-ghost.yml"
    spec.write_text(GHOST_SPEC)
    try:
        subprocess.run(["docker", "tag", "hostctl-demo-app:1.0", GHOST], check=True)
        try:
            res = site.deploy("--only", "ghost")
        finally:
            subprocess.run(["docker", "rmi", GHOST], check=True, capture_output=True)
        assert res.returncode == 0, res.stdout + res.stderr
        site.ssh("app-1", f"docker rmi {GHOST} >/dev/null")
        res = site.on("run", "ghost", "--wait")
    finally:
        spec.unlink()
    assert res.returncode == 125, res.stdout + res.stderr
    run_id = res.stdout.split()[1]
    rec = site.run_record("app-1", run_id)
    assert (rec["state"], rec["attempt"], rec["attempts"], rec["exit"]) == (
        "failed", "1", "3", "125"), rec
    assert rec["note"].startswith("docker could not start it (exit 125): not retried"), rec
    assert rec["note"] in res.stdout
