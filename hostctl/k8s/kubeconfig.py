"""A kubeconfig, read into what hostctl needs to reach one cluster: server, CA, credentials.

Why not the `kubernetes` package: hostctl sends a handful of requests (apply, get, list,
delete) and needs them to be plain values it can test without a cluster; reading the
kubeconfig's YAML is the only part the package would have saved, and its exec/auth-provider
plugins are refused here on purpose with a message (k3s writes client certificates).
"""

from __future__ import annotations

import base64
import binascii
import os
from dataclasses import dataclass
from typing import Any

import yaml

from hostctl.errors import HostctlError
from hostctl.spec.secrets import Secret


class KubeconfigError(HostctlError):
    """The kubeconfig is missing, unreadable or names no usable context."""


@dataclass(frozen=True)
class ClusterAuth:
    """How to reach one cluster. Credentials stay `Secret`s (they print as names)."""

    server: str
    context: str
    ca_pem: bytes | None = None
    insecure: bool = False
    tls_server_name: str | None = None
    token: Secret | None = None
    client_cert_pem: bytes | None = None
    client_key: Secret | None = None  # PEM text
    username: str | None = None
    password: Secret | None = None
    namespace: str | None = None


def load_kubeconfig(path: str, context: str | None = None) -> ClusterAuth:
    try:
        with open(path, encoding="utf-8") as fh:
            text = fh.read()
    except FileNotFoundError:
        raise KubeconfigError(f"kubeconfig {path} not found; set k3s/kubeconfig in the "
                              "inventory (k3s writes /etc/rancher/k3s/k3s.yaml)") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise KubeconfigError(f"cannot read kubeconfig {path}: {exc}") from None
    return parse_kubeconfig(text, path, context)


def parse_kubeconfig(text: str, path: str, context: str | None = None) -> ClusterAuth:
    """The cluster and user of `context` (default: current-context), files resolved against
    the kubeconfig's folder."""
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise KubeconfigError(f"kubeconfig {path} is not YAML: {exc}") from None
    if not isinstance(data, dict):
        raise KubeconfigError(f"kubeconfig {path} is not a mapping")
    base = os.path.dirname(os.path.abspath(path))
    name = context or data.get("current-context")
    if not name:
        raise KubeconfigError(f"kubeconfig {path} has no current-context; set k3s/context")
    ctx = _named(data, "contexts", name, path, "context")
    cluster = _named(data, "clusters", ctx.get("cluster"), path, "cluster")
    user = _named(data, "users", ctx.get("user"), path, "user") if ctx.get("user") else {}
    for plugin in ("exec", "auth-provider"):
        if plugin in user:
            raise KubeconfigError(f"kubeconfig {path}: user '{ctx.get('user')}' uses an "
                                  f"{plugin} credential plugin, which hostctl does not run; "
                                  "give it a token or a client certificate")
    server = cluster.get("server")
    if not isinstance(server, str) or not server.startswith(("https://", "http://")):
        raise KubeconfigError(f"kubeconfig {path}: cluster '{ctx.get('cluster')}' has no "
                              "https:// server address")
    token = user.get("token")
    if token is None and user.get("tokenFile"):
        token = _read(base, user["tokenFile"], path).decode().strip()
    key = _pem(user, "client-key", base, path)
    password = user.get("password")
    return ClusterAuth(
        server=server.rstrip("/"),
        context=str(name),
        ca_pem=_pem(cluster, "certificate-authority", base, path),
        insecure=bool(cluster.get("insecure-skip-tls-verify", False)),
        tls_server_name=cluster.get("tls-server-name"),
        token=Secret("kubeconfig token", str(token)) if token else None,
        client_cert_pem=_pem(user, "client-certificate", base, path),
        client_key=Secret("kubeconfig client key", key.decode()) if key else None,
        username=user.get("username"),
        password=Secret("kubeconfig password", str(password)) if password else None,
        namespace=ctx.get("namespace"),
    )


def _named(data: dict[str, Any], section: str, name: Any, path: str, what: str
           ) -> dict[str, Any]:
    for item in data.get(section) or []:
        if isinstance(item, dict) and item.get("name") == name:
            body = item.get(what) or {}
            if not isinstance(body, dict):
                break
            return body
    known = [str(i.get("name")) for i in data.get(section) or [] if isinstance(i, dict)]
    raise KubeconfigError(f"kubeconfig {path} has no {what} '{name}' (known: "
                          f"{', '.join(known) or 'none'})")


def _pem(section: dict[str, Any], key: str, base: str, path: str) -> bytes | None:
    inline = section.get(f"{key}-data")
    if inline:
        try:
            return base64.b64decode(str(inline), validate=True)
        except (binascii.Error, ValueError):
            raise KubeconfigError(f"kubeconfig {path}: {key}-data is not base64") from None
    if section.get(key):
        return _read(base, str(section[key]), path)
    return None


def _read(base: str, name: str, path: str) -> bytes:
    full = os.path.join(base, os.path.expanduser(name))
    try:
        with open(full, "rb") as fh:
            return fh.read()
    except OSError as exc:
        raise KubeconfigError(f"kubeconfig {path} refers to {full}, which cannot be read: "
                              f"{exc.strerror or exc}") from None
