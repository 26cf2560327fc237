"""The malformed requests of issue 14 ("no request can brick the daemon"), as data.

`test_hostile_requests.py` sends each to one daemon and checks the answer;
`test_fault_campaign.py` replays them all, restarting the daemon after each. Each case says
what a correct server answers: a 4xx/5xx `Status` whose message names the field, or (for
`generateName`) a created object with a generated name. Before the fixes, these stored a pod
without a name (list 500, controllers stopped, next start crashed), stored `status: "garbage"`
(CLI, ReplicaSet controller and next start crashed), answered 500, 200 or hung.
"""

from __future__ import annotations

import http.client
import json
import re
import socket
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.integration.health import healthz_seconds
from tests.integration.manifests import documents, stateful_set, workload

PODS = "/api/v1/namespaces/default/pods"
RS = "/apis/apps/v1/namespaces/default/replicasets"
DEPLOY = "/apis/apps/v1/namespaces/default/deployments"
EVENTS = "/api/v1/namespaces/default/events"
GENERATED = re.compile(r"^g-[bcdfghjklmnpqrstvwxz2456789]{5}$")

# Objects every run starts with: a running pod (logs), a ReplicaSet (scale), a StatefulSet
# with a volumeClaimTemplate (its claim directory must survive everything below).
BASELINE = """
apiVersion: v1
kind: Pod
metadata: {name: quiet, labels: {app: quiet}}
spec:
  terminationGracePeriodSeconds: 1
  containers: [{name: c, command: [sh, -c, 'echo hello; exec sleep infinity']}]
---""" + documents(
    workload("ReplicaSet", "web"),
    stateful_set("db", "echo data > /data/file; exec sleep infinity"))


def _pod(meta: dict) -> dict:
    return {"apiVersion": "v1", "kind": "Pod", "metadata": meta,
            "spec": {"containers": [{"name": "c", "command": ["sleep", "infinity"]}]}}


def _json(value: Any) -> bytes:
    return json.dumps(value).encode()


@dataclass
class Case:
    id: str
    method: str
    path: str
    body: bytes | None = None
    code: int = 422  # the expected answer
    says: str = ""  # a text the Status message must contain (the field it names)
    content_type: str = "application/json"
    creates: bool = False  # a valid request: it creates a pod named like GENERATED
    headers: dict[str, str] = field(default_factory=dict)


CASES = [
    # metadata.name and generateName, on every write path
    Case("post-name-null-generate-name", "POST", PODS,
         _json(_pod({"name": None, "generateName": "g-"})), 201, creates=True),
    Case("post-generate-name-only", "POST", PODS, _json(_pod({"generateName": "g-"})), 201,
         creates=True),
    Case("post-empty-name-generate-name", "POST", PODS,
         _json(_pod({"name": "", "generateName": "g-"})), 201, creates=True),
    Case("post-empty-name", "POST", PODS, _json(_pod({"name": ""})), 422, "metadata.name"),
    Case("post-null-name", "POST", PODS, _json(_pod({"name": None})), 422, "metadata.name"),
    Case("post-bad-generate-name", "POST", PODS, _json(_pod({"generateName": "G/"})), 422,
         "metadata.generateName"),
    Case("apply-generate-name-only", "POST", PODS + "?apply=true",
         _json(_pod({"generateName": "g-"})), 422, "metadata.name"),
    Case("apply-empty-name", "POST", PODS + "?apply=true", _json(_pod({"name": ""})), 422,
         "metadata.name"),
    Case("put-empty-name", "PUT", PODS + "/quiet", _json(_pod({"name": ""})), 400,
         "metadata.name"),
    Case("patch-name-null", "PATCH", PODS + "/quiet", _json({"metadata": {"name": None}}), 400,
         "metadata.name", content_type="application/merge-patch+json"),
    Case("patch-status-name-null", "PATCH", PODS + "/quiet/status",
         _json({"metadata": {"name": None}, "status": {"phase": "Running"}}), 400,
         "metadata.name", content_type="application/merge-patch+json"),
    Case("put-status-empty-name", "PUT", PODS + "/quiet/status",
         _json({**_pod({"name": ""}), "status": {}}), 400, "metadata.name"),
    # status writes are validated like spec writes
    Case("patch-status-garbage", "PATCH", PODS + "/quiet/status",
         _json({"status": "garbage"}), 422, "status",
         content_type="application/merge-patch+json"),
    Case("patch-status-bad-phase", "PATCH", PODS + "/quiet/status",
         _json({"status": {"phase": "Exploded"}}), 422, "status.phase",
         content_type="application/merge-patch+json"),
    Case("patch-status-container-statuses-string", "PATCH", PODS + "/quiet/status",
         _json({"status": {"containerStatuses": "x"}}), 422, "status.containerStatuses",
         content_type="application/merge-patch+json"),
    Case("patch-rs-status-replicas-string", "PATCH", RS + "/web/status",
         _json({"status": {"replicas": "three"}}), 422, "status.replicas",
         content_type="application/merge-patch+json"),
    Case("put-rs-status-garbage", "PUT", RS + "/web/status",
         _json({"apiVersion": "apps/v1", "kind": "ReplicaSet", "metadata": {"name": "web"},
                "spec": {}, "status": ["garbage"]}), 422, "status"),
    Case("patch-status-unknown-field", "PATCH", PODS + "/quiet/status",
         _json({"status": {"bogus": 1}}), 422, "status.bogus",
         content_type="application/merge-patch+json"),
    # duplicate keys in a JSON body
    Case("post-duplicate-key", "POST", PODS,
         b'{"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "dup", "name": "other"},'
         b' "spec": {"containers": [{"name": "c", "command": ["sleep", "1"]}]}}', 400, "'name'"),
    Case("patch-duplicate-key", "PATCH", RS + "/web",
         b'{"spec": {"replicas": 1, "replicas": 0}}', 400, "'replicas'",
         content_type="application/merge-patch+json"),
    # events: an agent's kubelet posts them (validated as Kubernetes does); never changed after
    Case("post-event", "POST", EVENTS,
         _json({"apiVersion": "v1", "kind": "Event", "metadata": {"name": "e"}}), 422,
         "involvedObject: Required value"),
    Case("delete-event", "DELETE", EVENTS + "/e", None, 405),
    Case("put-event", "PUT", EVENTS + "/e", _json({}), 405),
    # scale subresource with odd bodies
    Case("patch-scale-spec-string", "PATCH", RS + "/web/scale", _json({"spec": "x"}), 422,
         "spec", content_type="application/merge-patch+json"),
    Case("patch-scale-list", "PATCH", RS + "/web/scale", _json([1]), 400,
         content_type="application/merge-patch+json"),
    Case("put-scale-string", "PUT", RS + "/web/scale", _json("x"), 400),
    Case("patch-scale-replicas-string", "PATCH", RS + "/web/scale",
         _json({"spec": {"replicas": "x"}}), 422, "spec.replicas",
         content_type="application/merge-patch+json"),
    # logs with a garbage tailLines
    Case("logs-tail-lines-garbage", "GET", PODS + "/quiet/log?tailLines=abc", None, 400,
         "tailLines"),
    Case("logs-tail-lines-negative", "GET", PODS + "/quiet/log?tailLines=-3", None, 400,
         "tailLines"),
    # a watch from the future
    Case("watch-too-large-resource-version", "GET",
         PODS + "?watch=true&resourceVersion=999999999", None, 504,
         "Too large resource version"),
]


class UnixHTTP(http.client.HTTPConnection):
    def __init__(self, path: str, timeout: float = 20) -> None:
        super().__init__("tinykube", timeout=timeout)
        self._path = path

    def connect(self) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(self.timeout)
        self.sock.connect(self._path)


def send(socket_path: str, case: Case, timeout: float = 20) -> tuple[int, Any, dict]:
    """(status, decoded body, headers) of `case`; a timeout is an AssertionError."""
    conn = UnixHTTP(socket_path, timeout)
    try:
        conn.request(case.method, case.path, body=case.body,
                     headers={"content-type": case.content_type, **case.headers})
        response = conn.getresponse()
        data = response.read()
        headers = {k.lower(): v for k, v in response.getheaders()}
    except TimeoutError:
        raise AssertionError(f"{case.id}: no answer within {timeout}s (hung)") from None
    finally:
        conn.close()
    try:
        return response.status, json.loads(data), headers
    except ValueError:
        return response.status, data, headers


def check_answer(case: Case, code: int, body: Any, headers: dict) -> None:
    assert code == case.code, f"{case.id}: answered {code} {body!r:.400}, expected {case.code}"
    if case.creates:
        assert GENERATED.match(body["metadata"]["name"]), body["metadata"]
        return
    assert isinstance(body, dict) and body.get("kind") == "Status", f"{case.id}: {body!r:.300}"
    assert case.says in body.get("message", ""), f"{case.id}: {body.get('message')!r}"
    if code == 504:
        assert headers.get("retry-after") == "1", headers


def healthz_ms(socket_path: str, samples: int = 3) -> float:
    """Milliseconds /healthz took to answer 200: the best of `samples` tries, so a shared,
    busy test machine's scheduling hiccup is not mistaken for a blocked event loop."""
    return min(healthz_seconds(Path(socket_path)) for _ in range(samples)) * 1000


def snapshot(socket_path: str) -> dict[tuple[str, str, str], dict]:
    """Every object's spec and metadata (without resourceVersion-like fields that the
    runtime's own status writes bump), by key."""
    found = {}
    for path in ("/api/v1/pods", "/api/v1/replicationcontrollers",
                 "/api/v1/persistentvolumeclaims", "/apis/apps/v1/replicasets",
                 "/apis/apps/v1/deployments", "/apis/apps/v1/statefulsets",
                 "/apis/apps/v1/controllerrevisions"):
        code, body, _ = send(socket_path, Case("list", "GET", path))
        assert code == 200, (path, body)
        for obj in body["items"]:
            meta = dict(obj["metadata"])
            meta.pop("resourceVersion", None)
            key = (obj["kind"], meta["namespace"], meta["name"])
            found[key] = {"metadata": meta, "spec": obj.get("spec"), "data": obj.get("data")}
    return found
