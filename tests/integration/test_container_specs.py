"""Container specs that used to pass validation and then could not run (issue 14): refused
with the field named, or run as the kernel allows; long pod names; a volume on /etc."""

from __future__ import annotations

import copy
import os
import subprocess

import pytest

from tests.integration.daemon import wait_for
from tinykube.model.errors import Invalid

pytestmark = pytest.mark.root

POD = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "spec"},
       "spec": {"terminationGracePeriodSeconds": 1,
                "containers": [{"name": "c", "command": ["sleep", "3600"]}]}}


def pod(**container) -> dict:
    obj = copy.deepcopy(POD)
    obj["spec"]["containers"][0].update(container)
    return obj


NUL = "a\0b"
REFUSED = [
    ("command", pod(command=["sleep", NUL]), "spec.containers[0].command[1]", "NUL"),
    ("args", pod(args=[NUL]), "spec.containers[0].args[0]", "NUL"),
    ("env", pod(env=[{"name": "X", "value": NUL}]), "spec.containers[0].env[0].value", "NUL"),
    ("cpu 2^63", pod(resources={"limits": {"cpu": str(2**63)}}),
     "spec.containers[0].resources.limits[cpu]", "at most"),
    ("pids 2^63", pod(resources={"limits": {"tinykube.io/pids": str(2**63)}}),
     "spec.containers[0].resources.limits[tinykube.io/pids]", "at most"),
    ("memory 2^63", pod(resources={"limits": {"memory": str(2**63)}}),
     "spec.containers[0].resources.limits[memory]", "at most"),
] + [
    (f"mountPath {path}", dict(pod(volumeMounts=[{"name": "v", "mountPath": path}]),
                               spec=dict(pod(volumeMounts=[{"name": "v", "mountPath": path}])[
                                   "spec"], volumes=[{"name": "v", "emptyDir": {}}])),
     "spec.containers[0].volumeMounts[0].mountPath", reason)
    for path, reason in [("/", "root directory"), ("/.", "root directory"),
                         ("//", "root directory"), ("/proc/sys", "/proc"),
                         ("/proc", "/proc"), ("/sys/fs/cgroup", "/sys")]
]


@pytest.mark.parametrize("what, obj, field, reason", REFUSED, ids=[r[0] for r in REFUSED])
def test_specs_that_cannot_run_are_refused_naming_the_field(daemon, what, obj, field, reason):
    with pytest.raises(Invalid) as refused:
        daemon.client.create(obj)
    assert field in str(refused.value) and reason in str(refused.value), str(refused.value)
    assert daemon.client.list("Pod", "default") == []
    assert daemon.client.healthy()


def test_limits_beyond_what_the_kernel_takes_are_clamped_and_run(daemon):
    """Within int64 but beyond cfs_quota_us / pids.max: the pod runs (as unlimited as the
    kernel allows), and it can be deleted without leaking anything (the fixture checks)."""
    daemon.client.create(pod(resources={"limits": {"cpu": str(2**62 // 1000),
                                                   "tinykube.io/pids": str(2**62),
                                                   "memory": str(2**62)}}))
    daemon.wait_running("spec")
    daemon.client.delete("Pod", "spec", "default")


def test_pod_names_longer_than_a_hostname_run_with_the_name_cut_to_63(daemon):
    name = "a" * 62 + "-" + "b" * 100  # 163 characters; the 63rd is a '-'
    obj = pod(command=["sh", "-c", "hostname; sleep 3600"])
    obj["metadata"]["name"] = name
    daemon.client.create(obj)
    daemon.wait_running(name)
    out = daemon.exec(name, "hostname")
    assert out.returncode == 0 and out.stdout.strip() == "a" * 62, out.stdout + out.stderr


def test_a_volume_mounted_on_etc_runs_with_the_pods_hosts_file(daemon):
    obj = pod(volumeMounts=[{"name": "etc", "mountPath": "/etc"}],
              command=["sh", "-c", "echo mine > /etc/own; sleep 3600"])
    obj["spec"]["volumes"] = [{"name": "etc", "emptyDir": {}}]
    daemon.client.create(obj)
    daemon.wait_running("spec")
    hosts = daemon.exec("spec", "cat", "/etc/hosts")
    assert hosts.returncode == 0 and "spec" in hosts.stdout, hosts.stdout + hosts.stderr
    own = daemon.exec("spec", "cat", "/etc/own")
    assert own.stdout == "mine\n", own.stdout + own.stderr


@pytest.mark.parametrize("what, spec", [
    ("missing binary", {"containers": [{"name": "c", "command": ["/no/such/binary"]}]}),
    ("hostPath type", {"containers": [{"name": "c", "command": ["sleep", "3600"],
                                       "volumeMounts": [{"name": "h", "mountPath": "/h"}]}],
                       "volumes": [{"name": "h", "hostPath": {"path": "/dev/null",
                                                              "type": "Directory"}}]}),
    ("unwritable workingDir", {"containers": [{"name": "c", "command": ["sleep", "3600"],
                                               "workingDir": "/dev/null/nope"}]}),
])
def test_a_pod_that_cannot_start_is_deleted_without_leaks(daemon, what, spec):
    obj = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "stuck"},
           "spec": {"terminationGracePeriodSeconds": 1, **spec}}
    uid = daemon.client.create(obj)["metadata"]["uid"]

    def tried() -> bool:
        pod = daemon.pod("stuck")
        events = {e["reason"] for e in daemon.client.events(pod)}
        return bool(events & {"Failed", "FailedMount", "BackOff", "FailedCreatePodSandBox"})
    wait_for(tried, timeout=30, what=f"a failed start ({what})")
    daemon.client.delete("Pod", "stuck", "default")
    wait_for(lambda: not daemon.client.list("Pod", "default"), timeout=30, what="deleted")
    assert not (daemon.run_dir / "pods" / f"{uid}.json").exists(), "pod record left"
    assert not (daemon.root / "pods" / uid).exists(), "pod dir left"
    links = subprocess.run(["ip", "-o", "link"], capture_output=True, text=True,
                           check=True).stdout
    assert f"tkv{uid[:8]}" not in links, "veth left"
    leftover = [d for d, _, _ in os.walk("/sys/fs/cgroup") if d.endswith(f"pod-{uid}")]
    assert not leftover, leftover
