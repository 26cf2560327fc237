"""The EndpointSlice decision (pure): which pods are endpoints, their conditions (ready,
serving, terminating as Kubernetes sets them), named target ports, hostnames, slice reuse."""

from tinykube.controllers import endpointslice as es


def service(name="web", **spec):
    body = {"selector": {"app": "web"}, "ports": [{"name": "http", "port": 80,
                                                   "targetPort": "http", "protocol": "TCP"}]}
    body.update(spec)
    return {"apiVersion": "v1", "kind": "Service",
            "metadata": {"name": name, "namespace": "default", "uid": "svc-uid"}, "spec": body}


def pod(name, ip="10.0.0.1", ready=True, port=8080, deleting=False, phase="Running", **spec):
    meta = {"name": name, "namespace": "default", "uid": f"uid-{name}",
            "labels": {"app": "web"}}
    if deleting:
        meta["deletionTimestamp"] = "2026-12-06T00:00:00Z"
    status = {"phase": phase, "conditions": [{"type": "Ready",
                                              "status": "True" if ready else "False"}]}
    if ip:
        status["podIP"] = ip
    return {"metadata": meta, "status": status, "spec": {
        "containers": [{"name": "c", "ports": [{"name": "http", "containerPort": port}]}],
        **spec}}


def test_conditions_follow_kubernetes():
    svc = service()
    assert es.endpoint_for(svc, pod("a"))["conditions"] == {
        "ready": True, "serving": True, "terminating": False}
    assert es.endpoint_for(svc, pod("b", ready=False))["conditions"] == {
        "ready": False, "serving": False, "terminating": False}
    # Terminating: never ready, serving while its Ready condition holds.
    assert es.endpoint_for(svc, pod("c", deleting=True))["conditions"] == {
        "ready": False, "serving": True, "terminating": True}
    publish = service(publishNotReadyAddresses=True)
    assert es.endpoint_for(publish, pod("d", ready=False))["conditions"]["ready"] is True
    assert es.endpoint_for(svc, pod("e", ip=None)) is None
    assert es.endpoint_for(svc, pod("f", phase="Succeeded")) is None


def test_named_target_ports_group_pods_by_port_list():
    plan = es.plan_slices(service(), [pod("a", port=8080), pod("b", "10.0.0.2", port=9090),
                                      pod("c", "10.0.0.3", port=8080)], [])
    by_port = {s["ports"][0]["port"]: [e["targetRef"]["name"] for e in s["endpoints"]]
               for s in plan.create}
    assert by_port == {8080: ["a", "c"], 9090: ["b"]}
    one = plan.create[0]
    assert one["metadata"]["labels"]["kubernetes.io/service-name"] == "web"
    assert one["metadata"]["ownerReferences"][0]["uid"] == "svc-uid"


def test_hostname_only_for_the_governing_service():
    svc = service("nginx")
    assert es.endpoint_for(svc, pod("web-0", hostname="web-0", subdomain="nginx"))[
        "hostname"] == "web-0"
    assert "hostname" not in es.endpoint_for(svc, pod("x", hostname="x", subdomain="other"))


def test_existing_slice_updated_in_place_and_idempotent():
    svc = service()
    first = es.plan_slices(svc, [pod("a")], [])
    (created,) = first.create
    created["metadata"]["uid"] = "slice-uid"
    assert es.plan_slices(svc, [pod("a")], [created]).update == []  # nothing to do twice
    later = es.plan_slices(svc, [pod("a"), pod("b", "10.0.0.2")], [created])
    assert not later.create and not later.delete
    assert [e["addresses"] for e in later.update[0]["endpoints"]] == [["10.0.0.1"], ["10.0.0.2"]]
    assert later.update[0]["metadata"]["name"] == created["metadata"]["name"]


def test_no_pods_keeps_one_empty_slice():
    svc = service(ports=[{"port": 80, "targetPort": 8080, "protocol": "TCP"}])
    (empty,) = es.plan_slices(svc, [], []).create
    assert empty["endpoints"] == [] and empty["ports"] == [
        {"name": "", "protocol": "TCP", "port": 8080}]
