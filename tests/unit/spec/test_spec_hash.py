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
