"""Images the tests against real servers (Kong, Logstash, Elasticsearch) run: named by an
environment variable as an image reference the local Docker engine has or a saved tarball,
or the test skips and says why."""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest


def image_from_env(env: str, unset: str, *, load_timeout: float = 600) -> str:
    """The image `env` names (a tarball is `docker load`ed first), or skip: with `unset` when
    the variable is not set, else with what is missing (docker client, engine, the image)."""
    value = os.environ.get(env)
    if not value:
        pytest.skip(unset)
    docker = shutil.which("docker")
    if docker is None:
        pytest.skip(f"{env} is set but there is no docker client here")
    if subprocess.run([docker, "info"], capture_output=True, timeout=30).returncode != 0:
        pytest.skip(f"{env} is set but no Docker engine answers here (start dockerd)")
    if os.path.isfile(value):
        loaded = subprocess.run([docker, "load", "-i", value], capture_output=True, text=True,
                                timeout=load_timeout)
        if loaded.returncode != 0:
            pytest.skip(f"{env}={value} could not be loaded: {loaded.stderr.strip()}")
        value = loaded.stdout.strip().rpartition("Loaded image: ")[2] or value
    if subprocess.run([docker, "image", "inspect", value], capture_output=True,
                      timeout=60).returncode != 0:
        pytest.skip(f"{env}={value} is not an image the local Docker engine has "
                    "(docker pull or docker load it first)")
    return value
