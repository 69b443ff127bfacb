"""The spec hash decides restarts: it moves with what shapes the container, and only that."""

from __future__ import annotations

from dataclasses import replace

from hostctl.spec import model as m
from hostctl.spec.hashing import spec_hash

BASE = m.Workload(kind="service", name="api", project="shop", image="x:1",
                  ports={"http": m.Port(8080, 18080)}, file="a.yml", line=3)


def test_container_settings_move_the_hash() -> None:
    for changed in (replace(BASE, image="x:2"), replace(BASE, env={"A": "1"}),
                    replace(BASE, args=("--v",)),
                    replace(BASE, ports={"http": m.Port(8080, 18081)}),
                    replace(BASE, resources=m.Resources(cpus=1.0))):
        assert spec_hash(changed) != spec_hash(BASE)


def test_origin_route_and_defaults_do_not() -> None:
    same = [
        replace(BASE, file="b.yml", line=9, source="x/b.yml", lines={"name": 2}),
        replace(BASE, route=m.Route(paths=("/api",), auth="key-auth")),
        replace(BASE, ports={"http": m.Port(8080, 18080, "tcp", None)}),  # defaults spelled out
        replace(BASE, restart="always", instances=1),
        # what the exporter publishes of a job's runs shapes no container
        replace(BASE, report=("val_auc", "loss")),
    ]
    for w in same:
        assert spec_hash(w) == spec_hash(BASE)


def test_hashes_stay_what_hosts_have() -> None:
    # Running containers carry these labels: a hash that moves restarts every service on
    # the next deploy, so how the hash is computed may change, its value may not.
    full = replace(BASE, command=("run",), args=("--v",), env={"A": "1"}, secrets=("S",),
                   volumes=(m.Volume("data", "/d"),),
                   resources=m.Resources(cpus=1.5, memory=256, gpus=1),
                   health=m.Health(http=m.HttpCheck(port="http", path="/h"), interval=5.0),
                   placement=m.Placement(hosts=("h1",), labels={"rack": "r1"}), instances=2,
                   restart="never", stop_timeout=3.0)
    assert (spec_hash(BASE), spec_hash(full)) == ("4eb0b6dc6fd1", "611ca1f65d3f")
    assert spec_hash(full) == spec_hash(replace(full, line=7))  # asked again, and on a copy
