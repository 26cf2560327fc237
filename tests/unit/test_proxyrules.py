"""The service proxy's nftables transaction (pure): what goes to which chain, random choice
per connection, hairpin masquerade, affinity, no-endpoint rejects, stale chains deleted."""

from tinykube.services import proxyrules as pr

FACTS = pr.NetworkFacts("tkx0", "10.88.0.0/16", ("10.88.0.1", "127.0.0.1"))


def slice_of(service, ips, port=8080, ready=True, name="http"):
    return {"metadata": {"name": f"{service}-x", "namespace": "default",
                         "labels": {"kubernetes.io/service-name": service}},
            "addressType": "IPv4", "ports": [{"name": name, "port": port, "protocol": "TCP"}],
            "endpoints": [{"addresses": [ip], "conditions": {"ready": ready}} for ip in ips]}


def service(name, ip="10.96.0.10", **spec):
    body = {"clusterIP": ip, "type": "ClusterIP",
            "ports": [{"name": "http", "port": 80, "protocol": "TCP", "targetPort": 8080}]}
    body.update(spec)
    return {"metadata": {"name": name, "namespace": "default"}, "spec": body}


def rules(commands, chain_prefix):
    return [c["add"]["rule"]["expr"] for c in commands
            if "rule" in c.get("add", {}) and c["add"]["rule"]["chain"].startswith(chain_prefix)]


def test_only_ready_endpoints_and_random_choice():
    ports = pr.service_ports([service("web")],
                             [slice_of("web", ["10.88.0.2", "10.88.0.3"]),
                              slice_of("web", ["10.88.0.4"], ready=False)])
    (sp,) = ports
    assert [e.ip for e in sp.endpoints] == ["10.88.0.2", "10.88.0.3"]
    commands, tables = pr.ruleset(FACTS, ports, pr.Tables())
    (choice,) = rules(commands, "svc-")
    vmap = choice[0]["vmap"]
    assert vmap["key"]["numgen"] == {"mode": "random", "mod": 2, "offset": 0}
    assert len(vmap["data"]["set"]) == 2
    ep_rules = rules(commands, "ep-")
    # hairpin: the endpoint reaching itself is masqueraded; then DNAT to ip:port
    assert {"jump": {"target": "mark-for-masquerade"}} in ep_rules[0]
    assert {"dnat": {"addr": "10.88.0.2", "port": 8080}} in ep_rules[1]
    assert any(name.startswith("svc-") for name in tables.chains)


def test_no_endpoints_rejects_and_stale_chains_are_deleted():
    ready, _ = pr.ruleset(FACTS, pr.service_ports([service("web")], [slice_of("web", ["1.1.1.1"])]),
                          pr.Tables())
    before = pr.ruleset(FACTS, pr.service_ports([service("web")],
                                                [slice_of("web", ["10.88.0.2"])]),
                        pr.Tables())[1]
    commands, after = pr.ruleset(FACTS, pr.service_ports([service("web")], []), before)
    assert rules(commands, "no-endpoints")[0][-1]["reject"]["expr"] == "port-unreachable"
    deleted = {c["delete"]["chain"]["name"] for c in commands if "chain" in c.get("delete", {})}
    assert deleted == before.chains - after.chains and deleted
    # flushes of every chain come before deletes, deletes before new rules: one transaction
    kinds = [next(iter(c)) for c in commands]
    assert kinds.index("delete") > max(i for i, k in enumerate(kinds) if k == "flush")
    assert ready


def test_node_port_and_affinity():
    svc = service("np", type="NodePort", sessionAffinity="ClientIP",
                  sessionAffinityConfig={"clientIP": {"timeoutSeconds": 60}},
                  ports=[{"name": "http", "port": 80, "protocol": "TCP", "nodePort": 30080}])
    commands, tables = pr.ruleset(FACTS, pr.service_ports([svc], [slice_of("np", ["10.88.0.2"])]),
                                  pr.Tables())
    services = rules(commands, "services")
    assert any({"match": {"op": "==", "left": {"payload": {"protocol": "tcp", "field": "dport"}},
                          "right": 30080}} in r for r in services)
    sets = [c["add"]["set"] for c in commands if "set" in c.get("add", {})]
    assert sets and sets[0]["timeout"] == 60 and tables.sets == {sets[0]["name"]}


def test_headless_services_get_no_rules():
    assert pr.service_ports([service("h", ip="None")], [slice_of("h", ["10.88.0.2"])]) == []


def test_an_endpoint_change_rewrites_only_the_chains_it_touches():
    services = [service(f"s{i}", ip=f"10.96.0.{i + 10}") for i in range(20)]
    slices = [slice_of(f"s{i}", [f"10.88.{i}.2", f"10.88.{i}.3"]) for i in range(20)]
    first, tables = pr.ruleset(FACTS, pr.service_ports(services, slices), pr.Tables())
    same, tables = pr.ruleset(FACTS, pr.service_ports(services, slices), tables)
    assert same == [{"add": {"table": {"family": "ip", "name": "tinykube_tkx0"}}}]
    slices[3] = slice_of("s3", ["10.88.3.2"])  # one endpoint of one service goes away
    commands, _ = pr.ruleset(FACTS, pr.service_ports(services, slices), tables)
    flushed = {c["flush"]["chain"]["name"] for c in commands if "flush" in c}
    assert len(flushed) == 2 and all("/s3/" in name for name in flushed)
    assert len(commands) < len(first) / 10
    # After a restart the rules are unknown: everything is rewritten once.
    restarted = pr.Tables(chains=set(tables.chains), sets=set(tables.sets))
    full, _ = pr.ruleset(FACTS, pr.service_ports(services, slices), restarted)
    assert sum("flush" in c for c in full) == len(tables.chains)  # incl. the stale one
