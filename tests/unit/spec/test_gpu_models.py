"""GPU models: a host's `gpus:` as a count or as devices with a model, and `gpu_model:` in
profiles and specs. Error text is an interface: tables of input -> exact messages."""

from __future__ import annotations

from pathlib import Path

import pytest

from hostctl.spec import model as m
from hostctl.spec.placement import gpu_models_needed, gpus_needed, schedule_host
from tests.rigs.site_factory import BASE_INVENTORY, JOB, made_site, refusals

GPU_LINE = "  gpu-1: {address: 10.0.0.2, labels: {role: gpu}, gpus: 1}\n"


def inventory(gpus: str, profiles: str = "") -> str:
    text = BASE_INVENTORY.replace(GPU_LINE, f"  gpu-1:\n    address: 10.0.0.2\n"
                                            f"    labels: {{role: gpu}}\n    gpus: {gpus}\n")
    assert text != BASE_INVENTORY
    return text.replace("profiles:\n", "profiles:\n" + profiles)


MIXED = "[{model: a100-80g, count: 2}, {model: l4, count: 1}]"
GPU_JOB = JOB.replace("app-1", "gpu-1")

HOST_CASES = [
    pytest.param("[{model: A100, count: 1}]",
                 ["site.yml:7: hosts/gpu-1/gpus/0/model: 'A100' is not valid: GPU model names "
                  "are lower-case letters, digits, '.' and '-', starting with a letter or "
                  "digit (e.g. a100-80g, l4)"], id="model-upper-case"),
    pytest.param("[{model: l4, count: 0}]",
                 ["site.yml:7: hosts/gpu-1/gpus/0/count: must be at least 1, got 0"],
                 id="count-zero"),
    pytest.param("[{model: l4, count: 1, devices: [0]}]",
                 ["site.yml:7: hosts/gpu-1/gpus/0: give either count: N or devices: [ids] "
                  "for l4, not both"], id="count-and-devices"),
    pytest.param("[{model: l4}]",
                 ["site.yml:7: hosts/gpu-1/gpus/0: give either count: N or devices: [ids] "
                  "for l4, not neither"], id="neither"),
    pytest.param("[{count: 2}]",
                 ["site.yml:7: hosts/gpu-1/gpus/0: missing required key 'model'"],
                 id="no-model"),
    pytest.param("[{model: l4, devices: [0, 1]}, {model: t4, devices: [1]}]",
                 ["site.yml:7: hosts/gpu-1/gpus/1/devices: device 1 is listed already "
                  "(gpus/0); give each device id once"], id="device-twice"),
    pytest.param("[{model: l4, devices: [0, 0]}]",
                 ["site.yml:7: hosts/gpu-1/gpus/0/devices: device 0 is listed already "
                  "(gpus/0); give each device id once"], id="device-twice-in-one"),
    pytest.param("[{model: l4, devices: ['0']}]",
                 ["site.yml:7: hosts/gpu-1/gpus/0/devices/0: expected a whole number, got "
                  "'0'"], id="device-not-int"),
    pytest.param("[{model: l4, devices: [0]}, {model: t4, count: 1}]",
                 ["site.yml:7: hosts/gpu-1/gpus: mixes entries with count and entries with "
                  "devices; give every model its devices: [ids], or every model a count "
                  "(devices are then numbered 0.. in order)"], id="mixed-forms"),
    pytest.param("[{model: l4, count: 40}, {model: t4, count: 40}]",
                 ["site.yml:7: hosts/gpu-1/gpus: declares 80 GPUs; at most 64"],
                 id="too-many"),
    pytest.param("[{model: l4, count: 1, color: red}]",
                 ["site.yml:7: hosts/gpu-1/gpus/0/color: unknown key 'color' (known: count, "
                  "devices, model)"], id="unknown-key"),
    pytest.param("{model: l4}",
                 ["site.yml:7: hosts/gpu-1/gpus: expected a whole number, got a mapping"],
                 id="mapping"),
]


@pytest.mark.parametrize(("gpus", "expected"), HOST_CASES)
def test_bad_host_gpus_give_exact_messages(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                           gpus: str, expected: list[str]) -> None:
    monkeypatch.chdir(tmp_path)
    assert refusals(tmp_path, {"a.yml": JOB}, inventory=inventory(gpus)) == expected


SPEC_CASES = [
    pytest.param(MIXED, GPU_JOB + "resources: {gpus: 1, gpu_model: h100}\n",
                 ["specs/a.yml:6: resources: needs 1 GPU(s) of model h100 but no eligible "
                  "host has that many (gpu-1 has 2 a100-80g, 1 l4); ask for a model these "
                  "hosts have, or place it on a host with that model (declare models under "
                  "the host's gpus: [{model: NAME, count: N}])"], id="model-nobody-has"),
    pytest.param(MIXED, GPU_JOB + "resources: {gpus: 2, gpu_model: l4}\n",
                 ["specs/a.yml:6: resources: needs 2 GPU(s) of model l4 but no eligible host "
                  "has that many (gpu-1 has 2 a100-80g, 1 l4); ask for a model these hosts "
                  "have, or place it on a host with that model (declare models under the "
                  "host's gpus: [{model: NAME, count: N}])"], id="too-few-of-model"),
    pytest.param("2", GPU_JOB + "resources: {gpus: 1, gpu_model: [l4, t4]}\n",
                 ["specs/a.yml:6: resources: needs 1 GPU(s) of model l4 or t4 but no eligible "
                  "host has that many (gpu-1 has 2 GPU(s) without a model); ask for a model "
                  "these hosts have, or place it on a host with that model (declare models "
                  "under the host's gpus: [{model: NAME, count: N}])"], id="count-host"),
    pytest.param(MIXED, GPU_JOB + "resources: {cpus: 1, gpu_model: l4}\n",
                 ["specs/a.yml:6: resources/gpu_model: asks for a GPU model but no GPUs; add "
                  "gpus: N (how many of them it needs) or remove gpu_model"],
                 id="model-without-gpus"),
    pytest.param(MIXED, GPU_JOB + "resources: {gpus: 1, gpu_model: L4}\n",
                 ["specs/a.yml:6: resources/gpu_model: 'L4' is not valid: GPU model names are "
                  "lower-case letters, digits, '.' and '-', starting with a letter or digit "
                  "(e.g. a100-80g, l4)"], id="bad-model-name"),
    pytest.param(MIXED, GPU_JOB + "resources: {gpus: 1, gpu_model: []}\n",
                 ["specs/a.yml:6: resources/gpu_model: needs at least 1 item(s)"],
                 id="empty-list"),
    pytest.param(MIXED, GPU_JOB.replace("kind: job", "kind: service")
                 .replace("placement: {hosts: [gpu-1]}", "placement: {labels: {}}")
                 + "resources: {gpus: 1, gpu_model: l4}\n",
                 ["specs/a.yml:6: resources: needs 1 GPU(s) of model l4 on every host it runs "
                  "on (app-1 has no GPUs); narrow placement to hosts with that model"],
                 id="service-everywhere"),
    pytest.param(MIXED, GPU_JOB.replace("kind: job", "kind: service")
                 + "resources: {gpus: 1, gpu_model: l4}\ninstances: 2\n",
                 ["specs/a.yml:6: resources: the GPU services on gpu-1 asking for model l4 need "
                  "2 GPU(s) together (etl 2x1) and it has 1 of that model: some instances "
                  "would never start; lower instances or narrow placement"],
                 id="service-instances-share-the-model"),
]


@pytest.mark.parametrize(("gpus", "spec", "expected"), SPEC_CASES)
def test_bad_gpu_model_gives_exact_messages(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                            gpus: str, spec: str, expected: list[str]) -> None:
    monkeypatch.chdir(tmp_path)
    assert refusals(tmp_path, {"a.yml": spec}, inventory=inventory(gpus)) == expected


def test_profile_gpu_model_without_gpus_is_refused(tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    inv = inventory(MIXED, profiles="  fast: {cpus: 1, gpu_model: a100-80g}\n")
    assert refusals(tmp_path, {"a.yml": JOB}, inventory=inv) == [
        "site.yml:9: profiles/fast/gpu_model: asks for a GPU model but no GPUs; add gpus: N "
        "(how many of them it needs) or remove gpu_model"]


def test_host_devices_and_profile_models_are_read(tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    inv = inventory(MIXED, profiles="  big: {gpus: 2, gpu_model: [a100-80g, h100]}\n")
    site = made_site(tmp_path, {"a.yml": GPU_JOB + "resources: big\n"}, inv, environ={})
    host = site.inventory.hosts["gpu-1"]
    assert host.gpus == 3
    assert host.gpu_devices == ((0, "a100-80g"), (1, "a100-80g"), (2, "l4"))
    w = site.workloads[0]
    assert (gpus_needed(w, site.inventory), gpu_models_needed(w, site.inventory)) == (
        2, ("a100-80g", "h100"))
    assert w.resources.gpu_models == ("a100-80g", "h100")
    assert schedule_host(w, site.inventory) == host


def test_device_ids_are_kept_and_a_count_numbers_devices() -> None:
    assert m.Host("h", "10.0.0.1", gpus=2).gpu_devices == ((0, ""), (1, ""))
    host = m.Host("h", "10.0.0.1", gpu_devices=((3, "l4"), (5, "l4"), (6, "t4")))
    assert (host.gpus, host.gpus_of(("l4",)), host.gpus_of(()), host.gpu_models()) == (
        3, 2, 3, {"l4": 2, "t4": 1})


def test_plain_count_host_is_unchanged(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    site = made_site(tmp_path, {"a.yml": JOB}, BASE_INVENTORY, environ={})
    assert site.inventory.hosts["gpu-1"] == m.Host(
        "gpu-1", "10.0.0.2", ssh=site.inventory.hosts["gpu-1"].ssh, labels={"role": "gpu"},
        gpus=1, line=site.inventory.hosts["gpu-1"].line)
