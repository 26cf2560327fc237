"""ConfigMaps and Secrets on a real daemon with real pods: configMap/secret/projected
volumes (files, modes, read-only, tmpfs for secrets, updated in place, subPath pinned),
configMapKeyRef/secretKeyRef/envFrom, pods waiting for what they need (FailedMount,
CreateContainerConfigError) and starting once it exists, and secrets kept out of logs,
events and describe."""

from __future__ import annotations

import base64
import json

import pytest

from tests.integration.daemon import wait_for

pytestmark = pytest.mark.root

SECRET_VALUE = "hunter2-" + "q" * 8


def config_map(name: str, data: dict) -> str:
    return json.dumps({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name},
                       "data": data})


def secret(name: str, string_data: dict) -> str:
    return json.dumps({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name},
                       "stringData": string_data})


def pod(name: str, volumes: list, mounts: list, *, env=None, env_from=None,
        restart: str = "Always", script: str = "sleep 3600") -> str:
    container = {"name": "c", "command": ["sh", "-c", script], "volumeMounts": mounts}
    if env:
        container["env"] = env
    if env_from:
        container["envFrom"] = env_from
    return json.dumps({
        "apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
        "spec": {"terminationGracePeriodSeconds": 1, "restartPolicy": restart,
                 "volumes": volumes, "containers": [container]}})


def sh(daemon, name: str, script: str) -> str:
    result = daemon.exec(name, "sh", "-c", script)
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def test_config_map_and_secret_volumes_env_and_updates_in_place(daemon):
    daemon.apply(config_map("app", {"greeting": "hello", "mode": "fast", "1bad": "x"}))
    daemon.apply(secret("creds", {"password": SECRET_VALUE, "user": "admin"}))
    daemon.apply(pod(
        "web",
        [{"name": "cfg", "configMap": {"name": "app"}},
         {"name": "sec", "secret": {"secretName": "creds", "defaultMode": 0o400,
                                    "items": [{"key": "password", "path": "db/pw"}]}},
         {"name": "all", "projected": {"sources": [
             {"configMap": {"name": "app", "items": [{"key": "mode", "path": "mode"}]}},
             {"secret": {"name": "creds", "items": [{"key": "user", "path": "user"}]}},
             {"downwardAPI": {"items": [{"path": "name",
                                         "fieldRef": {"fieldPath": "metadata.name"}}]}}]}}],
        [{"name": "cfg", "mountPath": "/etc/cfg"},
         {"name": "sec", "mountPath": "/etc/sec"},
         {"name": "all", "mountPath": "/etc/all"},
         {"name": "cfg", "mountPath": "/etc/pinned", "subPath": "greeting"}],
        env=[{"name": "PW", "valueFrom": {"secretKeyRef": {"name": "creds",
                                                           "key": "password"}}},
             {"name": "GREETING", "valueFrom": {"configMapKeyRef": {"name": "app",
                                                                    "key": "greeting"}}}],
        env_from=[{"configMapRef": {"name": "app"}},
                  {"prefix": "CFG_", "configMapRef": {"name": "app"}}]))
    daemon.wait_running("web")

    assert sh(daemon, "web", "cat /etc/cfg/greeting /etc/cfg/mode") == "hellofast"
    assert sh(daemon, "web", "cat /etc/sec/db/pw") == SECRET_VALUE
    assert sh(daemon, "web", "cat /etc/all/mode /etc/all/user /etc/all/name") == "fastadminweb"
    assert sh(daemon, "web", "cat /etc/pinned") == "hello"
    # Modes as given (defaultMode 0400 for the secret, 0644 default), the symlinked layout of
    # the atomic writer, and read-only mounts.
    assert sh(daemon, "web", "stat -L -c %a /etc/sec/db/pw /etc/cfg/greeting").split() == [
        "400", "644"]
    assert sh(daemon, "web", "readlink /etc/cfg/greeting").strip() == "..data/greeting"
    assert daemon.exec("web", "sh", "-c", "echo x > /etc/cfg/new").returncode != 0
    # Secret files are on a tmpfs, configMap files are not.
    assert sh(daemon, "web", "stat -f -c %T /etc/sec /etc/all /etc/cfg").split()[:2] == [
        "tmpfs", "tmpfs"]
    env = sh(daemon, "web", "env")
    assert f"PW={SECRET_VALUE}" in env and "GREETING=hello" in env
    lines = env.splitlines()
    assert "CFG_greeting=hello" in lines and "CFG_1bad=x" in lines and "mode=fast" in lines
    assert not any(line.startswith("1bad=") for line in lines)  # not a variable name
    events = daemon.client.events(daemon.pod("web"))
    assert any(e["reason"] == "InvalidEnvironmentVariableNames" and "[1bad]" in e["message"]
               for e in events), events

    # Updated in place: the volume follows the ConfigMap; the subPath file does not (as in
    # Kubernetes); the environment of the running process does not change.
    daemon.apply(config_map("app", {"greeting": "bonjour", "mode": "slow", "1bad": "x"}))
    wait_for(lambda: sh(daemon, "web", "cat /etc/cfg/greeting") == "bonjour", timeout=30,
             what="configMap volume updated")
    wait_for(lambda: sh(daemon, "web", "cat /etc/all/mode") == "slow", timeout=30,
             what="projected volume updated")
    assert sh(daemon, "web", "cat /etc/pinned") == "hello"
    daemon.apply(secret("creds", {"password": "rotated", "user": "admin"}))
    wait_for(lambda: sh(daemon, "web", "cat /etc/sec/db/pw") == "rotated", timeout=30,
             what="secret volume updated")
    # One version directory at a time: old ones are removed.
    listing = sh(daemon, "web", "ls -a /etc/cfg").split()
    assert len([n for n in listing if n.startswith("..") and n not in ("..", "..data")]) == 1

    # Never in events, describe or the daemon's log.
    for e in daemon.client.list("Event", "default"):
        assert SECRET_VALUE not in json.dumps(e)
    described = daemon.cli("describe", "secret", "creds").stdout
    assert "password:  7 bytes" in described and "Type:  Opaque" in described
    assert "rotated" not in described and SECRET_VALUE not in described
    assert base64.b64encode(b"rotated").decode() not in described
    assert SECRET_VALUE not in daemon.log_path.read_text()

    table = daemon.cli("get", "cm,secrets").stdout
    assert "configmap/app" in table and "secret/creds" in table and "Opaque" in table


def test_a_missing_config_map_volume_keeps_the_pod_pending_until_it_exists(daemon):
    daemon.apply(pod("waiter", [{"name": "cfg", "configMap": {"name": "later"}}],
                     [{"name": "cfg", "mountPath": "/etc/cfg"}],
                     script="cat /etc/cfg/k; sleep 3600"))
    message = 'MountVolume.SetUp failed for volume "cfg" : configmap "later" not found'
    wait_for(lambda: any(e["reason"] == "FailedMount" and e["message"] == message
                         for e in daemon.client.events(daemon.pod("waiter"))),
             timeout=30, what="FailedMount")
    assert daemon.pod("waiter")["status"]["phase"] == "Pending"
    row = daemon.cli("get", "pods", "waiter").stdout.splitlines()[1].split()
    assert row[1:3] == ["0/1", "ContainerCreating"], row
    daemon.apply(config_map("later", {"k": "arrived"}))
    daemon.wait_running("waiter", timeout=60)
    wait_for(lambda: "arrived" in daemon.cli("logs", "waiter").stdout, what="file read")


def test_a_missing_secret_key_in_env_is_create_container_config_error_until_it_exists(daemon):
    daemon.apply(secret("partial", {"other": "x"}))
    daemon.apply(pod("envwait", [], [], restart="Never", script="echo pw=$PW; sleep 3600",
                     env=[{"name": "PW", "valueFrom": {"secretKeyRef": {
                         "name": "partial", "key": "pw"}}}]))

    def waiting(p):
        state = p["status"]["containerStatuses"][0]["state"]
        return state.get("waiting", {}).get("reason") == "CreateContainerConfigError"
    waited = daemon.wait_pod("envwait", waiting, timeout=30, what="CreateContainerConfigError")
    message = waited["status"]["containerStatuses"][0]["state"]["waiting"]["message"]
    assert "couldn't find key pw in Secret default/partial" in message
    assert waited["status"]["phase"] == "Pending"
    row = daemon.cli("get", "pods", "envwait").stdout.splitlines()[1].split()
    assert row[2] == "CreateContainerConfigError", row
    daemon.apply(secret("partial", {"other": "x", "pw": "finally"}))
    daemon.wait_running("envwait", timeout=60)
    wait_for(lambda: "pw=finally" in daemon.cli("logs", "envwait").stdout, what="env read")


def test_optional_sources_that_are_missing_are_empty(daemon):
    daemon.apply(pod("opt", [{"name": "cfg", "configMap": {"name": "nope", "optional": True}}],
                     [{"name": "cfg", "mountPath": "/etc/cfg"}],
                     env=[{"name": "X", "valueFrom": {"configMapKeyRef": {
                         "name": "nope", "key": "k", "optional": True}}}],
                     env_from=[{"secretRef": {"name": "nope", "optional": True}}]))
    daemon.wait_running("opt")
    assert sh(daemon, "opt", "ls /etc/cfg; echo X=${X-unset}").split() == ["X=unset"]


def test_config_objects_are_validated_with_kubernetes_messages(daemon):
    result = daemon.cli("apply", "-f", "-", input=config_map("bad", {"no spaces": "x"}),
                        check=False)
    assert result.returncode != 0
    assert "data[no spaces]: Invalid value" in result.stderr + result.stdout
    immutable = json.dumps({"apiVersion": "v1", "kind": "ConfigMap",
                            "metadata": {"name": "frozen"}, "data": {"a": "1"},
                            "immutable": True})
    daemon.apply(immutable)
    result = daemon.cli("apply", "-f", "-", input=immutable.replace('"1"', '"2"'), check=False)
    assert result.returncode != 0
    assert "field is immutable when `immutable` is set" in result.stderr + result.stdout
    assert daemon.client.get("ConfigMap", "frozen")["data"] == {"a": "1"}


def test_a_running_pod_keeps_its_files_when_the_source_goes_even_across_a_restart(daemon):
    daemon.apply(config_map("gone", {"k": "kept"}))
    daemon.apply(pod("keeper", [{"name": "cfg", "configMap": {"name": "gone"}}],
                     [{"name": "cfg", "mountPath": "/etc/cfg"}]))
    running = daemon.wait_running("keeper")
    pid = running["status"]["containerStatuses"][0]["containerID"]
    daemon.client.delete("ConfigMap", "gone", "default")
    daemon.stop()
    daemon.start()
    # Re-adopted, not restarted, and the files stay (as the kubelet keeps a mounted volume).
    wait_for(lambda: daemon.exec("keeper", "cat", "/etc/cfg/k").stdout == "kept", timeout=30,
             what="the volume's files after the restart")
    after = daemon.pod("keeper")["status"]["containerStatuses"][0]
    assert after["containerID"] == pid and after["restartCount"] == 0


def test_fs_group_lets_a_non_root_container_read_its_secret_and_host_users_cannot(daemon):
    daemon.apply(secret("fsg", {"key": "for-the-group"}))
    manifest = json.loads(pod("reader", [{"name": "s", "secret": {"secretName": "fsg",
                                                                 "defaultMode": 0o400}}],
                              [{"name": "s", "mountPath": "/etc/s"}]))
    manifest["spec"]["securityContext"] = {"runAsUser": 1000, "fsGroup": 2000}
    daemon.apply(json.dumps(manifest))
    daemon.wait_running("reader")
    # 0400 | 0440 (read-only volume), group fsGroup, as the kubelet's SetVolumeOwnership.
    assert sh(daemon, "reader", "cat /etc/s/key") == "for-the-group"
    assert sh(daemon, "reader", "stat -L -c '%a %g' /etc/s/key").split() == ["440", "2000"]
    uid = daemon.pod("reader")["metadata"]["uid"]
    volumes_dir = daemon.root / "pods" / uid / "volumes"
    assert (volumes_dir.stat().st_mode & 0o777) == 0o750
