"""What usage costs at the inventory's prices: one rule for `hostctl runs` (jobs.history)
and the exporter on every host (which runs it from its bundle: standard library only).

The prices are the mapping `Prices.table()` builds (hostctl.spec.sections.metrics):
`{"currency", "cpu_hour"?, "gpu_hour"?, "gpu_hour_by_model"?: {model: price}}`. A GPU of a
priced model costs its model's price; any other GPU (of no model, or a model not listed)
costs `gpu_hour`, and nothing when that is not set either.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def gpu_hour(prices: Mapping[str, Any], model: str) -> float | None:
    """The price of one GPU of `model` ("": none) for an hour; None when it has none."""
    price = (prices.get("gpu_hour_by_model") or {}).get(model) if model else None
    if price is None:
        price = prices.get("gpu_hour")
    return None if price is None else float(price)


def cost(cpu_seconds: float, gpu_seconds: float | Mapping[str, float],
         prices: Mapping[str, Any] | None) -> float | None:
    """What the usage cost at `prices`, GPU seconds as a total (GPUs of no model) or by model
    (`{"": seconds of GPUs of no model, "l4": ...}`); None without prices."""
    if prices is None:
        return None
    by_model = gpu_seconds if isinstance(gpu_seconds, Mapping) else {"": gpu_seconds}
    total = 0.0
    cpu = prices.get("cpu_hour")
    if cpu is not None:
        total += cpu_seconds / 3600 * float(cpu)
    for model, seconds in by_model.items():
        price = gpu_hour(prices, model)
        if price is not None:
            total += seconds / 3600 * price
    return round(total, 6)
