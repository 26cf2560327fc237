"""securityContext and friends: validation (Kubernetes' messages), what the runtime makes of
them (containerspec.isolation) and the mount plan order (spawn.container_plan). Pure logic;
tests/integration/test_isolation.py checks the same against the kernel."""

from __future__ import annotations

import pytest

from tinykube.model import validation
from tinykube.runtime import containerspec, spawn
from tinykube.runtime.spawn import Isolation, Mount, PidNamespace


def pod(spec: dict | None = None, container: dict | None = None, **meta) -> dict:
    c = {"name": "app", "command": ["sleep", "1"], **(container or {})}
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", **meta},
            "spec": {"containers": [c], **(spec or {})}}


def errors(obj: dict) -> list[str]:
    return [str(e) for e in validation.validate(obj)]


def test_a_default_pod_validates():
    assert errors(pod()) == []
    assert errors(pod({"hostPID": True, "hostIPC": True, "hostNetwork": True,
                       "securityContext": {"runAsUser": 1000, "fsGroup": 2000,
                                           "supplementalGroups": [3000],
                                           "seccompProfile": {"type": "RuntimeDefault"}}},
                      {"securityContext": {"capabilities": {"add": ["NET_ADMIN",
                                                                    "CAP_SYS_TIME"],
                                                            "drop": ["ALL"]},
                                           "privileged": False,
                                           "readOnlyRootFilesystem": True}})) == []


@pytest.mark.parametrize("spec, container, message", [
    ({}, {"securityContext": {"privileged": True, "allowPrivilegeEscalation": False}},
     "spec.containers[0].securityContext: Invalid value: "),
    ({}, {"securityContext": {"privileged": True, "allowPrivilegeEscalation": False}},
     "cannot set `allowPrivilegeEscalation` to false and `privileged` to true"),
    ({}, {"securityContext": {"allowPrivilegeEscalation": False,
                              "capabilities": {"add": ["CAP_SYS_ADMIN"]}}},
     "cannot set `allowPrivilegeEscalation` to false and `capabilities.Add` CAP_SYS_ADMIN"),
    ({"hostPID": True, "shareProcessNamespace": True}, {},
     "spec.securityContext.shareProcessNamespace: Invalid value: true: ShareProcessNamespace "
     "and HostPID cannot both be enabled"),
    ({}, {"securityContext": {"runAsUser": -1}},
     "spec.containers[0].securityContext.runAsUser"),
    ({}, {"securityContext": {"capabilities": {"add": ["WARP_DRIVE"]}}},
     'spec.containers[0].securityContext.capabilities.add[0]: Unsupported value: '
     '"WARP_DRIVE"'),
    ({}, {"securityContext": {"procMount": "Unmasked"}},
     "`hostUsers` must be false to use `Unmasked`"),
    ({"securityContext": {"seccompProfile": {"type": "Localhost"}}}, {},
     "spec.securityContext.seccompProfile.localhostProfile: Required value"),
    ({}, {"securityContext": {"seccompProfile": {"type": "Sometimes"}}},
     'spec.containers[0].securityContext.seccompProfile.type: Unsupported value: '
     '"Sometimes"'),
    ({"hostNetwork": True}, {"ports": [{"containerPort": 80, "hostPort": 8080}]},
     "must match `containerPort` when `hostNetwork` is true"),
])
def test_invalid_security_settings_name_the_field(spec, container, message):
    found = errors(pod(spec, container))
    assert any(message in e for e in found), found


def test_host_network_defaults_host_ports():
    from tinykube.model.defaults import apply_defaults
    obj = apply_defaults(pod({"hostNetwork": True}, {"ports": [{"containerPort": 80}]}))
    assert obj["spec"]["containers"][0]["ports"][0]["hostPort"] == 80


# -- what the runtime enforces ------------------------------------------------------------------
DEFAULT_MASK = 0xA80425FB  # containerd's default set, as /proc/<pid>/status shows it


@pytest.mark.parametrize("caps, mask", [
    ({}, DEFAULT_MASK),
    ({"add": ["NET_ADMIN"]}, DEFAULT_MASK | 1 << 12),
    ({"add": ["cap_net_admin"], "drop": ["CAP_MKNOD", "kill"]},
     (DEFAULT_MASK | 1 << 12) & ~(1 << 27) & ~(1 << 5)),
    ({"drop": ["ALL"]}, 0),
    ({"drop": ["ALL"], "add": ["NET_BIND_SERVICE"]}, 1 << 10),
    ({"add": ["ALL"]}, (1 << 41) - 1),
    ({"add": ["ALL"], "drop": ["SYS_ADMIN"]}, ((1 << 41) - 1) & ~(1 << 21)),
])
def test_capability_mask_follows_containerd(caps, mask):
    assert containerspec.capability_mask({"securityContext": {"capabilities": caps}}) == mask


def iso(spec=None, container=None, **meta) -> Isolation:
    p = pod(spec, container, **meta)
    return containerspec.isolation(p, p["spec"]["containers"][0], "c", ("/var/lib/tk",))


def test_default_isolation():
    i = iso()
    assert i == Isolation(pid_namespace=PidNamespace.CONTAINER, capabilities=DEFAULT_MASK,
                          seccomp=True, no_new_privs=False, readonly_host=True,
                          masked_paths=True, private_tmp=True, groups=(),
                          hidden=("/var/lib/tk",))


def test_privileged_is_all_capabilities_unconfined_unmasked_writable_but_still_hidden():
    i = iso(container={"securityContext": {"privileged": True}})
    assert (i.capabilities, i.seccomp, i.masked_paths, i.readonly_host) == \
        (None, False, False, False)
    assert i.hidden == ("/var/lib/tk",)
    assert i.pid_namespace is PidNamespace.CONTAINER
    # readOnlyRootFilesystem wins over privileged.
    assert iso(container={"securityContext": {"privileged": True,
                                              "readOnlyRootFilesystem": True}}).readonly_host


def test_pod_level_choices():
    assert iso({"hostPID": True}).pid_namespace is PidNamespace.HOST
    assert iso({"shareProcessNamespace": True}).pid_namespace is PidNamespace.POD
    assert not iso({"securityContext": {"seccompProfile": {"type": "Unconfined"}}}).seccomp
    # The container's seccompProfile overrides the pod's.
    assert iso({"securityContext": {"seccompProfile": {"type": "Unconfined"}}},
               {"securityContext": {"seccompProfile": {"type": "RuntimeDefault"}}}).seccomp
    assert iso({"securityContext": {"supplementalGroups": [5, 6], "fsGroup": 7}}).groups == \
        (5, 6, 7)
    assert iso(container={"securityContext": {"allowPrivilegeEscalation": False}}).no_new_privs


def test_writable_host_annotation():
    assert not iso(annotations={"tinykube.io/host-root": "writable"}).readonly_host
    with pytest.raises(containerspec.ContainerConfigError, match="tinykube.io/host-root"):
        iso(annotations={"tinykube.io/host-root": "sometimes"})


@pytest.mark.parametrize("spec, container, message", [
    ({"securityContext": {"runAsNonRoot": True}}, {}, "image will run as root"),
    ({"securityContext": {"runAsNonRoot": True, "runAsUser": 0}}, {},
     "runAsUser breaks non-root policy"),
    ({"securityContext": {"runAsUser": 0}}, {"securityContext": {"runAsNonRoot": True}},
     "runAsUser breaks non-root policy"),
])
def test_run_as_non_root_refuses_root(spec, container, message):
    p = pod(spec, container, uid="u1")
    with pytest.raises(containerspec.ContainerConfigError, match=message):
        containerspec.check_non_root(p, p["spec"]["containers"][0])


def test_run_as_non_root_accepts_a_user():
    p = pod({"securityContext": {"runAsNonRoot": True, "runAsUser": 1000}})
    containerspec.check_non_root(p, p["spec"]["containers"][0])


# -- mount plan order -------------------------------------------------------------------------
FS = {"lexists": lambda p: p in {"/etc", "/etc/hosts", "/tmp", "/tmp/x", "/usr"},
      "isdir": lambda p: p in {"/etc", "/tmp", "/tmp/x", "/usr", "/v"},
      "realpath": lambda p: p, "mode_of": lambda p: 0o755,
      "scan": lambda p: [("etc", "dir", "")]}


def test_container_plan_order():
    ops = spawn.container_plan([Mount("/pod/hosts", "/etc/hosts"), Mount("/v", "/tmp/x/data"),
                                Mount("/v", "/usr/local/app")], "/stage",
                               Isolation(hidden=("/var/lib/tk",)), **FS)
    kinds = [op[0] for op in ops]
    # Read-only host first, then the private /tmp, the mounts, and hiding last; /proc is
    # the app's (after "child").
    assert kinds[:2] == ["readonly", "tmpfs"]
    assert ops[1] == ("tmpfs", "/tmp", "mode=1777")
    # /tmp/x exists on the host but not on the fresh /tmp: created, not bound over.
    assert ("mkdir", "/tmp/x") in ops and ("mkdir", "/tmp/x/data") in ops
    assert ops[kinds.index("mirror")][:2] == ("mirror", "/usr")
    assert ("seal", "/usr") in ops
    assert kinds.index("hide") > max(i for i, k in enumerate(kinds) if k == "bind")
    assert kinds[kinds.index("child") + 1] == "proc"
    assert ("mask", "/proc/kcore") in ops and ("robind", "/proc/sys") in ops


@pytest.mark.parametrize("target", ["/var/lib/tk", "/var/lib", "/var"])
def test_a_volume_over_a_hidden_daemon_path_is_not_hidden_again(target):
    """The volume replaces the daemon's directory in the container; a hide there would cover
    the volume (the pod's own files are bound from sources tk-shim opened before any op)."""
    ops = spawn.container_plan([Mount("/pod/empty", target)], "/stage",
                               Isolation(hidden=("/var/lib/tk", "/run/tk")), **FS)
    assert [op for op in ops if op[0] == "hide"] == [("hide", "/run/tk")]


def test_container_plan_without_isolation_is_the_mounts_alone():
    ops = spawn.container_plan([Mount("/pod/hosts", "/etc/hosts")], "/stage",
                               Isolation.none(), **FS)
    assert ops == [("bind", "/pod/hosts", "/etc/hosts", False)]
