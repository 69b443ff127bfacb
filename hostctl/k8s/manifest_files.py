"""A rendering as text: YAML documents, the files `render -o DIR` writes, the report.

Secret values stay `hostctl.spec.secrets.Secret` objects in the manifests until `materialize`
turns them into values (for the API server) or into `<secret NAME>` (for files and people),
so nothing here reveals one unless asked to. Keys are sorted so the text is stable.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import yaml

from hostctl.k8s.render_context import ReportItem
from hostctl.spec.secrets import materialize

if TYPE_CHECKING:  # manifests imports this module; the type is only for annotations
    from hostctl.k8s.manifests import Rendering


def dump(doc: Mapping[str, Any], reveal: bool = False) -> str:
    """One manifest as YAML (keys sorted, so the text is stable)."""
    return yaml.safe_dump(materialize(dict(doc), reveal), sort_keys=True,
                          default_flow_style=False, width=1000, allow_unicode=False)


def dump_all(docs: Sequence[Mapping[str, Any]], reveal: bool = False) -> str:
    return "".join(f"---\n{dump(d, reveal)}" for d in docs)


def file_name(doc: Mapping[str, Any]) -> str:
    """Where `render -o DIR` writes it: NAMESPACE/kind-name.yaml (cluster-wide: _cluster/)."""
    meta = doc["metadata"]
    folder = meta.get("namespace") or "_cluster"
    return f"{folder}/{str(doc['kind']).lower()}-{meta['name']}.yaml"


def files(r: Rendering, reveal: bool = False, site: str = "") -> dict[str, str]:
    """Every manifest as a file, plus the report, as {relative path: text}."""
    out: dict[str, str] = {}
    for doc in r.manifests:
        header = f"# Rendered by hostctl for site {site}; hostctl k8s apply owns it.\n"
        if doc["kind"] == "Secret" and not reveal:
            header += ("# Values redacted: `hostctl k8s apply` sends the real ones; render "
                       "--with-secrets writes them here.\n")
        out[file_name(doc)] = header + dump(doc, reveal)
    out["hostctl-report.txt"] = report_text(r.report)
    return out


def report_text(report: Sequence[ReportItem]) -> str:
    if not report:
        return "Everything in the specs carried over to Kubernetes.\n"
    head = (f"{len(report)} setting(s) have no Kubernetes meaning or changed meaning; "
            "nothing else was dropped:\n")
    return head + "".join(f"  {item}\n" for item in report)


def content_hash(docs: Sequence[Mapping[str, Any]]) -> str:
    """A short hash of the rendered manifests without secret values (for summaries)."""
    return hashlib.sha256(dump_all(docs).encode()).hexdigest()[:12]
