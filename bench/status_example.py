"""`hostctl status` of the worked example on sandbox hosts: a site with a logging section,
so status also says whether logs are shipped (each container's log driver, Logstash's
counters). Deployed as scripts/try.sh deploys it: Kong and Logstash left out, their images
cannot be had here.

Run: python bench/status_example.py [--rounds R] [--against DIR] [--settle SECONDS]
(needs root and a Docker engine; boots the example's three hosts, taking turns with test
sessions through the rig's session lock, and removes them after). With `--against DIR`
(another checkout of hostctl) each round runs this tree and DIR alternately on the same
hosts; medians per checkout of wall time and controller CPU.
"""

from __future__ import annotations

import shutil
import sys
import time
from pathlib import Path

from bench.sandbox_session import arg, booted
from bench.speed_sandbox import HERE, compile_trees, measured, med
from hostctl.sandbox import app_image
from hostctl.sandbox.models import SandboxHostRequest
from hostctl.validate import load_site

EXAMPLE = HERE / "inventories"


def copy_example(root: Path) -> Path:
    shutil.copytree(EXAMPLE, root)
    return root / "site.yml"


def main() -> None:
    rounds = int(arg("--rounds", "7"))
    trees = {"this": HERE}
    if "--against" in sys.argv:
        trees["against"] = Path(arg("--against", "")).resolve()
    compile_trees(trees.values())
    site = load_site(str(EXAMPLE / "site.yml"))
    app_image.build("1.0")  # the example's one image, pushed by the deploy
    hosts = [SandboxHostRequest(h.name, dict(h.labels), h.gpus)
             for h in site.inventory.hosts.values()]
    with booted(hosts, copy_example) as rig:
        measured(HERE, "deploy", "-i", rig.inventory, "--yes",
                 "--skip-platform", "gateway,logging")
        time.sleep(float(arg("--settle", "10")))  # the new containers' own start-up
        walls: dict[str, list[float]] = {name: [] for name in trees}
        cpus: dict[str, list[float]] = {name: [] for name in trees}
        for r in range(rounds):
            order = list(trees) if r % 2 == 0 else list(trees)[::-1]
            for name in order:
                wall, cpu, _, _ = measured(trees[name], "status", "-i", rig.inventory)
                walls[name].append(wall)
                cpus[name].append(cpu)
        for name, tree in trees.items():
            print(f"{name} ({tree}):")
            print(f"  status wall {med(walls[name])}")
            print(f"  status controller CPU {med(cpus[name])}")


if __name__ == "__main__":
    main()
