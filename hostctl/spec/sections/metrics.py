"""The inventory's `metrics:` section: its rules and typed form.

`logging/metrics.example.yml` documents every key and is validated by the tests. An empty or
absent section means "off": no exporter is deployed.

The schema imports `hostctl.spec.rules` on first use only, so the rules can use `METRICS`
for the inventory's key without an import cycle.
"""

from __future__ import annotations

import functools
import ipaddress
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from hostctl.errors import Source
from hostctl.spec import rules as s
from hostctl.spec.schema import (
    INVALID,
    Check,
    Context,
    Duration,
    Field,
    MapOf,
    Number,
    Record,
    Section,
    Str,
    TextRule,
    failed,
)
from hostctl.spec.sections.logging import section_source
from hostctl.spec.yamlsource import Path

if TYPE_CHECKING:
    from collections.abc import Iterable

    from hostctl.spec import model as m

DEFAULT_EXPORTER_PORT = 9477


# -- metrics ---------------------------------------------------------------------------------

@dataclass(frozen=True)
class ExporterSettings:
    port: int = DEFAULT_EXPORTER_PORT
    listen: str = "0.0.0.0"  # Prometheus scrapes the host's address
    sample_interval: float = 5.0  # how often containers are read (short jobs need it short)


@dataclass(frozen=True)
class Prices:
    """Prices per hour of one CPU and one GPU. Without them no cost series exist (not 0).

    A GPU of a model in `gpu_hour_by_model` costs that model's price; any other GPU (of
    another model, or a host that names no models) costs `gpu_hour`."""

    currency: str
    cpu_hour: float | None = None
    gpu_hour: float | None = None
    gpu_hour_by_model: dict[str, float] = field(default_factory=dict)

    def table(self) -> dict[str, Any]:
        """The prices as the exporter's configuration and `hostctl runs` carry them (the one
        builder of that mapping; hostctl.jobs.pricing reads it): the currency and only the
        prices that are set, `gpu_hour_by_model` only when a model is priced."""
        out: dict[str, Any] = {"currency": self.currency}
        out.update({k: v for k, v in (("cpu_hour", self.cpu_hour),
                                      ("gpu_hour", self.gpu_hour)) if v is not None})
        if self.gpu_hour_by_model:
            out["gpu_hour_by_model"] = dict(sorted(self.gpu_hour_by_model.items()))
        return out


def device_models(hosts: Iterable[m.Host]) -> dict[str, dict[str, str]]:
    """host -> device id (as run records and `docker inspect` write it) -> GPU model, for
    the hosts that name models: what GPU time is priced by (Prices.gpu_hour_by_model)."""
    return {h.name: {str(d): model for d, model in h.gpu_devices if model}
            for h in hosts if any(model for _, model in h.gpu_devices)}


@dataclass(frozen=True)
class PrometheusSettings:
    scrape_interval: float = 15.0
    scrape_timeout: float | None = None  # None: 10s, or the interval when that is shorter

    @property
    def timeout(self) -> float:
        return self.scrape_timeout if self.scrape_timeout is not None else min(
            10.0, self.scrape_interval)


@dataclass(frozen=True)
class MetricsConfig:
    exporter: ExporterSettings = field(default_factory=ExporterSettings)
    prices: Prices | None = None
    prometheus: PrometheusSettings = field(default_factory=PrometheusSettings)
    file: str = ""
    lines: dict[str, int] = field(default_factory=dict)

    def source(self, path: str) -> Source:
        return section_source(self.file, self.lines, path)


# -- the schemas -----------------------------------------------------------------------------

# The longest each duration may be (logging/metrics.example.yml says so). Prometheus takes
# longer ones, but a series scraped less often than its staleness (5m) has gaps between
# scrapes, and an exporter that samples less often than that misses whole jobs.
SAMPLE_INTERVAL_MAX = 300.0  # 5m
SCRAPE_MAX = 3600.0  # 1h


class ExporterListen(TextRule):
    """The address the exporter binds on every host: an IP address (the exporter binds it
    as given) that every host has: a wildcard or a loopback address."""

    expected = "an IP address"

    def problem(self, text: str) -> str | None:
        try:
            address = ipaddress.ip_address(text)
        except ValueError:
            return ("is not an IP address: give 0.0.0.0 (every IPv4 address), :: (every "
                    "address) or 127.0.0.1 (the host only)")
        if not (address.is_unspecified or address.is_loopback):
            return ("is one host's address, and the exporter binds this address on every "
                    "host, where the others have no such address: give 0.0.0.0 or :: (every "
                    "address), or 127.0.0.1 (the host only)")
        return None


class ScrapeDuration(Check[float]):
    """A Prometheus duration: at least 1s, at most SCRAPE_MAX, in whole milliseconds (the
    finest unit Prometheus's duration syntax has; render writes it as `15s` or `1500ms`)."""

    expected = "a duration"
    _duration = Duration(minimum=1, maximum=SCRAPE_MAX)

    def __call__(self, value: Any, path: Path, ctx: Context) -> float:
        seconds: float = self._duration(value, path, ctx)
        if failed(seconds):
            return INVALID
        if abs(seconds * 1000 - round(seconds * 1000)) > 1e-6:
            return ctx.error(path, f"{value} is not a whole number of milliseconds, the "
                                   "finest unit Prometheus takes: round it, e.g. 1500ms")
        return seconds


class _Price(Check[float]):
    """A price: a number, 0 or more. (schema.Number(minimum=...) fails on a value below
    the minimum: float(INVALID); see the report of issue 5.)"""

    expected = "a price"

    def __call__(self, value: Any, path: Path, ctx: Context) -> float:
        number = Number()(value, path, ctx)
        if number is INVALID:
            return INVALID
        if number < 0:
            return ctx.error(path, f"must be at least 0, got {value}")
        return number


class _ModelPrice(Check[float]):
    """A GPU model's price for an hour: a number above 0."""

    expected = "a price"

    def __call__(self, value: Any, path: Path, ctx: Context) -> float:
        number = Number()(value, path, ctx)
        if number is INVALID:
            return INVALID
        if number <= 0:
            return ctx.error(path, f"must be more than 0, got {value}: give the price of one "
                                   "GPU of this model for an hour, or leave the model out")
        return number


@functools.cache
def _metrics_section() -> Record[MetricsConfig]:
    price = _Price()
    return Record(MetricsConfig, {
        "exporter": Record(ExporterSettings, {
            "port": s.port_number,
            "listen": ExporterListen(),
            "sample_interval": Duration(minimum=1, maximum=SAMPLE_INTERVAL_MAX),
        }),
        "prices": Record(Prices, {
            "currency": Field(Str(r"[A-Z]{3}", "give an ISO 4217 code such as EUR or USD"),
                              required=True),
            "cpu_hour": price,
            "gpu_hour": price,
            "gpu_hour_by_model": MapOf(s.GPU_MODEL, _ModelPrice()),
        }),
        "prometheus": Record(PrometheusSettings, {
            "scrape_interval": ScrapeDuration(),
            "scrape_timeout": ScrapeDuration(),
        }),
    })


METRICS = Section(_metrics_section)
