"""Bad input against one running daemon: every malformed manifest or request is refused with a
clear error (or a clean disconnect), the daemon keeps serving and the store is unchanged.

Generated cases (hypothesis, derandomized, fixed example counts: 150 objects + 40 requests +
25 YAML documents) plus hand-written ones: deep nesting, huge bodies, and raw-socket abuse
(truncated request, disconnect mid-body, huge header, a slow partial request, garbage). After
every case the test checks `/healthz` and compares a fingerprint of the whole store (every
object's kind/namespace/name/resourceVersion and the global resourceVersion).
"""

from __future__ import annotations

import copy
import http.client
import ipaddress
import json
import os
import socket
import stat
import time
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.integration.daemon import Daemon, wait_for
from tests.integration.manifests import documents, workload

pytestmark = pytest.mark.root

LIST_PATHS = [
    "/api/v1/pods", "/api/v1/replicationcontrollers", "/api/v1/persistentvolumeclaims",
    "/apis/apps/v1/replicasets", "/apis/apps/v1/deployments", "/apis/apps/v1/statefulsets",
    "/apis/apps/v1/controllerrevisions",
]

# A settled baseline: controllers have written what they write for these and then rest.
BASELINE = documents(workload("Deployment", "base", object_labels=True),
                     workload("ReplicationController", "legacy"))


def _template(app: str) -> dict:
    return {"metadata": {"labels": {"app": app}},
            "spec": {"containers": [{"name": "c", "command": ["sleep", "infinity"]}]}}


VALID = {
    "pods": ("/api/v1/namespaces/default/pods",
             {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "fz"},
              "spec": _template("fz")["spec"]}),
    "replicasets": ("/apis/apps/v1/namespaces/default/replicasets",
                    {"apiVersion": "apps/v1", "kind": "ReplicaSet", "metadata": {"name": "fz"},
                     "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "fz"}},
                              "template": _template("fz")}}),
    "deployments": ("/apis/apps/v1/namespaces/default/deployments",
                    {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "base"},
                     "spec": {"replicas": 0, "selector": {"matchLabels": {"app": "base"}},
                              "template": _template("base")}}),
    "statefulsets": ("/apis/apps/v1/namespaces/default/statefulsets",
                     {"apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": {"name": "fz"},
                      "spec": {"replicas": 1, "serviceName": "fz",
                               "selector": {"matchLabels": {"app": "fz"}},
                               "template": _template("fz")}}),
    "replicationcontrollers": ("/api/v1/namespaces/default/replicationcontrollers",
                               {"apiVersion": "v1", "kind": "ReplicationController",
                                "metadata": {"name": "legacy"},
                                "spec": {"replicas": 0, "selector": {"app": "legacy"},
                                         "template": _template("legacy")}}),
}


# ---- the daemon and its checks ------------------------------------------------------------

@pytest.fixture(scope="module")
def daemon(tmp_path_factory):
    d = Daemon(tmp_path_factory.mktemp("bad-input")).start()
    try:
        d.apply(BASELINE)
        d.fingerprint = settled_fingerprint(d)
        yield d
    finally:
        d.cleanup()


def request(daemon: Daemon, method: str, path: str, body: bytes | None = None,
            headers: dict[str, str] | None = None) -> tuple[int, Any]:
    conn = _Unix(str(daemon.socket))
    try:
        conn.request(method, path, body=body,
                     headers={"content-type": "application/json", **(headers or {})})
        response = conn.getresponse()
        data = response.read()
    finally:
        conn.close()
    try:
        return response.status, json.loads(data)
    except ValueError:
        return response.status, data


class _Unix(http.client.HTTPConnection):
    def __init__(self, path: str) -> None:
        super().__init__("tinykube", timeout=20)
        self._path = path

    def connect(self) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(self.timeout)
        self.sock.connect(self._path)


def fingerprint(daemon: Daemon) -> tuple:
    objects, versions = [], []
    for path in LIST_PATHS:
        code, body = request(daemon, "GET", path)
        assert code == 200, (path, body)
        # The objects' versions, not the list's: that is the store's, which the node's Lease
        # heartbeat moves every 10 s.
        versions += [int(o["metadata"]["resourceVersion"]) for o in body["items"]]
        objects += [(body["kind"], o["metadata"]["namespace"], o["metadata"]["name"],
                     o["metadata"]["resourceVersion"]) for o in body["items"]]
    return max(versions, default=0), tuple(sorted(objects))


def settled_fingerprint(daemon: Daemon) -> tuple:
    """The fingerprint once two reads a second apart agree (controllers are done)."""
    last: list[tuple] = [fingerprint(daemon)]

    def settled() -> bool:
        time.sleep(1)
        now = fingerprint(daemon)
        same, last[0] = now == last[0], now
        return same
    wait_for(settled, timeout=30, what="the baseline to settle")
    return last[0]


def assert_unchanged(daemon: Daemon) -> None:
    code, body = request(daemon, "GET", "/healthz")
    assert (code, body) == (200, {"status": "ok"})
    assert fingerprint(daemon) == daemon.fingerprint, "a rejected request changed the store"


def assert_refused(code: int, body: Any, what: str) -> None:
    assert 400 <= code < 500, f"{what}: answered {code} {body!r:.300}"
    assert isinstance(body, dict) and body.get("kind") == "Status", f"{what}: {body!r:.300}"
    assert body.get("message"), f"{what}: a Status without a message"


# ---- generated invalid objects -----------------------------------------------------------

anything = st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=8),
                        lambda inner: st.lists(inner, max_size=3)
                        | st.dictionaries(st.text(max_size=5), inner, max_size=3),
                        max_leaves=6)
not_a_string = anything.filter(lambda v: not isinstance(v, str))
not_a_list = anything.filter(lambda v: not isinstance(v, list))
not_an_object = anything.filter(lambda v: not isinstance(v, dict))
bad_names = st.one_of(
    st.just("../etc"), st.just("a/../../b"), st.just(".."), st.just(""), st.just("a\x00b"),
    st.text(max_size=10).map(lambda s: s + "\x00"),
    st.text(max_size=10).map(lambda s: "../" + s),
    st.text(max_size=10).map(lambda s: "Upper" + s),
    st.text(max_size=10).map(lambda s: "under_score" + s),
    st.text(min_size=254, max_size=300, alphabet="abc"),
    not_a_string)
bad_counts = st.one_of(st.integers(max_value=-1), st.integers(min_value=2**31, max_value=2**80),
                       st.floats(allow_nan=False).filter(lambda f: f != int(f) if abs(f) < 1e300
                                                         else True),
                       st.booleans(), st.text(max_size=5), st.lists(st.integers(), max_size=2))
unknown_key = st.text(min_size=1, max_size=8).map(lambda s: "zz" + s)
bad_label_values = st.one_of(st.just("has space"), st.just("x" * 64), st.just("-lead"),
                             st.just("a/b"), st.integers(), st.none())


def _pod_spec(obj: dict) -> dict:
    return obj["spec"] if obj["kind"] == "Pod" else obj["spec"]["template"]["spec"]


def _set(path: list, value: Any) -> Any:
    def apply(obj: dict) -> None:
        target = obj
        for key in path[:-1]:
            target = target(obj) if callable(key) else target[key]
        target[path[-1]] = value
    return apply


@st.composite
def mutations(draw: st.DrawFn) -> tuple[str, Any]:
    """(description, mutate(obj)) where every mutation makes any base object invalid."""
    which = draw(st.sampled_from([
        "name", "namespace", "replicas", "unknown-top", "unknown-spec", "unknown-container",
        "spec-type", "labels-type", "label-value", "containers-type", "containers-empty",
        "container-name", "command-type", "limits", "port", "restart-policy", "grace",
        "selector", "selector-mismatch", "kind", "api-version", "metadata-type"]))
    if which == "name":
        value = draw(bad_names)
        return f"metadata.name={value!r:.60}", _set(["metadata", "name"], value)
    if which == "namespace":
        value = draw(bad_names)
        return f"metadata.namespace={value!r:.60}", _set(["metadata", "namespace"], value)
    if which == "replicas":
        value = draw(bad_counts)
        return f"spec.replicas={value!r:.60}", lambda o: (
            o["spec"].__setitem__("replicas", value) if o["kind"] != "Pod"
            else o["spec"].__setitem__("terminationGracePeriodSeconds", -1))
    if which == "unknown-top":
        key, value = draw(unknown_key), draw(anything)
        return f"{key}: unknown", _set([key], value)
    if which == "unknown-spec":
        key, value = draw(unknown_key), draw(anything)
        return f"spec.{key}: unknown", _set(["spec", key], value)
    if which == "unknown-container":
        key, value = draw(unknown_key), draw(anything)
        return f"container.{key}: unknown", lambda o: _pod_spec(o)["containers"][0].__setitem__(
            key, value)
    if which == "spec-type":
        value = draw(not_an_object)
        return f"spec={value!r:.60}", _set(["spec"], value)
    if which == "metadata-type":
        value = draw(not_an_object)
        return f"metadata={value!r:.60}", _set(["metadata"], value)
    if which == "labels-type":
        value = draw(not_an_object.filter(lambda v: v is not None))
        return f"labels={value!r:.60}", _set(["metadata", "labels"], value)
    if which == "label-value":
        value = draw(bad_label_values)
        return f"label value {value!r:.60}", _set(["metadata", "labels"], {"app": value})
    if which == "containers-type":
        value = draw(not_a_list.filter(lambda v: v is not None))
        return f"containers={value!r:.60}", lambda o: _pod_spec(o).__setitem__("containers",
                                                                                value)
    if which == "containers-empty":
        return "containers=[]", lambda o: _pod_spec(o).__setitem__("containers", [])
    if which == "container-name":
        value = draw(bad_names)
        return f"container name {value!r:.60}", lambda o: _pod_spec(o)["containers"][
            0].__setitem__("name", value)
    if which == "command-type":
        value = draw(not_a_list.filter(lambda v: v is not None))
        return f"command={value!r:.60}", lambda o: _pod_spec(o)["containers"][0].__setitem__(
            "command", value)
    if which == "limits":
        key = draw(st.sampled_from(["cpu", "memory"]))
        value = draw(st.one_of(st.just("lots"), st.just("-1"), st.just("1Xi"), st.lists(
            st.integers(), max_size=1), st.text(alphabet="xyz!", min_size=1, max_size=4)))
        return f"limits.{key}={value!r}", lambda o: _pod_spec(o)["containers"][0].__setitem__(
            "resources", {"limits": {key: value}})
    if which == "port":
        value = draw(st.one_of(st.integers(max_value=0), st.integers(min_value=65536),
                               st.text(max_size=3)))
        return f"containerPort={value!r}", lambda o: _pod_spec(o)["containers"][0].__setitem__(
            "ports", [{"containerPort": value}])
    if which == "restart-policy":
        value = draw(st.text(max_size=10).filter(
            lambda v: v not in ("Always", "OnFailure", "Never", "")))
        return f"restartPolicy={value!r}", lambda o: _pod_spec(o).__setitem__("restartPolicy",
                                                                               value)
    if which == "grace":
        value = draw(st.one_of(st.integers(max_value=-1), st.text(min_size=1, max_size=4)))
        return f"grace={value!r}", lambda o: _pod_spec(o).__setitem__(
            "terminationGracePeriodSeconds", value)
    if which == "selector":
        value = draw(st.one_of(
            st.just({"matchExpressions": [{"key": "app", "operator": "Bogus"}]}),
            st.just({"matchExpressions": [{"key": "app", "operator": "In"}]}),
            st.just({"matchLabels": {"app": "has space"}}),
            st.just({"matchLabels": {"bad key!": "x"}}),
            not_an_object.filter(lambda v: v is not None)))
        return f"selector={value!r:.60}", lambda o: (
            o["spec"].__setitem__("selector", value) if o["kind"] != "Pod"
            else o["spec"].__setitem__("volumes", "not-a-list"))
    if which == "selector-mismatch":
        return "selector does not match the template", lambda o: (
            o["spec"].__setitem__("selector", {"app": "other"}
                                  if o["kind"] == "ReplicationController"
                                  else {"matchLabels": {"app": "other"}})
            if o["kind"] != "Pod" else o["spec"].__setitem__("containers", [{"name": "c"}] * 2))
    if which == "kind":
        value = draw(st.one_of(st.sampled_from(["Service", "Node", "pod", "Event",
                                                "ControllerRevision"]), not_a_string))
        return f"kind={value!r:.60}", _set(["kind"], value)
    value = draw(st.one_of(st.sampled_from(["v2", "apps/v2", "extensions/v1beta1"]),
                           not_a_string))
    return f"apiVersion={value!r:.60}", _set(["apiVersion"], value)


@settings(max_examples=150, derandomize=True, deadline=None, database=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
@given(plural=st.sampled_from(sorted(VALID)), mutation=mutations(),
       verb=st.sampled_from(["create", "apply", "replace"]))
def test_generated_invalid_objects_are_refused(daemon, plural, mutation, verb):
    what, mutate = mutation
    collection, base = VALID[plural]
    obj = copy.deepcopy(base)
    mutate(obj)
    body = json.dumps(obj).encode()
    if verb == "replace":  # an update of an object that exists (or a 404 for the others)
        code, answer = request(daemon, "PUT", f"{collection}/{base['metadata']['name']}", body)
    else:
        code, answer = request(daemon, "POST", collection + ("?apply=true" if verb == "apply"
                                                             else ""), body)
    assert_refused(code, answer, f"{verb} {plural} with {what}")
    assert_unchanged(daemon)


# ---- generated odd requests -----------------------------------------------------------------

segments = st.one_of(st.sampled_from(["api", "apis", "v1", "apps", "namespaces", "default",
                                      "pods", "deployments", "..", ".", "%00", "%2F", "scale",
                                      "status", "exec", "log", "base", "legacy"]),
                     st.text(alphabet="abz-._~%", max_size=6))


@settings(max_examples=40, derandomize=True, deadline=None, database=None,
          suppress_health_check=[HealthCheck.too_slow])
@given(method=st.sampled_from(["POST", "PUT", "PATCH", "DELETE"]),
       parts=st.lists(segments, min_size=0, max_size=7),
       body=st.one_of(st.binary(max_size=40), anything.map(lambda v: json.dumps(v).encode())),
       query=st.sampled_from(["", "?labelSelector=a%20in%20(", "?gracePeriodSeconds=-3",
                              "?gracePeriodSeconds=x", "?propagationPolicy=Sometimes",
                              "?watch=1&resourceVersion=abc", "?apply=true"]))
def test_generated_requests_are_refused(daemon, method, parts, body, query):
    path = "/" + "/".join(parts) + query
    if method == "DELETE" and parts[-2:] in (["deployments", "base"],
                                            ["replicationcontrollers", "legacy"]):
        return  # a well-formed delete of a baseline object would rightly succeed
    code, answer = request(daemon, method, path, body)
    assert_refused(code, answer, f"{method} {path} {body!r:.80}")
    assert_unchanged(daemon)


@pytest.mark.parametrize("path, query", [
    ("/api/v1/pods", "labelSelector=app%20in%20(a"),
    ("/api/v1/pods", "labelSelector=!!"),
    ("/apis/apps/v1/deployments", "labelSelector=" + "a" * 70 + "=b"),
    ("/api/v1/namespaces/default/pods", "fieldSelector=spec.nodeName%3Dx"),
    ("/api/v1/namespaces/default/pods", "watch=1&resourceVersion=abc"),
    ("/api/v1/namespaces/default/pods/nope/log", ""),
    ("/apis/apps/v1/namespaces/default/deployments/nope/scale", ""),
    ("/api/v1/namespaces/default/widgets", ""),
])
def test_bad_reads_are_refused(daemon, path, query):
    code, answer = request(daemon, "GET", f"{path}?{query}")
    assert_refused(code, answer, f"GET {path}?{query}")
    assert_unchanged(daemon)


@pytest.mark.parametrize("replicas", [-1, 2**31, 10**30, "3", 1.5, True, None])
def test_bad_scale_is_refused(daemon, replicas):
    body = json.dumps({"spec": {"replicas": replicas}}).encode()
    code, answer = request(daemon, "PATCH",
                           "/apis/apps/v1/namespaces/default/deployments/base/scale", body,
                           {"content-type": "application/merge-patch+json"})
    assert_refused(code, answer, f"scale to {replicas!r}")
    assert_unchanged(daemon)


# ---- YAML through the CLI -------------------------------------------------------------------

yaml_junk = st.one_of(
    st.text(max_size=60),
    st.sampled_from([
        "kind: Pod\napiVersion: v1\nmetadata: {name: x\n",
        "kind: Pod\n  bad: indent\n",
        "- just\n- a list\n",
        "a: &x [*x]\n",
        ("kind: Pod\napiVersion: v1\nmetadata: {name: x}\nspec: {containers: [{name: c, "
         "command: [true]}]}\nspec: {}\n"),
        "kind: Gadget\napiVersion: v1\nmetadata: {name: g}\n",
        ("apiVersion: v1\nkind: Pod\nmetadata:\n  name: ../../etc\nspec:\n  containers:\n"
         "  - {name: c, command: [sleep, '1']}\n"),
        ("apiVersion: apps/v1\nkind: ReplicaSet\nmetadata: {name: r}\nspec:\n  replicas: -5\n"
         "  selector: {matchLabels: {a: b}}\n  template:\n    metadata: {labels: {a: b}}\n"
         "    spec: {containers: [{name: c, command: [sleep, '1']}]}\n"),
        "!!python/object/apply:os.system ['true']\n",
        "kind: Pod\napiVersion: v1\nmetadata: {name: \"a\\0b\"}\n",
    ]))


@settings(max_examples=25, derandomize=True, deadline=None, database=None,
          suppress_health_check=[HealthCheck.too_slow])
@given(text=yaml_junk)
def test_generated_yaml_is_refused_by_apply(daemon, text):
    result = daemon.cli("apply", "-f", "-", input=text, check=False)
    assert result.returncode != 0, f"apply accepted {text!r}: {result.stdout}"
    assert "Traceback" not in result.stderr, result.stderr
    assert result.stderr.strip(), "no error message"
    assert_unchanged(daemon)


# ---- sizes and depth --------------------------------------------------------------------------

def _nested(depth: int) -> Any:
    value: Any = "x"
    for _ in range(depth):
        value = {"a": value}
    return value


@pytest.mark.parametrize("case", ["deep-101", "deep-100000-lists", "huge-body",
                                  "huge-annotation", "many-containers", "long-string-name"])
def test_oversized_and_deep_documents_are_refused(daemon, case):
    collection, base = VALID["pods"]
    obj = copy.deepcopy(base)
    if case == "deep-101":
        obj["spec"]["zzdeep"] = _nested(101)
        body = json.dumps(obj).encode()
    elif case == "deep-100000-lists":  # deeper than Python's recursion limit
        body = (b'{"apiVersion":"v1","kind":"Pod","metadata":{"name":"d"},"spec":'
                + b"[" * 100_000 + b"]" * 100_000 + b"}")
    elif case == "huge-body":
        obj["metadata"]["annotations"] = {"a": "x" * (4 * 1024 * 1024)}
        body = json.dumps(obj).encode()
    elif case == "huge-annotation":
        obj["metadata"]["annotations"] = {"a": "x" * (300 * 1024)}
        body = json.dumps(obj).encode()
    elif case == "many-containers":
        obj["spec"]["containers"] = [{"name": "c", "command": ["true"]}] * 5000
        body = json.dumps(obj).encode()
    else:
        obj["metadata"]["name"] = "a" * 100_000
        body = json.dumps(obj).encode()
    if case == "huge-body":
        # The server answers 413 as soon as the limit is passed and closes: the client may
        # see the answer or only the closed connection (a clean disconnect), never a 2xx.
        answer = _raw(daemon, [POST + f"Content-Length: {len(body)}\r\n\r\n".encode(), body])
        assert not answer or answer.startswith(b"HTTP/1.1 413"), answer[:200]
    else:
        code, answer = request(daemon, "POST", collection, body)
        assert_refused(code, answer, case)
    assert_unchanged(daemon)


# ---- raw sockets ------------------------------------------------------------------------------

def _raw(daemon: Daemon, chunks: list[bytes], pause: float = 0.0, read: bool = True) -> bytes:
    """Send `chunks` (pausing between them), then read what comes back until the server
    closes or 3 s pass, and close. Bounded in time whatever the server does."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(5)
    try:
        sock.connect(str(daemon.socket))
        for chunk in chunks:
            try:
                sock.sendall(chunk)
            except (BrokenPipeError, ConnectionResetError):
                break
            time.sleep(pause)
        if not read:
            return b""
        try:
            sock.shutdown(socket.SHUT_WR)
        except OSError:  # the server closed first
            pass
        data, deadline = b"", time.monotonic() + 3
        sock.settimeout(0.5)
        while time.monotonic() < deadline:
            try:
                more = sock.recv(65536)
            except TimeoutError:
                continue
            except ConnectionResetError:
                break
            if not more:
                break
            data += more
        return data
    finally:
        sock.close()


POST = b"POST /api/v1/namespaces/default/pods HTTP/1.1\r\nHost: x\r\n"
VALID_POD = json.dumps({**VALID["pods"][1], "metadata": {"name": "raw"}}).encode()


@pytest.mark.parametrize("case", [
    "truncated-body", "disconnect-mid-body", "huge-header", "slow-partial-request",
    "garbage", "bad-content-length", "bad-chunked", "headers-never-end",
])
def test_raw_socket_abuse_changes_nothing(daemon, case):
    started = time.monotonic()
    if case == "truncated-body":  # says 1000 bytes, sends a valid object's first part, ends
        answer = _raw(daemon, [POST + b"Content-Length: 1000\r\n\r\n" + VALID_POD[:40]])
        assert not answer or answer.startswith(b"HTTP/1.1 4"), answer[:200]
    elif case == "disconnect-mid-body":  # a whole valid object but fewer bytes than promised
        _raw(daemon, [POST + f"Content-Length: {len(VALID_POD) + 10}\r\n\r\n".encode(),
                      VALID_POD], read=False)
    elif case == "huge-header":
        answer = _raw(daemon, [POST + b"X-Big: " + b"a" * (200 * 1024) + b"\r\n\r\n"])
        assert not answer or answer.split(b" ")[1].startswith(b"4"), answer[:200]
    elif case == "slow-partial-request":
        _raw(daemon, [b"POST /api/v1/name", b"spaces/default/pods HTTP/1.1\r\n", b"Host: x\r\n",
                      b"Content-Length: 5000\r\n\r\n", VALID_POD[:20]], pause=0.3, read=False)
    elif case == "garbage":
        answer = _raw(daemon, [bytes(range(256)) * 4])
        assert not answer or answer.split(b" ")[1].startswith(b"4"), answer[:200]
    elif case == "bad-content-length":
        answer = _raw(daemon, [POST + b"Content-Length: -5\r\n\r\n" + VALID_POD])
        assert not answer or answer.split(b" ")[1].startswith(b"4"), answer[:200]
    elif case == "bad-chunked":
        answer = _raw(daemon, [POST + b"Transfer-Encoding: chunked\r\n\r\nZZZ\r\n" + VALID_POD])
        assert not answer or answer.split(b" ")[1].startswith(b"4"), answer[:200]
    else:
        answer = _raw(daemon, [b"GET /healthz HTTP/1.1\r\n"] + [b"X: y\r\n"] * 2000)
        assert not answer or answer.split(b" ")[1].startswith(b"4"), answer[:200]
    assert time.monotonic() - started < 10
    # The object never landed, even when its whole JSON had arrived.
    code, _ = request(daemon, "GET", "/api/v1/namespaces/default/pods/raw")
    assert code == 404
    assert_unchanged(daemon)


def test_many_abandoned_connections_do_not_starve_the_server(daemon):
    """Slowloris-ish: 50 connections that send half a request and stay open; the API still
    answers at once, and closing them all leaves nothing changed."""
    socks = []
    try:
        for _ in range(50):
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            s.connect(str(daemon.socket))
            s.sendall(POST + b"Content-Length: 100\r\n\r\n{")
            socks.append(s)
        started = time.monotonic()
        assert_unchanged(daemon)
        assert time.monotonic() - started < 5
    finally:
        for s in socks:
            s.close()
    assert_unchanged(daemon)


# ---- who can talk to the API ----------------------------------------------------------------

def test_the_api_answers_only_root_on_its_socket(daemon):
    mode = daemon.socket.stat()
    assert stat.S_ISSOCK(mode.st_mode) and mode.st_uid == 0
    assert stat.S_IMODE(mode.st_mode) & 0o077 == 0, oct(mode.st_mode)
    # An unprivileged user cannot connect (a forked child that drops to nobody tries).
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            os.setgid(65534)
            os.setuid(65534)
            socket.socket(socket.AF_UNIX).connect(str(daemon.socket))
            code = 0
        except PermissionError:
            code = 3
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 3, "an unprivileged user reached the API"
    # Its only inet socket is the TLS listener it was told to use (loopback, authenticated:
    # tests/unit/test_api_tls.py); nothing else, and no UDP at all.
    assert daemon.process is not None
    inodes = set()
    for fd in Path(f"/proc/{daemon.process.pid}/fd").iterdir():
        try:
            target = os.readlink(fd)
        except FileNotFoundError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    listen_port = int(daemon.listen.rpartition(":")[2])
    allowed = f"0100007F:{listen_port:04X}"  # 127.0.0.1:<port> as /proc/net/tcp writes it
    # ... and cluster DNS, port 53 on the bridge's own address, inside the pod network.
    gateway = ipaddress.ip_network(daemon.cidr)[1]
    dns = f"{int.from_bytes(gateway.packed, 'little'):08X}:0035"
    for table in ("tcp", "tcp6", "udp", "udp6"):
        for line in Path(f"/proc/{daemon.process.pid}/net/{table}").read_text().splitlines()[1:]:
            fields = line.split()
            if fields[9] in inodes:
                assert (table == "tcp" and fields[1] == allowed) or (
                    table in ("tcp", "udp") and fields[1] == dns), \
                    f"the daemon has an inet socket besides its TLS listener and DNS: {line}"
