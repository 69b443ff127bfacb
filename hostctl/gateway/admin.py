"""Kong's Admin API in DB-less mode, over `requests`: read status and config, send a config.

DB-less Kong takes its whole configuration in one `POST /config` (entity writes such as
`POST /services` are refused). hostctl sends the declarative text as `{"config": TEXT}`,
for which Kong's configuration hash is the MD5 of TEXT; so after a 201 the hash in
`GET /status` must equal `md5(TEXT)`, which proves the config that runs is the one sent.
With `check_hash=1` Kong answers 304 when that config already runs. A refused config (400,
with `flatten_errors=1`) leaves the running config untouched and is reported as problems
located in the specs through the provenance. 429 (a previous config still loading) is
retried after Retry-After, a bounded number of times.

The base URL is usually a local port forwarded through SSH to the gateway host's loopback
(`Runner.forward_port`); nothing here opens the Admin API to a network.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

import yaml

from hostctl.errors import ConfigError, HostctlError
from hostctl.gateway.declarative import Provenance

if TYPE_CHECKING:
    import requests

EMPTY_CONFIG_HASH = "0" * 32  # what Kong reports before any configuration is loaded
HASH_POLL = 0.25


class GatewayError(HostctlError):
    """Kong could not be asked, or answered something hostctl cannot accept."""


class GatewayBusy(GatewayError):
    """Kong kept answering 429 (still loading a previous configuration)."""


class ConfigRejected(ConfigError):
    """Kong refused the configuration (400); it keeps running the previous one."""


@dataclass(frozen=True)
class SyncResult:
    changed: bool  # False: Kong already ran exactly this configuration (304)
    configuration_hash: str
    attempts: int  # POSTs sent, retries after 429 included


@dataclass(frozen=True)
class TargetHealth:
    target: str
    weight: int
    health: str  # HEALTHY, UNHEALTHY, DNS_ERROR, HEALTHCHECKS_OFF


def config_hash(text: bytes) -> str:
    """The hash Kong reports for a configuration posted as text."""
    return hashlib.md5(text, usedforsecurity=False).hexdigest()


class KongAdmin:
    """One Kong node's Admin API. Every call is bounded by `timeout`; retries are bounded by
    `max_attempts` and `max_wait` (seconds slept in total)."""

    def __init__(self, base_url: str, *, timeout: float = 10.0, max_attempts: int = 5,
                 max_wait: float = 60.0, sleep: Callable[[float], None] = time.sleep,
                 session: requests.Session | None = None, hash_wait: float = 5.0):
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self.max_attempts = max_attempts
        self.max_wait = max_wait
        self.hash_wait = hash_wait
        self.sleep = sleep
        # imported here: only a run that talks to Kong needs requests (start-up)
        import requests

        self.session = session or requests.Session()

    # -- transport ------------------------------------------------------------------------

    def _request(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        import requests  # start-up: imported by __init__ already

        url = self.base_url + path
        try:
            return self.session.request(method, url, timeout=self.timeout, **kwargs)
        except requests.Timeout:
            raise GatewayError(f"Kong's Admin API at {self.base_url} did not answer {method} "
                               f"{path} within {self.timeout:g}s") from None
        except requests.RequestException as exc:
            raise GatewayError(f"cannot reach Kong's Admin API at {self.base_url} "
                               f"({type(exc).__name__}); is the gateway running and its "
                               "tunnel open?") from None

    def _json(self, response: requests.Response, what: str) -> Any:
        try:
            return response.json()
        except ValueError:
            raise GatewayError(f"Kong's answer to {what} is not JSON "
                               f"(HTTP {response.status_code})") from None

    def _unexpected(self, response: requests.Response, what: str) -> GatewayError:
        message = ""
        try:
            body = response.json()
            message = str(body.get("message", "")) if isinstance(body, dict) else ""
        except ValueError:
            pass
        return GatewayError(f"Kong answered {what} with HTTP {response.status_code}"
                            + (f": {message}" if message else ""))

    # -- reads ----------------------------------------------------------------------------

    def status(self) -> dict[str, Any]:
        """`GET /status`: connections, memory and `configuration_hash`."""
        response = self._request("GET", "/status")
        if response.status_code != 200:
            raise self._unexpected(response, "GET /status")
        body = self._json(response, "GET /status")
        if not isinstance(body, dict):
            raise GatewayError("Kong's GET /status answer is not an object")
        return body

    def configuration_hash(self) -> str:
        value = self.status().get("configuration_hash")
        if not isinstance(value, str):
            raise GatewayError("Kong's GET /status has no configuration_hash: is it DB-less?")
        return value

    def running_config(self) -> dict[str, Any] | None:
        """`GET /config`: the configuration Kong runs, as exported by Kong (flat lists, ids,
        every default filled in, credential values included: never print it as is). None
        when this Kong cannot export it."""
        response = self._request("GET", "/config")
        if response.status_code in (404, 405):
            return None
        if response.status_code != 200:
            raise self._unexpected(response, "GET /config")
        body = self._json(response, "GET /config")
        text = body.get("config") if isinstance(body, dict) else None
        if not isinstance(text, str):
            raise GatewayError("Kong's GET /config answer has no config text")
        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError:
            raise GatewayError("Kong's exported configuration is not valid YAML") from None
        return data if isinstance(data, dict) else {}

    def upstream_health(self, name: str) -> list[TargetHealth]:
        """`GET /upstreams/{name}/health`: each target's health as this Kong node sees it."""
        response = self._request("GET", f"/upstreams/{quote(name, safe='')}/health")
        if response.status_code == 404:
            raise GatewayError(f"Kong has no upstream '{name}': sync the gateway first")
        if response.status_code != 200:
            raise self._unexpected(response, f"GET /upstreams/{name}/health")
        body = self._json(response, "the upstream health query")
        return [TargetHealth(str(t.get("target")), int(t.get("weight", 0)),
                             str(t.get("health", "UNKNOWN")))
                for t in (body.get("data") or [] if isinstance(body, dict) else [])]

    # -- the one write ----------------------------------------------------------------------

    def sync(self, text: bytes, provenance: Provenance) -> SyncResult:
        """Make Kong run `text`, and prove it by the configuration hash."""
        expected = config_hash(text)
        payload = {"config": text.decode()}
        waited = 0.0
        for attempt in range(1, self.max_attempts + 1):
            response = self._request("POST", "/config", params={"check_hash": "1",
                                                                 "flatten_errors": "1"},
                                     json=payload)
            status = response.status_code
            if status == 201:
                return SyncResult(True, self._verify_hash(expected), attempt)
            if status == 304:
                return SyncResult(False, self._verify_hash(expected), attempt)
            if status == 400:
                raise self._rejected(response, provenance)
            if status == 429:
                delay = _retry_after(response.headers.get("Retry-After"))
                if attempt == self.max_attempts or waited + delay > self.max_wait:
                    break
                self.sleep(delay)
                waited += delay
                continue
            raise self._unexpected(response, "POST /config")
        raise GatewayBusy(f"Kong at {self.base_url} is still loading a previous configuration "
                          f"after {attempt} attempt(s) over {waited:g}s; try again later")

    def _verify_hash(self, expected: str) -> str:
        # Kong sets the hash while loading, before it answers; a few polls cover a node
        # whose status is read from another worker a moment later.
        for _ in range(max(1, round(self.hash_wait / HASH_POLL))):
            current = self.configuration_hash()
            if current == expected:
                break
            self.sleep(HASH_POLL)
        if current != expected:
            raise GatewayError(f"Kong accepted the configuration but reports hash {current}, "
                               f"not {expected}: another config was loaded meanwhile, or "
                               "this is not the node that was sent to; run the sync again")
        return current

    def _rejected(self, response: requests.Response, provenance: Provenance
                  ) -> ConfigRejected:
        body = self._json(response, "the refused POST /config")
        body = body if isinstance(body, dict) else {}
        flattened = body.get("flattened_errors")
        problems = provenance.problems(flattened, "Kong rejected") if isinstance(
            flattened, list) else []
        if not problems:
            fields = body.get("fields") or {}
            detail = body.get("message") or body.get("name") or "invalid configuration"
            if isinstance(fields, dict) and fields:
                detail += "; " + "; ".join(f"{k}: {v}" for k, v in sorted(fields.items()))
            problems = [provenance.root.problem(provenance.scrub(
                f"Kong rejected the configuration (its running config is unchanged): "
                f"{detail}"))]
        return ConfigRejected(problems)


def _retry_after(value: str | None) -> float:
    """Seconds to wait from a Retry-After header (Kong sends a number of seconds)."""
    try:
        return max(0.0, min(float(value or 1), 30.0))
    except ValueError:
        return 1.0


def ready(status_url: str, timeout: float = 5.0) -> bool:
    """Kong's `GET /status/ready` on its status listener: True once it can serve traffic."""
    import requests  # here: start-up speed

    try:
        response = requests.get(status_url.rstrip("/") + "/status/ready", timeout=timeout)
    except requests.RequestException:
        return False
    return response.status_code == 200
