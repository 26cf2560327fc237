"""kubectl v1.37 (default settings, no --validate=false) drives a real daemon over TLS: a
table of commands, run in order against one daemon, each with the output shape a kind
cluster prints for the same objects."""

import json
import re
import subprocess

import pytest

from tests.integration.daemon import Daemon, wait_for
from tests.integration.kube import Kube

pytestmark = pytest.mark.root

DEPLOYMENT = """
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  labels: {app: web}
spec:
  replicas: 2
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      # sleep is PID 1 and ignores SIGTERM (as under Kubernetes): a short grace keeps each
      # rollout step from waiting 30 s for the old pod.
      terminationGracePeriodSeconds: 1
      containers:
      - name: main
        image: busybox
        command: [sh, -c, 'echo hello from $HOSTNAME; exec sleep 3600']
        env: [{name: GREETING, value: one}]
"""
EDITED = DEPLOYMENT.replace("value: one", "value: two").replace("replicas: 2", "replicas: 3")


@pytest.fixture(scope="module")
def kube(tmp_path_factory):
    base = tmp_path_factory.mktemp("kubectl")
    daemon = Daemon(base).start()
    try:
        yield Kube(daemon, base)
    finally:
        daemon.cleanup()


def first_pod(kube) -> str:
    names = kube.kubectl("get", "pods", "-l", "app=web", "-o", "name").stdout.split()
    return names[0].split("/", 1)[1]


def running_pods(kube) -> list[str]:
    out = kube.kubectl("get", "pods", "-l", "app=web", "--no-headers").stdout
    return [line.split()[0] for line in out.splitlines() if " Running " in line]


# (kubectl arguments, stdin, regular expressions the output must match, in order)
TABLE = [
    (["version"], None, [r"Client Version: v1\.37\.", r"Server Version: v1\.37\."]),
    (["api-resources"], None, [
        r"NAME\s+SHORTNAMES\s+APIVERSION\s+NAMESPACED\s+KIND",
        r"^pods\s+po\s+v1\s+true\s+Pod$", r"^deployments\s+deploy\s+apps/v1\s+true\s+Deployment$",
        r"^statefulsets\s+sts\s+apps/v1\s+true\s+StatefulSet$"]),
    (["get", "nodes"], None, [
        r"^NAME\s+STATUS\s+ROLES\s+AGE\s+VERSION\n\S+\s+Ready\s+control-plane\s+\S+\s+v1\."]),
    (["get", "leases", "-n", "kube-node-lease", "-o", "yaml"], None, [
        r"\n    holderIdentity: \S+\n", r"\n    renewTime: \"?\d{4}-\S+\.\d{6}Z"]),
    (["apply", "-f", "-"], DEPLOYMENT, [r"^deployment\.apps/web created$"]),
    (["rollout", "status", "deployment/web", "--timeout=90s"], None,
     [r'deployment "web" successfully rolled out']),
    (["get", "pods", "-o", "wide"], None, [
        r"^NAME\s+READY\s+STATUS\s+RESTARTS\s+AGE\s+IP\s+NODE\n",
        r"\nweb-[a-z0-9]+-[a-z0-9]{5}\s+1/1\s+Running\s+0\s+\S+\s+\d+\.\d+\.\d+\.\d+\s+"]),
    (["get", "deployment", "web"], None, [
        r"^NAME\s+READY\s+UP-TO-DATE\s+AVAILABLE\s+AGE\nweb\s+2/2\s+2\s+2\s+\S+$"]),
    (["get", "deploy", "web", "-o", "yaml"], None, [
        r"^apiVersion: apps/v1\n", r"\nkind: Deployment\n", r"\n  name: web\n"]),
    (["apply", "-f", "-"], EDITED, [r"^deployment\.apps/web configured$"]),
    (["apply", "-f", "-"], EDITED, [r"^deployment\.apps/web unchanged$"]),
    (["rollout", "status", "deployment/web", "--timeout=90s"], None,
     [r"successfully rolled out"]),
    (["scale", "deployment/web", "--replicas=2"], None, [r"^deployment\.apps/web scaled$"]),
    (["rollout", "history", "deployment/web"], None,
     [r"REVISION\s+CHANGE-CAUSE\n1\s+<none>\n2\s+<none>"]),
    (["rollout", "undo", "deployment/web"], None, [r"deployment\.apps/web rolled back"]),
    (["rollout", "status", "deployment/web", "--timeout=90s"], None,
     [r"successfully rolled out"]),
    (["rollout", "restart", "deployment/web"], None, [r"^deployment\.apps/web restarted$"]),
    (["rollout", "pause", "deployment/web"], None, [r"^deployment\.apps/web paused$"]),
    (["rollout", "resume", "deployment/web"], None, [r"^deployment\.apps/web resumed$"]),
    (["rollout", "status", "deployment/web", "--timeout=90s"], None,
     [r"successfully rolled out"]),
    (["wait", "--for=condition=Available", "deployment/web", "--timeout=60s"], None,
     [r"^deployment\.apps/web condition met$"]),
    (["label", "deployment", "web", "tier=frontend"], None, [r"^deployment\.apps/web labeled$"]),
    (["annotate", "deployment", "web", "note=hi"], None, [r"^deployment\.apps/web annotated$"]),
    (["patch", "deployment", "web", "--type", "merge", "-p", '{"spec":{"minReadySeconds":1}}'],
     None, [r"^deployment\.apps/web patched$"]),
    (["patch", "deployment", "web", "--type", "json", "-p",
      '[{"op":"replace","path":"/spec/minReadySeconds","value":0}]'], None,
     [r"^deployment\.apps/web patched$"]),
    (["patch", "deployment", "web", "--type", "strategic", "-p",
      ('{"spec":{"template":{"spec":{"containers":[{"name":"main","env":[{"name":"EXTRA",'
       '"value":"x"}]}]}}}}')], None, [r"^deployment\.apps/web patched$"]),
    (["rollout", "status", "deployment/web", "--timeout=90s"], None,
     [r"successfully rolled out"]),
]


@pytest.mark.parametrize("args, stdin, patterns", TABLE,
                         ids=[" ".join(a[:3]) + f"#{i}" for i, (a, _, _) in enumerate(TABLE)])
def test_kubectl_table(kube, args, stdin, patterns):
    out = kube.kubectl(*args, input=stdin).stdout.strip("\n")
    for pattern in patterns:
        assert re.search(pattern, out, re.MULTILINE), f"{pattern!r} not in:\n{out}"


def test_strategic_patch_merged_the_container_env(kube):
    obj = json.loads(kube.kubectl("get", "deploy", "web", "-o", "json").stdout)
    (container,) = obj["spec"]["template"]["spec"]["containers"]
    # `rollout undo` went back to the first template (GREETING=one); the patch added EXTRA.
    assert {e["name"]: e["value"] for e in container["env"]} == {"GREETING": "one",
                                                                 "EXTRA": "x"}
    assert container["command"][0] == "sh"  # the rest of the container is kept
    assert obj["metadata"]["labels"]["tier"] == "frontend"


def test_diff_shows_what_apply_would_change(kube):
    same = kube.kubectl("diff", "-f", "-", input=EDITED, check=False)
    assert same.returncode == 1, same.stderr  # replicas (scaled) and env (patched) differ
    assert re.search(r"^\+\s+replicas: 3$", same.stdout, re.MULTILINE), same.stdout
    obj = json.loads(kube.kubectl("get", "deploy", "web", "-o", "json").stdout)
    assert obj["spec"]["replicas"] == 2  # diff changed nothing (it is a dry run)


def test_logs_and_logs_follow(kube):
    wait_for(lambda: running_pods(kube), timeout=60, what="a running web pod")
    pod = running_pods(kube)[0]
    out = kube.kubectl("logs", pod).stdout
    assert out == f"hello from {pod}\n"
    lines, following = kube.first_lines("logs", "-f", pod, count=1)
    assert lines == [f"hello from {pod}"] and following  # -f keeps following


def test_exec_over_websocket(kube):
    wait_for(lambda: running_pods(kube), timeout=60, what="a running web pod")
    pod = running_pods(kube)[0]
    assert kube.kubectl("exec", pod, "--", "echo", "hi").stdout == "hi\n"
    failed = kube.kubectl("exec", pod, "--", "sh", "-c", "echo out; echo err >&2; exit 3",
                          check=False)
    assert (failed.returncode, failed.stdout) == (3, "out\n")
    assert "err\n" in failed.stderr and "command terminated with exit code 3" in failed.stderr
    assert kube.kubectl("exec", "-i", pod, "--", "cat", input="abc\n").stdout == "abc\n"
    wrong = kube.kubectl("exec", pod, "-c", "nope", "--", "true", check=False)
    assert wrong.returncode == 1 and "container nope is not valid" in wrong.stderr


def test_exec_with_a_terminal(kube):
    """`kubectl exec -it` needs a terminal on its side: `script` gives it one."""
    import shutil
    if not shutil.which("script"):
        pytest.skip("script (util-linux) is not installed")
    wait_for(lambda: running_pods(kube), timeout=60, what="a running web pod")
    pod = running_pods(kube)[0]
    command = (f"{kube.kubectl_path} exec -it {pod} -- sh -c "
               "'echo out; echo err >&2; exit 2'")
    result = subprocess.run(["script", "-qec", command, "/dev/null"], capture_output=True,
                            text=True, env=kube.env, timeout=60, check=False)
    assert result.returncode == 2, result.stdout + result.stderr
    # Both streams reach the terminal (their order is the process's pipes', not fixed).
    lines = result.stdout.replace("\r", "").splitlines()
    assert sorted(lines[:2]) == ["err", "out"], result.stdout


def test_get_watch_prints_the_table_and_keeps_watching(kube):
    wait_for(lambda: running_pods(kube), timeout=60, what="a running web pod")
    lines, watching = kube.first_lines("get", "pods", "-w", "-l", "app=web", count=2)
    assert re.match(r"NAME\s+READY\s+STATUS\s+RESTARTS\s+AGE$", lines[0]), lines
    assert re.match(r"web-\S+\s+\d/1\s+\S+\s+\d+", lines[1]), lines
    assert watching  # -w keeps watching


def test_delete_pod_returns_when_it_is_gone(kube):
    wait_for(lambda: running_pods(kube), timeout=60, what="a running web pod")
    pod = running_pods(kube)[0]
    out = kube.kubectl("delete", "pod", pod, "--grace-period=1").stdout
    assert out.strip() == f'pod "{pod}" deleted from default namespace'
    gone = kube.kubectl("get", "pod", pod, check=False)
    assert gone.returncode == 1 and "NotFound" in gone.stderr


def test_apply_server_side_with_conflicts(kube):
    manifest = DEPLOYMENT.replace("name: web", "name: ssa", 1).replace("replicas: 2",
                                                                       "replicas: 0")
    out = kube.kubectl("apply", "--server-side", "-f", "-", input=manifest).stdout
    assert out.strip() == "deployment.apps/ssa serverside-applied"
    again = kube.kubectl("apply", "--server-side", "-f", "-", input=manifest).stdout
    assert again.strip() == "deployment.apps/ssa serverside-applied"
    other = manifest.replace("replicas: 0", "replicas: 1")
    refused = kube.kubectl("apply", "--server-side", "--field-manager=other", "-f", "-",
                           input=other, check=False)
    assert refused.returncode == 1 and 'conflict with "kubectl"' in refused.stderr
    assert ".spec.replicas" in refused.stderr
    forced = kube.kubectl("apply", "--server-side", "--field-manager=other",
                          "--force-conflicts", "-f", "-", input=other)
    assert "serverside-applied" in forced.stdout
    obj = json.loads(kube.kubectl("get", "deploy", "ssa", "-o", "json",
                                  "--show-managed-fields").stdout)
    assert obj["spec"]["replicas"] == 1
    assert {e["manager"] for e in obj["metadata"]["managedFields"]} == {"kubectl", "other"}
    kube.kubectl("delete", "deploy", "ssa")


def test_unknown_fields_strict_by_default_warn_on_request(kube):
    odd = DEPLOYMENT.replace("name: web", "name: odd", 1).replace(
        "replicas: 2", "replicas: 0\n  replicaz: 1")
    refused = kube.kubectl("apply", "-f", "-", input=odd, check=False)
    assert refused.returncode == 1
    assert 'strict decoding error: unknown field "spec.replicaz"' in refused.stderr
    assert kube.kubectl("get", "deploy", "odd", check=False).returncode == 1  # not created
    warned = kube.kubectl("apply", "--validate=warn", "-f", "-", input=odd)
    assert warned.stdout.strip() == "deployment.apps/odd created"
    assert 'Warning: unknown field "spec.replicaz"' in warned.stderr
    kube.kubectl("delete", "deploy", "odd")


def test_namespaces(kube):
    namespace = "apiVersion: v1\nkind: Namespace\nmetadata: {name: team}\n"
    assert kube.kubectl("apply", "-f", "-", input=namespace).stdout.strip() == \
        "namespace/team created"
    kube.kubectl("apply", "-n", "team", "-f", "-", input=DEPLOYMENT.replace("replicas: 2",
                                                                            "replicas: 0"))
    listed = kube.kubectl("get", "ns").stdout
    assert re.search(r"^NAME\s+STATUS\s+AGE$", listed, re.MULTILINE), listed
    assert re.search(r"^team\s+Active\s+\S+$", listed, re.MULTILINE), listed
    assert kube.kubectl("delete", "ns", "team").stdout.strip() == 'namespace "team" deleted'
    assert kube.kubectl("get", "deploy", "-n", "team", "-o", "name").stdout == ""
    assert "team" not in kube.kubectl("get", "ns", "-o", "name").stdout
    refused = kube.kubectl("delete", "ns", "default", check=False)
    assert refused.returncode == 1 and "may not be deleted" in refused.stderr


def test_unauthenticated_kubectl_is_refused(kube, tmp_path):
    config = kube.kubeconfig.read_text()
    token = re.search(r"token: (\S+)", config).group(1)
    bad = tmp_path / "bad-kubeconfig"
    bad.write_text(config.replace(token, "not-the-token"))
    result = subprocess.run([kube.kubectl_path, "get", "pods"], check=False,
                            capture_output=True, text=True,
                            env={**kube.env, "KUBECONFIG": str(bad)}, timeout=60)
    assert result.returncode == 1 and "Unauthorized" in result.stderr, result.stderr


def test_delete_deployment(kube):
    out = kube.kubectl("delete", "deployment", "web").stdout
    assert out.strip() == 'deployment.apps "web" deleted from default namespace'
    wait_for(lambda: not kube.kubectl("get", "pods", "-o", "name").stdout.strip(),
             timeout=60, what="the deployment's pods gone")
    _ = Daemon  # the fixture's daemon is cleaned up (and checked for leaks) after the module


def test_a_taken_listen_address_is_a_clear_error(tmp_path):
    import socket
    import sys

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        daemon = Daemon(tmp_path)
        daemon.listen = f"127.0.0.1:{port}"
        result = subprocess.run([sys.executable, "-m", "tinykube.cli.main", *daemon.args()],
                                capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 1
    assert f"cannot listen on 127.0.0.1:{port}: Address already in use" in result.stderr
    assert "--listen none" in result.stderr
    links = subprocess.run(["ip", "link", "show", daemon.bridge], capture_output=True,
                           text=True, check=False)
    assert links.returncode != 0  # nothing was made on the host


SETTINGS = """
apiVersion: v1
kind: ConfigMap
metadata: {name: settings}
data: {color: blue, size: large}
"""
TOKEN = """
apiVersion: v1
kind: Secret
metadata: {name: tok}
stringData: {token: abc123}
"""


def test_config_maps_and_secrets_with_kubectl(kube):
    def run(*args, stdin=None):
        return kube.kubectl(*args, input=stdin).stdout

    assert run("create", "configmap", "app", "--from-literal=greeting=hello",
               "--from-literal=mode=fast").strip() == "configmap/app created"
    assert re.search(r"^NAME\s+DATA\s+AGE\napp\s+2\s+\S+$", run("get", "cm", "app"), re.M)
    assert run("create", "secret", "generic", "creds",
               "--from-literal=password=s3cr3t").strip() == "secret/creds created"
    assert re.search(r"^NAME\s+TYPE\s+DATA\s+AGE\ncreds\s+Opaque\s+1\s+\S+$",
                     run("get", "secret", "creds"), re.M)
    assert run("get", "secret", "creds", "-o", "jsonpath={.data.password}") == "czNjcjN0"
    described = run("describe", "secret", "creds")
    assert re.search(r"^password:\s+6 bytes$", described, re.M) and "s3cr3t" not in described
    assert re.search(r"^greeting:\n----\nhello$", run("describe", "configmap", "app"), re.M)

    assert run("apply", "-f", "-", stdin=SETTINGS).strip() == "configmap/settings created"
    assert run("apply", "-f", "-", stdin=SETTINGS).strip() == "configmap/settings unchanged"
    smaller = SETTINGS.replace(", size: large", "").replace("blue", "red")
    assert run("apply", "-f", "-", stdin=smaller).strip() == "configmap/settings configured"
    stored = json.loads(run("get", "cm", "settings", "-o", "json"))
    assert stored["data"] == {"color": "red"}  # kubectl's 3-way merge dropped `size`

    assert run("apply", "-f", "-", stdin=TOKEN).strip() == "secret/tok created"
    stored = json.loads(run("get", "secret", "tok", "-o", "json"))
    assert stored["data"] == {"token": "YWJjMTIz"} and "stringData" not in stored
    assert stored["type"] == "Opaque"
    assert run("delete", "cm", "app").strip().startswith('configmap "app" deleted')
