"""Offline schema validation with kubernetes-validate (--strict), shared by the k8s tests.

`kubernetes_validate.validate(doc, version, strict=True)` is what `kubernetes-validate
--strict -k VERSION` runs for each document. Its schema files are read once per run here
(the library reads them on every call), which makes generated-spec tests affordable.
Custom resources have no schema in the package. KongPlugin and KongConsumer are validated
with jsonschema against Kong's own CRDs (tests/rigs/data/kong_crds/, ported from
Kong/kubernetes-ingress-controller; see each file's header), strictly as `kubectl apply
--validate=strict` would (unknown fields refused), with their CEL rules
(x-kubernetes-validations) written out below. Kueue's ResourceFlavor, WorkloadPriorityClass,
ClusterQueue and LocalQueue likewise against Kueue's CRDs (tests/rigs/data/kueue_crds/, from
kubernetes-sigs/kueue v0.14.8), with the CEL rules of every level and a few rules of Kueue's
ClusterQueue webhook that no schema carries (`kueue_webhook_problems`). Traefik's Middleware
keeps `shape_problems`.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest
import yaml


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


CUSTOM_KINDS = {"Middleware"}  # no ported CRD: shape_problems


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
        if doc.get("kind") in KONG_KINDS | KUEUE_KINDS:
            out += [f"{name}: {p}" for p in crd_problems(doc)]
            continue
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
    "Middleware": ({"apiVersion", "kind", "metadata", "spec"}, {"spec"}),
}


def shape_problems(doc: Mapping[str, Any]) -> list[str]:
    allowed, required = _CUSTOM_FIELDS[str(doc["kind"])]
    out = [f"unknown field {k}" for k in doc if k not in allowed]
    out += [f"missing {k}" for k in required if k not in doc]
    if doc["kind"] == "Middleware" and len(doc.get("spec", {})) != 1:
        out.append("a Middleware has exactly one kind of middleware")
    return out


# -- Kong's CRDs ----------------------------------------------------------------------------

KONG_CRDS = Path(__file__).parent / "data" / "kong_crds"
KONG_KINDS = {"KongPlugin", "KongConsumer", "KongIngress"}
KUEUE_CRDS = Path(__file__).parent / "data" / "kueue_crds"
KUEUE_KINDS = {"ResourceFlavor", "WorkloadPriorityClass", "ClusterQueue", "LocalQueue"}

# The CEL rules (x-kubernetes-validations) of those CRDs, as Python. A rule missing here
# fails the validation, so a newer CRD cannot slip a rule past the tests. Transition rules
# (oldSelf) apply to updates only; rendered objects are created.
_CEL: dict[str, Callable[[Mapping[str, Any]], bool] | None] = {
    "has(self.username) || has(self.custom_id)":
        lambda d: "username" in d or "custom_id" in d,
    "!(has(self.config) && has(self.configFrom))":
        lambda d: not ("config" in d and "configFrom" in d),
    "!(has(self.configFrom) && has(self.configPatches))":
        lambda d: not ("configFrom" in d and "configPatches" in d),
    "self.plugin == oldSelf.plugin": None,
    # Kueue v0.14.8; rules below the root apply where they stand (_cel_problems). Those on
    # ResourceFlavor tolerations are not ported: hostctl renders none, and an object that
    # had some would fail here as "not ported" rather than pass unchecked.
    "self.flavors.all(x, size(x.resources) == size(self.coveredResources))":
        lambda d: all(len(f.get("resources", [])) == len(d.get("coveredResources", []))
                      for f in d.get("flavors", [])),
    "!has(self.cohort) && has(self.resourceGroups) ? self.resourceGroups.all(rg, "
    "rg.flavors.all(f, f.resources.all(r, !has(r.borrowingLimit)))) : true":
        lambda d: "cohort" in d or all("borrowingLimit" not in r
                                       for rg in d.get("resourceGroups", [])
                                       for f in rg.get("flavors", [])
                                       for r in f.get("resources", [])),
    "!(self.reclaimWithinCohort == 'Never' && has(self.borrowWithinCohort) && "
    "self.borrowWithinCohort.policy != 'Never')":
        lambda d: not (d.get("reclaimWithinCohort") == "Never" and "borrowWithinCohort" in d
                       and d["borrowWithinCohort"].get("policy") != "Never"),
    "self == oldSelf": None,
    "!has(oldSelf.topologyName) || self == oldSelf": None,
    "!has(self.topologyName) || self.nodeLabels.size() >= 1":
        lambda d: "topologyName" not in d or len(d.get("nodeLabels", {})) >= 1,
}


@functools.cache
def crd_schemas() -> dict[tuple[str, str], dict[str, Any]]:
    """(apiVersion, kind) -> the version's openAPIV3Schema, from every ported CRD."""
    out: dict[tuple[str, str], dict[str, Any]] = {}
    for path in sorted([*KONG_CRDS.glob("*.yaml"), *KUEUE_CRDS.glob("*.yaml")]):
        crd = yaml.safe_load(path.read_text())
        spec = crd["spec"]
        for version in spec["versions"]:
            api = f"{spec['group']}/{version['name']}"
            out[(api, spec["names"]["kind"])] = version["schema"]["openAPIV3Schema"]
    return out


def strict_schema(schema: Any) -> Any:
    """The structural schema with unknown fields refused (what field validation Strict
    does), except where it keeps unknown fields (x-kubernetes-preserve-unknown-fields)."""
    if isinstance(schema, list):
        return [strict_schema(s) for s in schema]
    if not isinstance(schema, dict):
        return schema
    out = {k: strict_schema(v) for k, v in schema.items()
           if k not in ("properties", "x-kubernetes-validations")}
    if "properties" in schema:
        out["properties"] = {k: strict_schema(v) for k, v in schema["properties"].items()}
        if (not schema.get("x-kubernetes-preserve-unknown-fields")
                and "additionalProperties" not in schema):
            out["additionalProperties"] = False
    if schema.get("x-kubernetes-list-type") == "set":
        out["uniqueItems"] = True
    return out


def crd_problems(doc: Mapping[str, Any]) -> list[str]:
    """Violations of the object's CRD schema and CEL rules, as 'path: message'."""
    import jsonschema

    schema = crd_schemas().get((str(doc.get("apiVersion")), str(doc.get("kind"))))
    if schema is None:
        return [f"no ported CRD for {doc.get('apiVersion')} {doc.get('kind')}"]
    validator = jsonschema.Draft7Validator(strict_schema(schema))
    out = [f"{'/'.join(str(p) for p in e.absolute_path) or '.'}: {e.message}"
           for e in sorted(validator.iter_errors(doc), key=lambda e: list(e.absolute_path))]
    out += _cel_problems(schema, doc, ())
    if doc.get("kind") == "ClusterQueue":
        out += kueue_webhook_problems(doc)
    return out


def _cel_problems(schema: Any, value: Any, path: tuple[Any, ...]) -> list[str]:
    """The CEL rules (x-kubernetes-validations) of `schema` and of every schema below it
    that `value` has, as 'path: message'; a rule not ported is a problem where it applies."""
    if not isinstance(schema, dict):
        return []
    out: list[str] = []
    for rule in schema.get("x-kubernetes-validations", []):
        text = " ".join(str(rule["rule"]).split())
        if text not in _CEL:
            out.append(f"CEL rule not ported to tests/rigs/k8s_validation.py: {text}")
        elif (check := _CEL[text]) is not None and not check(value):
            out.append(f"{'/'.join(str(p) for p in path) or '.'}: {rule['message']}")
    if isinstance(value, dict):
        for key, sub in schema.get("properties", {}).items():
            if key in value:
                out += _cel_problems(sub, value[key], (*path, key))
    elif isinstance(value, list) and "items" in schema:
        for i, item in enumerate(value):
            out += _cel_problems(schema["items"], item, (*path, i))
    return out


def kueue_webhook_problems(cq: Mapping[str, Any]) -> list[str]:
    """Rules of Kueue's ClusterQueue webhook (pkg/webhooks/clusterqueue_webhook.go,
    validateResourceGroups and validateFlavorQuotas, v0.14.8) that its CRD does not carry:
    a resource covered by one group only, a flavor in one group only, each flavor's
    resources named as coveredResources in that order, no negative quota."""
    out: list[str] = []
    seen_resources: set[str] = set()
    seen_flavors: set[str] = set()
    for i, group in enumerate(cq.get("spec", {}).get("resourceGroups", [])):
        covered = list(group.get("coveredResources", []))
        for j, name in enumerate(covered):
            if name in seen_resources:
                out.append(f"spec/resourceGroups/{i}/coveredResources/{j}: Duplicate value: "
                           f"{name!r}")
            seen_resources.add(name)
        for j, flavor in enumerate(group.get("flavors", [])):
            where = f"spec/resourceGroups/{i}/flavors/{j}"
            for k, quota in enumerate(flavor.get("resources", [])[:len(covered)]):
                if quota.get("name") != covered[k]:
                    out.append(f"{where}/resources/{k}/name: must match the name in "
                               "coveredResources")
                if str(quota.get("nominalQuota", "")).lstrip().startswith("-"):
                    out.append(f"{where}/resources/{k}/nominalQuota: must be greater than or "
                               "equal to 0")
            if flavor.get("name") in seen_flavors:
                out.append(f"{where}/name: Duplicate value: {flavor.get('name')!r}")
            seen_flavors.add(flavor.get("name"))
    return out
