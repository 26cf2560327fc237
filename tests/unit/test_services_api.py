"""Service and EndpointSlice objects through the API server: defaults, validation with
Kubernetes' field paths, ClusterIP and NodePort allocation (requests honoured, conflicts
refused), allocated values kept across updates."""

import pytest

from tests.unit.test_api import call
from tinykube.model import validation
from tinykube.model.defaults import apply_defaults
from tinykube.model.errors import ApiError


def service(name="web", **spec):
    body = {"selector": {"app": name}, "ports": [{"port": 80, "targetPort": 8080}]}
    body.update(spec)
    return {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name}, "spec": body}


def errors_of(obj):
    return {(e.path, e.message.split(":")[0]) for e in validation.validate(apply_defaults(obj))}


def test_defaults_as_kubernetes():
    svc = apply_defaults(service(ports=[{"port": 80}], sessionAffinity="ClientIP"))
    spec = svc["spec"]
    assert spec["type"] == "ClusterIP" and spec["ports"][0] == {
        "port": 80, "protocol": "TCP", "targetPort": 80}
    assert spec["sessionAffinityConfig"]["clientIP"]["timeoutSeconds"] == 10800
    assert validation.validate(svc) == []


@pytest.mark.parametrize("spec, path", [
    ({"ports": []}, "spec.ports"),
    ({"ports": [{"port": 80}, {"port": 81}]}, "spec.ports[0].name"),
    ({"ports": [{"name": "a", "port": 80}, {"name": "a", "port": 81}]}, "spec.ports[1].name"),
    ({"ports": [{"name": "a", "port": 80}, {"name": "b", "port": 80}]}, "spec.ports[1]"),
    ({"ports": [{"port": 80, "targetPort": "Not_A_Name"}]}, "spec.ports[0].targetPort"),
    ({"ports": [{"port": 80, "nodePort": 30001}]}, "spec.ports[0].nodePort"),
    ({"type": "NodePort", "ports": [{"port": 80, "nodePort": 80}]}, "spec.ports[0].nodePort"),
    ({"clusterIP": "10.96.0.300"}, "spec.clusterIP"),
    ({"clusterIP": "None", "type": "NodePort"}, "spec.clusterIP"),
    ({"clusterIP": "None", "sessionAffinity": "ClientIP"}, "spec.sessionAffinity"),
    ({"type": "LoadBalancer"}, "spec.type"),
    ({"externalName": "example.com"}, "spec.externalName"),
    ({"ports": [{"port": 70000}]}, "spec.ports[0].port"),
])
def test_invalid_services_name_the_field(spec, path):
    assert path in {p for p, _ in errors_of(service(**spec))}


def test_service_names_are_dns_1035_labels():
    bad = service()
    bad["metadata"]["name"] = "1web"
    assert ("metadata.name", "Invalid value") in errors_of(bad)


def test_headless_service_needs_no_ports():
    assert errors_of(service(clusterIP="None", ports=[])) == set()


def test_endpoint_slice_shape():
    good = {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
            "metadata": {"name": "web-abc"}, "addressType": "IPv4",
            "endpoints": [{"addresses": ["10.1.2.3"], "conditions": {"ready": True}}],
            "ports": [{"name": "http", "port": 80, "protocol": "TCP"}]}
    assert validation.validate(good) == []
    good["endpoints"][0]["addresses"] = ["not-an-ip"]
    assert [e.path for e in validation.validate(good)] == ["endpoints[0].addresses[0]"]


async def test_cluster_ip_allocated_requested_and_conflicts_refused(api):
    store, client, _ = api
    first = await call(client.create, service("a"))
    ip = first["spec"]["clusterIP"]
    assert ip.startswith("10.96.") and first["spec"]["clusterIPs"] == [ip]
    second = await call(client.create, service("b"))
    assert second["spec"]["clusterIP"] != ip
    asked = await call(client.create, service("c", clusterIP="10.96.7.7"))
    assert asked["spec"]["clusterIP"] == "10.96.7.7"
    rv = store.resource_version
    with pytest.raises(ApiError) as err:
        await call(client.create, service("d", clusterIP="10.96.7.7"))
    assert err.value.code == 422 and "spec.clusterIP" in err.value.message
    assert "already allocated" in err.value.message and "default/c" in err.value.message
    with pytest.raises(ApiError) as err:
        await call(client.create, service("e", clusterIP="192.168.1.1"))
    assert err.value.code == 422 and "not in the valid range" in err.value.message
    assert store.resource_version == rv  # nothing stored
    headless = await call(client.create, service("h", clusterIP="None"))
    assert headless["spec"]["clusterIP"] == "None"
    # Deleting frees the address for a new request.
    await call(client.delete, "Service", "c", "default")
    again = await call(client.create, service("d", clusterIP="10.96.7.7"))
    assert again["spec"]["clusterIP"] == "10.96.7.7"


async def test_allocations_kept_across_updates_and_immutable(api):
    _, client, _ = api
    created = await call(client.create, service("np", type="NodePort"))
    node_port = created["spec"]["ports"][0]["nodePort"]
    assert 30000 <= node_port <= 32767
    # Re-applying the original manifest (no clusterIP, no nodePort) is no change.
    _, applied = await call(client.apply, service("np", type="NodePort"))
    assert applied["spec"]["clusterIP"] == created["spec"]["clusterIP"]
    assert applied["spec"]["ports"][0]["nodePort"] == node_port
    changed = dict(applied)
    changed["spec"] = dict(applied["spec"], clusterIP="10.96.9.9", clusterIPs=["10.96.9.9"])
    with pytest.raises(ApiError) as err:
        await call(client.update, changed)
    assert err.value.code == 422 and "field is immutable" in err.value.message
    with pytest.raises(ApiError) as err:
        await call(client.create, service("np2", type="NodePort",
                                          ports=[{"port": 80, "nodePort": node_port}]))
    assert "spec.ports[0].nodePort" in err.value.message and "already allocated" in \
        err.value.message
