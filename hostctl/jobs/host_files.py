"""The files the run queue needs on a host, as bytes: its helper script and the host's GPUs.
Deploy renders them as managed files and every jobs command writes the same bytes, so the
two never fight. Pure, and free of host I/O, so render can use it."""

from __future__ import annotations

import functools
import hashlib
from dataclasses import dataclass
from importlib import resources

from hostctl.spec import model as m

GPU_MODES = ("nvidia", "env")


@functools.lru_cache(maxsize=1)
def helper_text() -> bytes:
    """The host-side helper, as shipped in the package."""
    return resources.files("hostctl.jobs").joinpath("hostctl-jobs.sh").read_bytes()


def helper_hash() -> str:
    return hashlib.sha256(helper_text()).hexdigest()


@dataclass(frozen=True)
class GpuConfig:
    """A host's GPUs as the inventory declares them; `mode` env hands device ids to the
    container in HOSTCTL_GPU_DEVICES instead of `--gpus` (test hosts without NVIDIA)."""

    count: int = 0
    mode: str = "nvidia"


def gpu_conf_text(gpu: GpuConfig) -> bytes:
    """The host's GPUs as the inventory declares them, for the helper (which asks nvidia-smi
    instead in nvidia mode, when it is there). Deploy and every jobs command write it."""
    if gpu.mode not in GPU_MODES:
        raise ValueError(f"unknown GPU mode {gpu.mode!r}")
    declared = " ".join(str(i) for i in range(gpu.count))
    return (f"# Written by hostctl: this host's GPUs as its inventory declares them.\n"
            f"mode={gpu.mode}\ndeclared={declared}\n").encode()


def gpu_config(host: m.Host) -> GpuConfig:
    """The host's GPUs as its inventory declares them (`gpu_mode: env` on test hosts without
    NVIDIA: device ids in HOSTCTL_GPU_DEVICES)."""
    return GpuConfig(host.gpus, host.gpu_mode)
