"""Pod isolation by default (issue 15), against a real daemon and the real kernel.

One daemon for the module, rooted under /run (not under /tmp, which containers see as a
private tmpfs anyway), so hiding its root, run dir and socket is really exercised. Each test
starts the pods it needs and checks from inside them (`tinykube exec`, or the app's own
output in its log) what Kubernetes users expect of a container.
"""

from __future__ import annotations

import os
import shutil
import signal
import tempfile
import textwrap
import uuid
from pathlib import Path

import pytest

from tests.integration.daemon import Daemon, container_pid, wait_for

DEFAULT_CAPS = "00000000a80425fb"  # containerd's default set
POD_PIDS = 200  # the daemon's --pod-max-pids here: small, so the fork bomb stays cheap


class IsolationDaemon(Daemon):
    def args(self) -> list[str]:
        return [*super().args(), "--pod-max-pids", str(POD_PIDS)]


@pytest.fixture(scope="module")
def node():
    if os.geteuid() != 0:
        pytest.skip("needs root")
    base = Path(tempfile.mkdtemp(prefix="tk-isolation-", dir="/run"))
    d = IsolationDaemon(base).start()
    try:
        yield d
    finally:
        try:
            d.cleanup()
        finally:
            shutil.rmtree(base, ignore_errors=True)


def pod(name: str, spec_yaml: str = "", command: str = "sleep infinity",
        container_yaml: str = "", annotations: str = "") -> str:
    """A one-container pod; the *_yaml parts are lines indented for their place."""
    return "\n".join(line for line in [
        "apiVersion: v1", "kind: Pod", "metadata:", f"  name: {name}", annotations,
        "spec:", "  terminationGracePeriodSeconds: 1", spec_yaml,
        "  containers:", "  - name: app", f'    command: [sh, -c, "{command}"]',
        container_yaml] if line) + "\n"


def run_pod(node: Daemon, manifest: str, name: str) -> dict:
    node.apply(manifest)
    return node.wait_running(name)


def sh(node: Daemon, name: str, script: str, container: str | None = None):
    return node.exec(name, "sh", "-c", script, container=container)


def status_field(text: str, field: str) -> str:
    for line in text.splitlines():
        if line.startswith(field + ":"):
            return line.split(":", 1)[1].strip()
    raise KeyError(field)


def delete(node: Daemon, *names: str) -> None:
    for name in names:
        node.cli("delete", "pod", name, "--grace-period", "0", check=False)
    wait_for(lambda: not any(p["metadata"]["name"] in names
                             for p in node.client.list("Pod", "default")),
             timeout=60, what=f"pods {names} gone")


@pytest.mark.root
def test_default_pod_is_confined(node):
    run_pod(node, pod("plain", command="exec sleep infinity"), "plain")
    try:
        # The app is PID 1 of its own PID namespace, with the runtime's default capabilities.
        status = sh(node, "plain", "cat /proc/1/status").stdout
        assert status_field(status, "Name") == "sleep"
        assert status_field(status, "CapEff") == DEFAULT_CAPS
        assert status_field(status, "CapBnd") == DEFAULT_CAPS
        assert status_field(status, "CapInh") == "0000000000000000"
        assert status_field(status, "NoNewPrivs") == "0"
        assert status_field(status, "Seccomp") == "2"  # filter mode
        # exec'd processes are confined the same way.
        exec_status = sh(node, "plain", "cat /proc/self/status").stdout
        assert status_field(exec_status, "CapEff") == DEFAULT_CAPS
        assert status_field(exec_status, "Seccomp") == "2"

        # The host's processes are invisible: only PID 1 and the exec'd shell and its child.
        listing = sh(node, "plain", "ls /proc | grep -E '^[0-9]+$'").stdout.split()
        assert "1" in listing and len(listing) <= 4, listing
        assert str(os.getpid()) not in listing or len(listing) <= 4

        # The host tree is read-only.
        for path in ("/usr", "/etc", "/root", "/var"):
            result = sh(node, "plain", f"touch {path}/tk-isolation-probe")
            assert result.returncode != 0
            assert "Read-only file system" in result.stderr, (path, result.stderr)
            assert not os.path.exists(f"{path}/tk-isolation-probe")

        # /tmp is private, empty and writable; the host's /tmp is not touched.
        marker = f"tk-isolation-{uuid.uuid4().hex[:8]}"
        result = sh(node, "plain", f"ls -A /tmp; echo x > /tmp/{marker} && echo wrote")
        assert result.stdout.split() == ["wrote"], result.stdout
        assert not os.path.exists(f"/tmp/{marker}")

        # The daemon's state, run dir and API socket are out of reach.
        for path in (node.root, node.run_dir, Path("/run/tinykube")):
            listing = sh(node, "plain", f"ls -A {path} 2>/dev/null").stdout.split()
            assert listing == [], (path, listing)
        assert sh(node, "plain", f"test -S {node.socket}").returncode != 0
        assert sh(node, "plain", f"cat {node.root}/state.db").returncode != 0

        # /proc is masked as containerd does it, /sys and /proc/sys are read-only.
        # (/proc/kcore only where the kernel has it; this one may not: CONFIG_PROC_KCORE)
        for path in ("/proc/kcore", "/proc/timer_list", "/proc/keys"):
            if os.path.exists(path):
                size = sh(node, "plain", f"wc -c < {path}")
                assert size.stdout.strip() == "0", (path, size.stderr)
        assert sh(node, "plain", "ls -A /proc/acpi /sys/firmware").stdout.split() == \
            ["/proc/acpi:", "/sys/firmware:"]
        result = sh(node, "plain", "echo 1 > /proc/sys/kernel/panic_on_oops")
        assert "Read-only file system" in result.stderr
        mounts = sh(node, "plain", "cat /proc/self/mounts").stdout.splitlines()
        sys_mount = [m for m in mounts if m.split()[1] == "/sys"]
        assert sys_mount and sys_mount[-1].split()[3].startswith("ro"), sys_mount

        # No mount, no kexec, no keyrings (the seccomp filter: keyctl needs no capability).
        result = sh(node, "plain", "mkdir -p /tmp/m && mount -t tmpfs none /tmp/m")
        assert result.returncode != 0
        syscall = ("import ctypes, sys; libc = ctypes.CDLL(None, use_errno=True); "
                   "r = libc.syscall(int(sys.argv[1]), 0, 0, 0, 0, 0); "
                   "print(r, ctypes.get_errno())")
        kexec_load, keyctl, mount = 246, 250, 165  # x86_64
        for number in (kexec_load, keyctl, mount):
            out = node.exec("plain", "python3", "-c", syscall, str(number)).stdout.split()
            assert out == ["-1", "1"], (number, out)  # EPERM
        # A user namespace needs no capability from the kernel: the filter refuses it.
        result = sh(node, "plain", "unshare --user true")
        assert result.returncode != 0 and "Operation not permitted" in result.stderr
    finally:
        delete(node, "plain")


@pytest.mark.root
def test_volumes_dev_shm_and_pod_files_stay_writable(node):
    manifest = textwrap.dedent("""\
        apiVersion: v1
        kind: Pod
        metadata:
          name: writable
        spec:
          terminationGracePeriodSeconds: 1
          volumes:
          - name: scratch
            emptyDir: {}
          - name: host
            hostPath: {path: /run/tk-isolation-hostpath}
          containers:
          - name: a
            command: [sleep, infinity]
            volumeMounts:
            - {name: scratch, mountPath: /data}
            - {name: host, mountPath: /tmp/host, readOnly: true}
          - name: b
            command: [sleep, infinity]
            volumeMounts:
            - {name: scratch, mountPath: /var/lib/app}
        """)
    os.makedirs("/run/tk-isolation-hostpath", exist_ok=True)
    Path("/run/tk-isolation-hostpath/hello").write_text("from the host\n")
    try:
        run_pod(node, manifest, "writable")
        # emptyDir (it lives under the hidden --root) is there and writable, in both containers.
        assert sh(node, "writable", "echo shared > /data/f", "a").returncode == 0
        assert sh(node, "writable", "cat /var/lib/app/f", "b").stdout == "shared\n"
        # hostPath with readOnly: readable, not writable.
        assert sh(node, "writable", "cat /tmp/host/hello", "a").stdout == "from the host\n"
        result = sh(node, "writable", "touch /tmp/host/x", "a")
        assert "Read-only file system" in result.stderr
        # /dev/shm: writable and one per pod (the containers share it).
        assert sh(node, "writable", "echo ipc > /dev/shm/seg", "a").returncode == 0
        assert sh(node, "writable", "cat /dev/shm/seg", "b").stdout == "ipc\n"
        assert not os.path.exists("/dev/shm/seg")
        # The pod's /etc/hosts is its own and writable; the host's is not touched.
        host_hosts = Path("/etc/hosts").read_text()
        assert sh(node, "writable", "echo '10.1.1.1 extra' >> /etc/hosts", "a").returncode == 0
        assert Path("/etc/hosts").read_text() == host_hosts
        assert sh(node, "writable", "hostname", "a").stdout.strip() == "writable"
    finally:
        delete(node, "writable")
        shutil.rmtree("/run/tk-isolation-hostpath", ignore_errors=True)


@pytest.mark.root
def test_privileged_gets_every_capability_unmasked_proc_and_a_writable_host(node):
    marker = f"/var/tmp/tk-isolation-{uuid.uuid4().hex[:8]}"
    run_pod(node, pod("priv", container_yaml="    securityContext: {privileged: true}"),
            "priv")
    try:
        status = sh(node, "priv", "cat /proc/self/status").stdout
        # Every capability the daemon has (this machine's root may lack some, e.g. in a VM
        # sandbox without CAP_SYS_RESOURCE).
        own = status_field(Path("/proc/self/status").read_text(), "CapBnd")
        assert status_field(status, "CapEff") == own
        assert status_field(status, "Seccomp") == "0"  # unconfined, as containerd does
        assert int(sh(node, "priv", "wc -c < /proc/timer_list").stdout) > 0  # not masked
        assert sh(node, "priv", f"touch {marker}").returncode == 0
        assert os.path.exists(marker)
        # Still its own PID namespace (privileged is not hostPID) and the daemon stays hidden.
        assert status_field(sh(node, "priv", "cat /proc/1/status").stdout, "Name") == "sh"
        assert sh(node, "priv", f"ls -A {node.run_dir}").stdout.split() == []
    finally:
        delete(node, "priv")
        if os.path.exists(marker):
            os.unlink(marker)


@pytest.mark.root
def test_capabilities_add_and_drop(node):
    manifest = textwrap.dedent("""\
        apiVersion: v1
        kind: Pod
        metadata: {name: caps}
        spec:
          terminationGracePeriodSeconds: 1
          containers:
          - name: netadmin
            command: [sleep, infinity]
            securityContext:
              capabilities: {add: [NET_ADMIN], drop: [MKNOD]}
          - name: none
            command: [sleep, infinity]
            securityContext:
              capabilities: {drop: [ALL]}
        """)
    run_pod(node, manifest, "caps")
    try:
        expected = int(DEFAULT_CAPS, 16) | (1 << 12)  # + CAP_NET_ADMIN
        expected &= ~(1 << 27)  # - CAP_MKNOD
        status = sh(node, "caps", "cat /proc/1/status", "netadmin").stdout
        assert status_field(status, "CapEff") == f"{expected:016x}"
        # NET_ADMIN works on the pod's own network namespace; without it the same call fails.
        assert sh(node, "caps", "ip link set lo mtu 1400", "netadmin").returncode == 0
        status = sh(node, "caps", "cat /proc/1/status", "none").stdout
        assert status_field(status, "CapEff") == "0000000000000000"
        assert sh(node, "caps", "ip link set lo mtu 1300", "none").returncode != 0
        assert sh(node, "caps", "chown 1 /tmp", "none").returncode != 0
    finally:
        delete(node, "caps")


@pytest.mark.root
def test_run_as_user_1000_has_no_effective_capabilities(node):
    manifest = pod("user", spec_yaml="  securityContext: {runAsUser: 1000, runAsGroup: 3000, "
                   "supplementalGroups: [4000], fsGroup: 2000}",
                   command="exec sleep infinity")
    run_pod(node, manifest, "user")
    try:
        status = sh(node, "user", "cat /proc/1/status").stdout
        assert status_field(status, "Uid").split()[0] == "1000"
        assert status_field(status, "Gid").split()[0] == "3000"
        assert sorted(status_field(status, "Groups").split()) == ["2000", "3000", "4000"]
        assert status_field(status, "CapEff") == "0000000000000000"
        assert status_field(status, "CapPrm") == "0000000000000000"
        assert status_field(status, "CapBnd") == DEFAULT_CAPS
        assert sh(node, "user", "id -u").stdout.strip() == "1000"  # exec runs as the user too
    finally:
        delete(node, "user")


@pytest.mark.root
def test_allow_privilege_escalation_false_sets_no_new_privs(node):
    run_pod(node, pod("nnp", command="exec sleep infinity",
                      container_yaml="    securityContext: {allowPrivilegeEscalation: false}"),
            "nnp")
    try:
        assert status_field(sh(node, "nnp", "cat /proc/1/status").stdout, "NoNewPrivs") == "1"
    finally:
        delete(node, "nnp")


@pytest.mark.root
def test_unconfined_seccomp_opts_out(node):
    run_pod(node, pod("unconfined", command="exec sleep infinity",
                      spec_yaml="  securityContext: {seccompProfile: {type: Unconfined}}"),
            "unconfined")
    try:
        status = sh(node, "unconfined", "cat /proc/1/status").stdout
        assert status_field(status, "Seccomp") == "0"
        assert status_field(status, "CapEff") == DEFAULT_CAPS  # only seccomp changed
    finally:
        delete(node, "unconfined")


@pytest.mark.root
def test_host_pid_sees_the_host(node):
    run_pod(node, pod("hostpid", spec_yaml="  hostPID: true"), "hostpid")
    try:
        listing = sh(node, "hostpid", "ls /proc").stdout.split()
        assert str(os.getpid()) in listing
        assert str(node.process.pid) in listing
        assert status_field(sh(node, "hostpid", "cat /proc/1/status").stdout, "Name") != "sh"
    finally:
        delete(node, "hostpid")


@pytest.mark.root
def test_share_process_namespace(node):
    manifest = textwrap.dedent("""\
        apiVersion: v1
        kind: Pod
        metadata: {name: shared}
        spec:
          terminationGracePeriodSeconds: 1
          shareProcessNamespace: true
          containers:
          - name: a
            command: [sleep, "1001"]
          - name: b
            command: [sleep, "1002"]
        """)
    run_pod(node, manifest, "shared")
    try:
        # The pause is PID 1 and reaps; each container sees the other's processes.
        assert sh(node, "shared", "cat /proc/1/comm", "a").stdout.strip() == "catatonit"
        seen = sh(node, "shared", "cat /proc/[0-9]*/cmdline | tr '\\0' ' '", "a").stdout
        assert "sleep 1002" in seen and "sleep 1001" in seen
        # ... and no one else's: not this test process (its pid number proves nothing: in a
        # CI container it is a small number too, even 1).
        assert "pytest" not in seen and "tinykube" not in seen, seen
    finally:
        delete(node, "shared")


@pytest.mark.root
def test_pid_1_without_a_handler_ignores_sigterm(node):
    """As under Kubernetes: SIGTERM to a PID 1 with no handler does nothing (the kernel drops
    it), so a pod stop ends with SIGKILL after the grace period; a handler makes it graceful.
    tk-shim forwards the SIGTERM the pod worker sends it, as for a deletion."""
    manifest = textwrap.dedent("""\
        apiVersion: v1
        kind: Pod
        metadata: {name: stopper}
        spec:
          restartPolicy: Never
          terminationGracePeriodSeconds: 1
          containers:
          - name: plain
            command: [sleep, infinity]
          - name: trapping
            command: [sh, -c, "trap 'exit 3' TERM; while true; do sleep 0.1; done"]
        """)
    run_pod(node, manifest, "stopper")
    try:
        pod = node.pod("stopper")
        for name in ("plain", "trapping"):  # the plain one first
            os.kill(container_pid(pod, name), signal.SIGTERM)

        def state(p: dict, name: str) -> dict:
            return next(c for c in p["status"]["containerStatuses"] if c["name"] == name)["state"]
        done = node.wait_pod("stopper", lambda p: "terminated" in state(p, "trapping"))
        assert state(done, "trapping")["terminated"]["exitCode"] == 3
        assert "running" in state(done, "plain")
        assert sh(node, "stopper", "cat /proc/1/comm", "plain").stdout.strip() == "sleep"
    finally:
        delete(node, "stopper")


@pytest.mark.root
def test_run_as_non_root_refuses_root(node):
    manifest = pod("nonroot", spec_yaml="  securityContext: {runAsNonRoot: true}")
    node.apply(manifest)
    try:
        found = node.wait_pod("nonroot", lambda p: p["status"]["containerStatuses"][0]["state"]
                              .get("waiting", {}).get("reason") == "CreateContainerConfigError")
        message = found["status"]["containerStatuses"][0]["state"]["waiting"]["message"]
        assert "runAsNonRoot and image will run as root" in message
    finally:
        delete(node, "nonroot")


@pytest.mark.root
def test_invalid_security_contexts_are_refused_with_kubernetes_messages(node):
    bad = pod("bad", container_yaml="    securityContext: {privileged: true, "
              "allowPrivilegeEscalation: false}")
    result = node.cli("apply", "-f", "-", input=bad, check=False)
    assert result.returncode != 0
    assert ("spec.containers[0].securityContext: Invalid value" in result.stderr
            and "cannot set `allowPrivilegeEscalation` to false and `privileged` to true"
            in result.stderr), result.stderr
    both = pod("bad", spec_yaml="  hostPID: true\n  shareProcessNamespace: true")
    result = node.cli("apply", "-f", "-", input=both, check=False)
    assert "ShareProcessNamespace and HostPID cannot both be enabled" in result.stderr
    assert not node.client.list("Pod", "default")


@pytest.mark.root
def test_fork_bomb_stays_in_its_pod(node):
    run_pod(node, pod("neighbour", command="exec sleep infinity"), "neighbour")
    bomb = pod("bomb", command="b() { b | b & }; b; sleep infinity",
               container_yaml="    resources: {limits: {cpu: 200m}}")
    node.apply(bomb)
    try:
        uid = node.wait_running("bomb")["metadata"]["uid"]
        pids_current = None
        for dirpath, dirnames, _ in os.walk("/sys/fs/cgroup"):
            if f"pod-{uid}" in dirnames and os.path.exists(
                    os.path.join(dirpath, f"pod-{uid}", "pids.max")):
                pids_current = os.path.join(dirpath, f"pod-{uid}", "pids.current")
                with open(os.path.join(dirpath, f"pod-{uid}", "pids.max")) as f:
                    assert f.read().strip() == str(POD_PIDS)
                break
        assert pids_current is not None
        # The bomb hits the pod's limit ...
        wait_for(lambda: int(Path(pids_current).read_text()) >= POD_PIDS - 5, timeout=30,
                 what="the fork bomb to reach the pod's pids limit")
        assert int(Path(pids_current).read_text()) <= POD_PIDS
        # ... while the host, the daemon and the other pod carry on.
        assert sh(node, "neighbour", "echo alive").stdout == "alive\n"
        run_pod(node, pod("latecomer"), "latecomer")
        assert node.cli("get", "pods").returncode == 0
    finally:
        delete(node, "bomb", "neighbour", "latecomer")


@pytest.mark.root
def test_host_network_and_host_ipc(node):
    manifest = pod("hostnet", spec_yaml="  hostNetwork: true\n  hostIPC: true",
                   command="exec sleep infinity")
    running = run_pod(node, manifest, "hostnet")
    try:
        assert running["status"]["podIP"] == running["status"]["hostIP"]
        for ns in ("net", "ipc", "uts"):
            inside = sh(node, "hostnet", f"readlink /proc/self/ns/{ns}").stdout.strip()
            assert inside == os.readlink(f"/proc/self/ns/{ns}"), ns
        assert sh(node, "hostnet", "hostname").stdout.strip() == os.uname().nodename
        # Still confined otherwise: its own PID namespace, default capabilities.
        status = sh(node, "hostnet", "cat /proc/1/status").stdout
        assert status_field(status, "Name") == "sleep"
        assert status_field(status, "CapEff") == DEFAULT_CAPS
    finally:
        delete(node, "hostnet")
