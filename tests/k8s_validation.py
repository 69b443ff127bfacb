"""Offline schema validation with kubernetes-validate (--strict), shared by the k8s tests.

`kubernetes_validate.validate(doc, version, strict=True)` is what `kubernetes-validate
--strict -k VERSION` runs for each document. Its schema files are read once per run here
(the library reads them on every call), which makes generated-spec tests affordable.
Custom resources (KongPlugin, KongConsumer, Traefik's Middleware) have no schema in the
package: hostctl's own checks cover them, and `shape_problems` checks their few fields.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from typing import Any

import pytest


@functools.cache
def _utils() -> Any:
    """kubernetes_validate.utils with its schema reads cached; skips the calling test (only
    it) when the package is missing."""
    utils = pytest.importorskip(
        "kubernetes_validate.utils",
        reason="kubernetes-validate is not installed: add it to the test extra "
               "(pip install kubernetes-validate)")
    if not hasattr(utils.schema_contents, "cache_info"):
        utils.schema_contents = functools.lru_cache(maxsize=None)(utils.schema_contents)
    return utils


CUSTOM_KINDS = {"KongPlugin", "KongConsumer", "Middleware"}


def newest_versions(n: int = 3) -> list[str]:
    """The `n` newest Kubernetes versions the installed package ships schemas for."""
    versions = sorted(set(_utils().all_versions()), key=lambda v: tuple(int(x) for x in
                                                                     v.split(".")))
    return versions[-n:]


def strict_problems(docs: Sequence[Mapping[str, Any]], versions: Sequence[str]) -> list[str]:
    """Every schema violation, as 'Kind ns/name (vX): path: message'."""
    utils = _utils()
    out: list[str] = []
    for doc in docs:
        meta = doc.get("metadata", {})
        name = f"{doc.get('kind')} {meta.get('namespace', '')}/{meta.get('name')}"
        if doc.get("kind") in CUSTOM_KINDS:
            out += [f"{name}: {p}" for p in shape_problems(doc)]
            continue
        for version in versions:
            try:
                utils.validate(dict(doc), version, strict=True)
            except utils.ValidationError as exc:
                path = "/".join(str(p) for p in exc.path)
                out.append(f"{name} (v{version}): {path}: {exc.message}")
            except utils.SchemaNotFoundError as exc:
                out.append(f"{name} (v{version}): {exc.message}")
    return out


_CUSTOM_FIELDS = {
    "KongPlugin": ({"apiVersion", "kind", "metadata", "plugin", "config"}, {"plugin"}),
    "KongConsumer": ({"apiVersion", "kind", "metadata", "username", "credentials"},
                     {"username"}),
    "Middleware": ({"apiVersion", "kind", "metadata", "spec"}, {"spec"}),
}


def shape_problems(doc: Mapping[str, Any]) -> list[str]:
    allowed, required = _CUSTOM_FIELDS[str(doc["kind"])]
    out = [f"unknown field {k}" for k in doc if k not in allowed]
    out += [f"missing {k}" for k in required if k not in doc]
    if doc["kind"] == "Middleware" and len(doc.get("spec", {})) != 1:
        out.append("a Middleware has exactly one kind of middleware")
    return out
