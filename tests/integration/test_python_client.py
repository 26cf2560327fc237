"""The official Python client (`kubernetes`) over TLS with the kubeconfig from `tinykube
kubeconfig`: list, read, create, patch, delete and watch(timeout_seconds) on every kind
tinykube serves, every object through the client's typed models without an error."""


import pytest

from tests.integration.daemon import Daemon, wait_for
from tests.integration.kube import Kube

pytestmark = pytest.mark.root

LABELS = {"suite": "pyclient"}
TEMPLATE = {"metadata": {"labels": LABELS},
            "spec": {"terminationGracePeriodSeconds": 1,  # sleep ignores SIGTERM as pid 1
                     "containers": [{"name": "main", "image": "busybox",
                                     "command": ["sleep", "3600"]}]}}
SELECTOR = {"matchLabels": LABELS}

MANIFESTS = {
    "Pod": {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "py-pod"},
            "spec": TEMPLATE["spec"]},
    "ReplicationController": {"apiVersion": "v1", "kind": "ReplicationController",
                              "metadata": {"name": "py-rc"},
                              "spec": {"replicas": 0, "selector": {"rc": "py"}, "template": {
                                  "metadata": {"labels": {"rc": "py"}},
                                  "spec": TEMPLATE["spec"]}}},
    "PersistentVolumeClaim": {"apiVersion": "v1", "kind": "PersistentVolumeClaim",
                              "metadata": {"name": "py-pvc"},
                              "spec": {"accessModes": ["ReadWriteOnce"],
                                       "resources": {"requests": {"storage": "1Mi"}}}},
    "ReplicaSet": {"apiVersion": "apps/v1", "kind": "ReplicaSet", "metadata": {"name": "py-rs"},
                   "spec": {"replicas": 0, "selector": {"matchLabels": {"rs": "py"}},
                            "template": {"metadata": {"labels": {"rs": "py"}},
                                         "spec": TEMPLATE["spec"]}}},
    "Deployment": {"apiVersion": "apps/v1", "kind": "Deployment",
                   "metadata": {"name": "py-deploy"},
                   "spec": {"replicas": 1, "selector": SELECTOR, "template": TEMPLATE}},
    "StatefulSet": {"apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": {"name": "py-sts"},
                    "spec": {"replicas": 0, "serviceName": "py",
                             "selector": {"matchLabels": {"sts": "py"}},
                             "template": {"metadata": {"labels": {"sts": "py"}},
                                          "spec": TEMPLATE["spec"]}}},
    "Service": {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "py-svc"},
                "spec": {"selector": {"svc": "py"}, "ports": [{"port": 80,
                                                              "targetPort": 8080}]}},
    "EndpointSlice": {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
                      "metadata": {"name": "py-slice"}, "addressType": "IPv4",
                      "endpoints": [{"addresses": ["10.1.2.3"]}],
                      "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}]},
}
# kind -> (API class, method suffix)
APIS = {"Pod": ("CoreV1Api", "pod"), "ReplicationController": ("CoreV1Api",
                                                                "replication_controller"),
        "PersistentVolumeClaim": ("CoreV1Api", "persistent_volume_claim"),
        "ReplicaSet": ("AppsV1Api", "replica_set"), "Deployment": ("AppsV1Api", "deployment"),
        "StatefulSet": ("AppsV1Api", "stateful_set"),
        "Service": ("CoreV1Api", "service"),
        "EndpointSlice": ("DiscoveryV1Api", "endpoint_slice"),
        "Event": ("CoreV1Api", "event"), "ControllerRevision": ("AppsV1Api",
                                                                 "controller_revision")}


@pytest.fixture(scope="module")
def kube(tmp_path_factory):
    base = tmp_path_factory.mktemp("pyclient")
    daemon = Daemon(base).start()
    try:
        yield Kube(daemon, base)
    finally:
        daemon.cleanup()


@pytest.fixture(scope="module")
def api_client(kube):
    client = kube.api_client()
    yield client
    client.close()


def api(api_client, kind):
    from kubernetes import client

    cls, suffix = APIS[kind]
    return getattr(client, cls)(api_client), suffix


@pytest.mark.parametrize("kind", list(MANIFESTS))
def test_create_read_list_patch_watch_delete(api_client, kind):
    from kubernetes import watch

    target, suffix = api(api_client, kind)
    name = MANIFESTS[kind]["metadata"]["name"]
    created = getattr(target, f"create_namespaced_{suffix}")("default", MANIFESTS[kind])
    assert created.metadata.name == name and created.metadata.uid
    read = getattr(target, f"read_namespaced_{suffix}")(name, "default")
    assert read.metadata.uid == created.metadata.uid
    listed = getattr(target, f"list_namespaced_{suffix}")("default")
    assert name in [item.metadata.name for item in listed.items]
    everywhere = getattr(target, f"list_{suffix}_for_all_namespaces")()
    assert name in [item.metadata.name for item in everywhere.items]
    patched = getattr(target, f"patch_namespaced_{suffix}")(
        name, "default", {"metadata": {"labels": {"patched": "yes"}}})
    assert patched.metadata.labels["patched"] == "yes"
    seen = []
    for event in watch.Watch().stream(getattr(target, f"list_namespaced_{suffix}"), "default",
                                      timeout_seconds=2):
        seen.append((event["type"], event["object"].metadata.name))
    assert ("ADDED", name) in seen  # and the stream ended by itself
    getattr(target, f"delete_namespaced_{suffix}")(name, "default")
    from kubernetes.client.rest import ApiException

    def gone():
        try:
            getattr(target, f"read_namespaced_{suffix}")(name, "default")
        except ApiException as e:
            return e.status == 404
        return False
    wait_for(gone, timeout=60, what=f"{kind} {name} deleted")


def test_running_pods_and_deployments_read_through_the_typed_models(api_client, kube):
    from kubernetes import client

    core, apps = client.CoreV1Api(api_client), client.AppsV1Api(api_client)
    apps.create_namespaced_deployment("default", {**MANIFESTS["Deployment"], "metadata": {
        "name": "py-running"}})

    def running():
        pods = core.list_namespaced_pod("default", label_selector="suite=pyclient").items
        return [p for p in pods if p.status and p.status.phase == "Running"
                and p.status.container_statuses]
    (pod,) = wait_for(running, timeout=60, what="a running pod")
    (status,) = pod.status.container_statuses
    assert status.image == "busybox" and status.image_id == ""
    assert status.container_id.startswith("tinykube://") and status.ready is not None
    scale = apps.read_namespaced_deployment_scale("py-running", "default")
    assert scale.spec.replicas == 1 and scale.status.selector == "suite=pyclient"
    apps.patch_namespaced_deployment_scale("py-running", "default", {"spec": {"replicas": 0}})
    wait_for(lambda: not core.list_namespaced_pod("default",
                                                   label_selector="suite=pyclient").items,
             timeout=60, what="scaled to 0")
    apps.create_namespaced_stateful_set("default", {**MANIFESTS["StatefulSet"], "metadata": {
        "name": "py-revisions"}})
    for kind in ("Event", "ControllerRevision"):  # written by tinykube: read-only kinds
        target, suffix = api(api_client, kind)
        lister = getattr(target, f"list_namespaced_{suffix}")
        items = wait_for(lambda lister=lister: lister("default").items, timeout=30,
                         what=f"{kind} objects")
        assert all(item.metadata.name for item in items)
    apps.delete_namespaced_stateful_set("py-revisions", "default")
    assert client.VersionApi(api_client).get_code().major == "1"
    apps.delete_namespaced_deployment("py-running", "default")
    _ = Daemon


def test_namespaces(api_client):
    from kubernetes import client
    from kubernetes.client.rest import ApiException

    core = client.CoreV1Api(api_client)
    created = core.create_namespace({"apiVersion": "v1", "kind": "Namespace",
                                     "metadata": {"name": "py-team"}})
    assert created.status.phase == "Active"
    assert "py-team" in [n.metadata.name for n in core.list_namespace().items]
    core.create_namespaced_pod("py-team", {**MANIFESTS["Pod"], "metadata": {"name": "inside"}})
    patched = core.patch_namespace("py-team", {"metadata": {"labels": {"team": "py"}}})
    assert patched.metadata.labels["team"] == "py"
    core.delete_namespace("py-team")
    assert core.list_namespaced_pod("py-team").items == [] or all(
        p.metadata.deletion_timestamp for p in core.list_namespaced_pod("py-team").items)
    wait_for(lambda: not core.list_namespaced_pod("py-team").items, timeout=60,
             what="the namespace's pods gone")
    try:
        core.read_namespace("py-team")
        raise AssertionError("the namespace is still there")
    except ApiException as e:
        assert e.status == 404
