"""Request building for apply, diff, rollout and prune, against a stand-in kube-apiserver on
127.0.0.1 (tests/rigs/k8s_apiserver_standin.py); kubeconfig reading. No cluster needed."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from hostctl.k8s.client import (
    ApiRequest,
    Cluster,
    ClusterError,
    RolloutFailed,
    apply_all,
    apply_request,
    delete_request,
    list_request,
    object_path,
    plan_changes,
    rollout_status,
    wait_rollouts,
)
from hostctl.k8s.kubeconfig import ClusterAuth, KubeconfigError, parse_kubeconfig
from hostctl.k8s.manifests import render_manifests
from hostctl.spec.secrets import Secret
from hostctl.spec.sections.k3s import K3sConfig
from hostctl.validate import load_site
from tests.rigs.k8s_apiserver_standin import StandIn, running

REPO = Path(__file__).resolve().parents[3]
DEPLOY = {"apiVersion": "apps/v1", "kind": "Deployment",
          "metadata": {"name": "api", "namespace": "shop", "labels": {"a": "b"}},
          "spec": {"replicas": 2}}


@pytest.fixture
def site(monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    monkeypatch.chdir(REPO)
    return load_site("inventories/site.yml")


@pytest.fixture
def api() -> Iterator[StandIn]:
    with running() as st:
        yield st


def cluster_for(st: StandIn, token: str | None = None, secrets: list[Secret] | None = None
                ) -> Cluster:
    auth = ClusterAuth(server=st.url, context="test",
                       token=Secret("t", token) if token else None)
    return Cluster(auth, timeout=5, secrets=secrets or [])


# -- requests as values ---------------------------------------------------------------------

def test_apply_request_is_server_side_apply_owned_by_hostctl() -> None:
    req = apply_request(DEPLOY)
    assert (req.method, req.path) == ("PATCH", "/apis/apps/v1/namespaces/shop/deployments/api")
    assert req.params == (("fieldManager", "hostctl"),)
    assert req.content_type == "application/apply-patch+yaml"
    assert json.loads(req.body or b"") == DEPLOY
    dry = apply_request(DEPLOY, dry_run=True, force=True)
    assert dry.url_path == ("/apis/apps/v1/namespaces/shop/deployments/api"
                            "?fieldManager=hostctl&force=true&dryRun=All")


@pytest.mark.parametrize(("doc", "path"), [
    ({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "shop"}},
     "/api/v1/namespaces/shop"),
    ({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s", "namespace": "shop"}},
     "/api/v1/namespaces/shop/secrets/s"),
    ({"apiVersion": "batch/v1", "kind": "CronJob", "metadata": {"name": "c", "namespace": "x"}},
     "/apis/batch/v1/namespaces/x/cronjobs/c"),
    ({"apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
      "metadata": {"name": "i", "namespace": "x"}},
     "/apis/networking.k8s.io/v1/namespaces/x/ingresses/i"),
    ({"apiVersion": "configuration.konghq.com/v1", "kind": "KongPlugin",
      "metadata": {"name": "p", "namespace": "x"}},
     "/apis/configuration.konghq.com/v1/namespaces/x/kongplugins/p"),
    ({"apiVersion": "traefik.io/v1alpha1", "kind": "Middleware",
      "metadata": {"name": "m", "namespace": "x"}},
     "/apis/traefik.io/v1alpha1/namespaces/x/middlewares/m"),
])
def test_object_paths(doc: dict[str, object], path: str) -> None:
    assert object_path(doc) == path


def test_delete_and_list_requests() -> None:
    req = delete_request(DEPLOY)
    assert (req.method, json.loads(req.body or b"")["propagationPolicy"]) == (
        "DELETE", "Background")
    lst = list_request("Deployment", {"io.hostctl/site": "example",
                                      "app.kubernetes.io/managed-by": "hostctl"})
    assert lst.url_path == ("/apis/apps/v1/deployments?labelSelector=app.kubernetes.io%2F"
                            "managed-by%3Dhostctl%2Cio.hostctl%2Fsite%3Dexample")


def test_request_text_never_shows_the_body() -> None:
    doc = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s", "namespace": "x"},
           "stringData": {"K": Secret("K", "hunter2")}}
    req = apply_request(doc)
    assert b"hunter2" in (req.body or b"")
    assert "hunter2" not in str(req) and "hunter2" not in repr(ApiRequest("GET", "/x"))


# -- against the stand-in -------------------------------------------------------------------

def test_apply_diff_and_rollout_of_the_worked_example(api: StandIn, site) -> None:  # type: ignore[no-untyped-def]
    docs = render_manifests(site, K3sConfig(ingress="kong")).manifests
    with cluster_for(api) as cluster:
        changes = plan_changes(cluster, docs)
        assert {c.action for c in changes} == {"create"}
        assert "PATCH" not in {r.method for r in api.requests}  # no dry run of a create
        lines: list[str] = []
        result = apply_all(cluster, docs, progress=lines.append)
        assert len(result.applied) == len(docs)
        # Namespaces first: everything else in them is refused before they exist.
        patched = api.paths("PATCH")
        assert patched[:2] == ["/api/v1/namespaces/reports", "/api/v1/namespaces/triage"]
        assert all(r.query["fieldManager"] == ["hostctl"] for r in api.requests
                   if r.method == "PATCH")
        wait_rollouts(cluster, docs, timeout=30, poll=0, progress=lines.append)
        assert "Deployment triage/triage-api: 2 of 2 available" in lines
        again = plan_changes(cluster, docs)
    assert {c.action for c in again} == {"unchanged"}
    dry = [r for r in api.requests if r.query.get("dryRun") == ["All"]]
    assert len(dry) == len(docs) - 0  # every existing object dry-run applied once
    stored = api.objects["/api/v1/namespaces/triage/secrets/triage-api-secrets"]
    assert base64.b64decode(stored["data"]["TRIAGE_DB_PASSWORD"]) == (
        b"example-not-a-real-password")  # values are sent on apply


def test_diff_shows_changes_with_secret_values_redacted(api: StandIn, site) -> None:  # type: ignore[no-untyped-def]
    docs = render_manifests(site).manifests
    with cluster_for(api, secrets=list(site.secrets.values.values())) as cluster:
        apply_all(cluster, docs)
        secret = next(d for d in docs if d["metadata"]["name"] == "triage-api-secrets")
        changed = dict(secret, stringData={"TRIAGE_DB_PASSWORD": Secret("X", "new-pass-99")})
        deploy = next(d for d in docs if d["kind"] == "Deployment")
        scaled = dict(deploy, spec=dict(deploy["spec"], replicas=5))
        changes = {c.name: c for c in plan_changes(cluster, [changed, scaled])}
    assert changes["triage-api-secrets"].action == "update"
    text = changes["triage-api-secrets"].diff
    assert "<redacted: changed>" in text and "new-pass" not in text
    assert "example-not-a-real" not in text
    assert "-  replicas: 1\n+  replicas: 5\n" in changes["reports-web"].diff


def test_refusals_carry_the_servers_message_and_the_object(api: StandIn) -> None:
    ns = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "shop"}}
    api.reject["/apis/apps/v1/namespaces/shop/deployments/api"] = (
        422, 'Deployment.apps "api" is invalid: spec.template.spec.containers[0].image: '
             "Required value")
    with cluster_for(api) as cluster, pytest.raises(ClusterError) as exc:
        apply_all(cluster, [ns, DEPLOY])
    assert str(exc.value) == ('Deployment shop/api: Deployment.apps "api" is invalid: '
                              "spec.template.spec.containers[0].image: Required value")
    assert exc.value.code == 422


def test_a_missing_namespace_is_the_servers_404(api: StandIn) -> None:
    with cluster_for(api) as cluster, pytest.raises(ClusterError, match='namespaces "shop" '
                                                                       'not found'):
        cluster.apply(DEPLOY)


def test_bearer_token_is_sent_and_a_wrong_one_is_refused(api: StandIn) -> None:
    api.token = "good-token"
    with cluster_for(api, token="good-token") as cluster:
        assert cluster.get(DEPLOY) is None
    assert api.requests[-1].authorization == "Bearer good-token"
    with cluster_for(api, token="bad") as cluster, pytest.raises(ClusterError,
                                                                  match="Unauthorized"):
        cluster.get(DEPLOY)


def test_unreachable_server_is_a_clear_error() -> None:
    auth = ClusterAuth(server="http://127.0.0.1:9", context="dead")
    with Cluster(auth, timeout=2) as cluster, pytest.raises(ClusterError,
                                                            match="cannot reach the cluster"):
        cluster.get(DEPLOY)


def test_rollout_wait_is_bounded_and_names_what_is_stuck(api: StandIn) -> None:
    ns = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "shop"}}
    api.stuck.add("api")
    now = [0.0]
    with cluster_for(api) as cluster:
        apply_all(cluster, [ns, DEPLOY])
        with pytest.raises(RolloutFailed) as exc:
            wait_rollouts(cluster, [DEPLOY], timeout=5, poll=1,
                          sleep=lambda s: now.__setitem__(0, now[0] + s),
                          clock=lambda: now[0])
    assert str(exc.value) == "not rolled out after 5s: Deployment shop/api (0 of 2 available)"


def test_progress_deadline_is_a_failure_at_once(api: StandIn) -> None:
    ns = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "shop"}}
    api.deadline.add("api")
    with cluster_for(api) as cluster:
        apply_all(cluster, [ns, DEPLOY])
        with pytest.raises(RolloutFailed, match="progress deadline exceeded"):
            wait_rollouts(cluster, [DEPLOY], timeout=60, poll=0)


@pytest.mark.parametrize(("status", "want"), [
    ({"observedGeneration": 1}, (False, "waiting for the controller to see the new spec")),
    ({"observedGeneration": 2, "updatedReplicas": 1, "replicas": 2},
     (False, "1 of 2 updated")),
    ({"observedGeneration": 2, "updatedReplicas": 2, "replicas": 3},
     (False, "1 old replica(s) terminating")),
    ({"observedGeneration": 2, "updatedReplicas": 2, "replicas": 2, "availableReplicas": 1},
     (False, "1 of 2 available")),
    ({"observedGeneration": 2, "updatedReplicas": 2, "replicas": 2, "availableReplicas": 2},
     (True, "2 of 2 available")),
])
def test_rollout_status_reads_a_deployment_like_kubectl(status: dict[str, int],
                                                        want: tuple[bool, str]) -> None:
    obj = {"kind": "Deployment", "metadata": {"name": "a", "generation": 2},
           "spec": {"replicas": 2}, "status": status}
    assert rollout_status(obj) == want


def test_changed_job_is_recreated_and_prune_removes_what_specs_dropped(
        api: StandIn, site) -> None:  # type: ignore[no-untyped-def]
    docs = render_manifests(site).manifests
    with cluster_for(api) as cluster:
        apply_all(cluster, docs)
        job = next(d for d in docs if d["kind"] == "Job")
        labels = dict(job["metadata"]["labels"], **{"io.hostctl/spec-hash": "000000000000"})
        newer = dict(job, metadata=dict(job["metadata"], labels=labels))
        rest = [d for d in docs if d["kind"] not in ("Job", "CronJob")] + [newer]
        changes = {(c.kind, c.name): c.action
                   for c in plan_changes(cluster, rest, prune_site="example")}
        assert changes[("Job", "train-triage")] == "replace"
        assert changes[("CronJob", "nightly-validation")] == "delete"
        result = apply_all(cluster, rest, prune_site="example")
    assert result.replaced == ["Job triage/train-triage"]
    assert result.deleted == ["CronJob triage/nightly-validation"]
    assert "/apis/batch/v1/namespaces/triage/cronjobs/nightly-validation" not in api.objects


# -- kubeconfig -----------------------------------------------------------------------------

K3S_KUBECONFIG = """\
apiVersion: v1
clusters:
- cluster:
    certificate-authority-data: {ca}
    server: https://127.0.0.1:6443
  name: default
contexts:
- context: {{cluster: default, user: default}}
  name: default
- context: {{cluster: default, user: robot, namespace: ops}}
  name: robot
current-context: default
kind: Config
users:
- name: default
  user:
    client-certificate-data: {cert}
    client-key-data: {key}
- name: robot
  user: {{token: robot-token}}
"""


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def test_k3s_kubeconfig_with_client_certificates(tmp_path: Path) -> None:
    text = K3S_KUBECONFIG.format(ca=_b64("CA PEM"), cert=_b64("CERT PEM"), key=_b64("KEY PEM"))
    auth = parse_kubeconfig(text, str(tmp_path / "k3s.yaml"))
    assert (auth.server, auth.context, auth.ca_pem, auth.client_cert_pem) == (
        "https://127.0.0.1:6443", "default", b"CA PEM", b"CERT PEM")
    assert auth.client_key is not None and auth.client_key.reveal() == "KEY PEM"
    assert "KEY PEM" not in repr(auth)
    with Cluster(auth) as cluster:
        verify, (cert, key) = cluster.session.verify, cluster.session.cert  # type: ignore[misc]
        assert Path(str(verify)).read_bytes() == b"CA PEM"
        assert Path(cert).read_bytes() == b"CERT PEM"
        assert Path(key).read_bytes() == b"KEY PEM"
        assert Path(key).stat().st_mode & 0o777 == 0o600
        folder = Path(key).parent
    assert not folder.exists()  # removed on close
    robot = parse_kubeconfig(text, "k3s.yaml", context="robot")
    assert robot.token is not None and robot.token.reveal() == "robot-token"
    assert robot.namespace == "ops"


@pytest.mark.parametrize(("text", "context", "message"), [
    ("current-context: x\ncontexts: []\n", None,
     "kubeconfig k.yaml has no context 'x' (known: none)"),
    ("contexts: []\n", None, "kubeconfig k.yaml has no current-context; set k3s/context"),
    (K3S_KUBECONFIG.format(ca="", cert="", key="").replace(
        "user: {token: robot-token}", "user: {exec: {command: aws}}"), "robot",
     "kubeconfig k.yaml: user 'robot' uses an exec credential plugin, which hostctl does "
     "not run; give it a token or a client certificate"),
    (K3S_KUBECONFIG.format(ca="not-base64!", cert="", key=""), None,
     "kubeconfig k.yaml: certificate-authority-data is not base64"),
])
def test_kubeconfig_errors(text: str, context: str | None, message: str) -> None:
    with pytest.raises(KubeconfigError) as exc:
        parse_kubeconfig(text, "k.yaml", context)
    assert str(exc.value) == message
