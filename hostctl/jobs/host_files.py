"""The files the run queue needs on a host, as bytes: its helper script and the host's GPUs.
Deploy renders them as managed files and every jobs command writes the same bytes, so the
two never fight. Pure, and free of host I/O, so render can use it."""

from __future__ import annotations

import functools
import hashlib
import re
from dataclasses import dataclass
from importlib import resources

from hostctl.spec import model as m

GPU_MODES = ("nvidia", "env")
_MODEL = re.compile(r"[a-z0-9][a-z0-9.-]*")  # spec rules' GPU model names: no shell or sed


@functools.lru_cache(maxsize=1)
def helper_text() -> bytes:
    """The host-side helper, as shipped in the package."""
    return resources.files("hostctl.jobs").joinpath("hostctl-jobs.sh").read_bytes()


def helper_hash() -> str:
    return hashlib.sha256(helper_text()).hexdigest()


DEFAULT_KEEP_RUNS = 500


@dataclass(frozen=True)
class GpuConfig:
    """What the host's queue takes from the inventory: its GPUs (`mode` env hands device ids
    to the container in HOSTCTL_GPU_DEVICES instead of `--gpus`: test hosts without NVIDIA),
    the Docker it resolves run images with, and how many ended runs of each job it keeps."""

    count: int = 0
    mode: str = "nvidia"
    docker: str = "docker"
    keep_runs: int = DEFAULT_KEEP_RUNS
    # (device id, model) of each device when the inventory names models; () for a count.
    devices: tuple[tuple[int, str], ...] = ()


def gpu_conf_text(gpu: GpuConfig) -> bytes:
    """The host's GPUs as the inventory declares them, for the helper (which asks nvidia-smi
    instead in nvidia mode, when it is there). Deploy and every jobs command write it."""
    if gpu.mode not in GPU_MODES:
        raise ValueError(f"unknown GPU mode {gpu.mode!r}")
    # One line each, read by sed: the docker path is the inventory's (an absolute path
    # without newlines, spec rules), keep_runs a number.
    if "\n" in gpu.docker or gpu.keep_runs < 1:
        raise ValueError(f"cannot write docker={gpu.docker!r} keep_runs={gpu.keep_runs!r}")
    if any(not _MODEL.fullmatch(model) for _, model in gpu.devices):
        raise ValueError(f"cannot write GPU models {gpu.devices!r}")
    ids = [d for d, _ in gpu.devices] if gpu.devices else range(gpu.count)
    declared = " ".join(str(i) for i in ids)
    # Models only where the inventory names them: a host declared by count keeps its file.
    models = (f"models={' '.join(f'{d}:{model}' for d, model in gpu.devices)}\n"
              if gpu.devices else "")
    return (f"# Written by hostctl: this host's GPUs as its inventory declares them, its\n"
            f"# Docker, and how many ended runs of each job it keeps.\n"
            f"mode={gpu.mode}\ndeclared={declared}\n{models}docker={gpu.docker}\n"
            f"keep_runs={gpu.keep_runs}\n").encode()


def gpu_config(host: m.Host, keep_runs: int = DEFAULT_KEEP_RUNS) -> GpuConfig:
    """The host's GPUs as its inventory declares them (`gpu_mode: env` on test hosts without
    NVIDIA: device ids in HOSTCTL_GPU_DEVICES), its Docker, and the inventory's
    `jobs: {keep_runs}`."""
    named = any(model for _, model in host.gpu_devices)
    return GpuConfig(host.gpus, host.gpu_mode, host.docker, keep_runs,
                     host.gpu_devices if named else ())
