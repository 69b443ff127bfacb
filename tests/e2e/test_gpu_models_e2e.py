"""GPU models and really-free GPUs end to end on sandbox hosts (real sshd, systemd, Docker):
gpu-1 declares an a100-80g and an l4 (`gpu_mode: env`: device ids in HOSTCTL_GPU_DEVICES),
and the stand-in nvidia-smi of tests/rigs, installed first on its PATH, reports a compute
process hostctl did not start on GPU 0. Every wait is bounded."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from tests.rigs.deploy_rig import Site, example_site, wait_for

pytestmark = pytest.mark.sandbox
__all__ = ["example_site"]

STANDIN = Path(__file__).parents[1] / "rigs" / "nvidia_smi_standin"
SMI_DIR = "/etc/hostctl-test/nvidia-smi"
UUIDS = ("GPU-6b9a4c2e-0000-4000-8000-000000000000", "GPU-1f0c7d3a-1111-4111-8111-111111111111")
JOB = """
kind: job
name: on-{name}
project: lab
image: hostctl-demo-app:1.0
command: [sh, -c, 'echo "run $HOSTCTL_RUN_ID on GPU(s) $HOSTCTL_GPU_DEVICES"; sleep 1']
resources: {{gpus: 1, cpus: 0.1, gpu_model: {model}}}
stop_timeout: 2s
placement: {{labels: {{role: gpu}}}}
timeout: 2m
"""
SPECS = "---".join(JOB.format(name=n, model=mdl) for n, mdl in (("a100", "a100-80g"),
                                                                ("l4", "l4")))
FOREIGN = f"{UUIDS[0]}, 4242, python, 10240 MiB\n"


@pytest.fixture(scope="module")
def site(example_site: Site) -> Iterator[Site]:
    s = example_site
    (s.root / "specs" / "gpu-models-test.yml").write_text(SPECS)
    data = yaml.safe_load(s.inventory.read_text())
    data["hosts"]["gpu-1"]["gpu_mode"] = "env"
    data["hosts"]["gpu-1"]["gpus"] = [{"model": "a100-80g", "count": 1},
                                      {"model": "l4", "count": 1}]
    s.inventory.write_text(yaml.safe_dump(data, sort_keys=False))
    gpus = "".join(f"{i}, {u}\n" for i, u in enumerate(UUIDS))
    s.ssh("gpu-1", f"mkdir -p {SMI_DIR} && printf '%s' '{gpus}' > {SMI_DIR}/gpus && "
                   f"printf '%s' '{FOREIGN}' > {SMI_DIR}/apps && "
                   f"cat > /usr/local/bin/nvidia-smi <<'EOF'\n{STANDIN.read_text()}EOF\n"
                   "chmod 755 /usr/local/bin/nvidia-smi")
    res = s.deploy("--only", "on-a100,on-l4")
    assert res.returncode == 0, res.stdout + res.stderr
    yield s
    s.ssh("gpu-1", "rm -rf /usr/local/bin/nvidia-smi /etc/hostctl-test; "
                   "systemctl disable --now hostctl.jobs.timer >/dev/null 2>&1; "
                   "rm -f /etc/systemd/system/hostctl.jobs.*; systemctl daemon-reload; true")


def test_a_foreign_process_keeps_its_gpu_out_and_models_are_placed_right(site: Site) -> None:
    # GPU 0, the a100, runs a process hostctl did not start: the a100 run waits ...
    a100 = site.run_json("on-a100")
    assert (a100["host"], a100["state"]) == ("gpu-1", "queued"), a100
    listing = site.on("jobs")
    assert listing.returncode == 0, listing.stderr
    assert ("gpu-1 GPU 0: busy with a process hostctl did not start (pid 4242 python, "
            "10240 MiB)") in listing.stdout.splitlines()
    status = site.on("status")
    assert ("  ! GPU 0: busy with a process hostctl did not start (pid 4242 python, 10240 MiB)"
            "; hostctl leases it to nothing until it ends") in status.stdout.splitlines()
    # ... while the l4 run takes GPU 1, the l4, at once.
    res = site.on("run", "on-l4", "--wait")
    assert res.returncode == 0, res.stdout + res.stderr
    l4 = [line for line in site.ssh("gpu-1", "grep -l -x on-l4 /var/lib/hostctl/runs/*/job "
                                             "| xargs -n1 dirname | xargs -n1 basename")
          .split()]
    assert [site.run_record("gpu-1", r)["gpus"] for r in l4] == ["1"]
    assert site.run_record("gpu-1", a100["run"])["state"] == "queued"
    # The foreign process ends: the queue's next pass (its timer, every 20 s) starts the
    # a100 run on GPU 0.
    site.ssh("gpu-1", f": > {SMI_DIR}/apps")
    assert wait_for(lambda: site.run_record("gpu-1", a100["run"]).get("state") == "succeeded",
                    timeout=60, every=2)
    assert site.run_record("gpu-1", a100["run"])["gpus"] == "0"
    log = site.ssh("gpu-1", f"journalctl -u hostctl-job-on-a100@{a100['run']} -o cat")
    assert f"run {a100['run']} on GPU(s) 0" in log
    assert site.ssh("gpu-1", "cat /var/lib/hostctl/gpu/foreign") == ""
