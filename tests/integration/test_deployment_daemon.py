"""Deployments on a real daemon with real pods and real readiness probes, driven through the
`tinykube` CLI as a user would.

The rollout fences are observed, never assumed: a `Sampler` thread watches the deployment's
pods and after every event the API server sends records how many pods are active (not
terminating: Kubernetes' surge fence does not count pods being deleted), how many exist
(terminating ones included), how many are Ready and not terminating (available:
minReadySeconds is 0), and which templates (pod-template-hash) have pods. The assertions run
over every sample taken during a rollout.

Pods run `python3 -m http.server` on 0.0.0.0 (probes target the pod IP, as in Kubernetes),
under a shell that exits on SIGTERM, with a tcpSocket readiness probe every second; a
template change is an env var change.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import pytest

from tests.integration.daemon import Daemon, PodWatch, is_ready, wait_for
from tinykube.client import Client, StreamIdle
from tinykube.controllers.deployment import util
from tinykube.testing.daemon import SLOWDOWN

pytestmark = pytest.mark.root

PORT = 8080
SELECTOR = "app=web"


def deployment(version: str = "1", replicas: int = 6, cause: str | None = None,
               probe_port: int = PORT, command: list[str] | None = None,
               **spec: Any) -> str:
    """Deployment `web` as a manifest (JSON is YAML); `spec` adds or overrides spec fields."""
    container = {
        "name": "web",
        # sh exits on SIGTERM (its trap) and the server with it: the server, as PID 1 of the
        # container, would ignore SIGTERM (as under Kubernetes) and wait for the grace's SIGKILL.
        "command": command or ["sh", "-c", "trap 'exit 0' TERM; python3 -m http.server "
                               f"{PORT} --bind 0.0.0.0 & wait"],
        "env": [{"name": "VERSION", "value": version}],
        "readinessProbe": {"tcpSocket": {"port": probe_port}, "periodSeconds": 1},
    }
    obj: dict[str, Any] = {
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "web"},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": "web"}},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {"terminationGracePeriodSeconds": 5, "containers": [container]},
            },
            **spec,
        },
    }
    if cause is not None:
        obj["metadata"]["annotations"] = {util.CHANGE_CAUSE: cause}
    return json.dumps(obj)


@dataclass(frozen=True)
class Sample:
    existing: int  # pods whose processes may run: terminating included, finished ones not
    active: int  # pods not being deleted: what the surge fence bounds
    available: int  # Ready and not terminating
    hashes: frozenset[str]  # templates with a pod counted in `existing`


class Sampler(PodWatch):
    """Watches the deployment's pods in a thread; `samples` gets one `Sample` per event."""

    def __init__(self, daemon: Daemon) -> None:
        super().__init__(daemon, SELECTOR)
        self.pods: dict[str, dict] = {}
        self.samples: list[Sample] = []

    def record(self, type_: str, pod: dict) -> None:
        uid = pod["metadata"]["uid"]
        if type_ == "DELETED":
            self.pods.pop(uid, None)
        else:
            self.pods[uid] = pod
        self.samples.append(self._sample())

    def _sample(self) -> Sample:
        pods = self.pods.values()
        available = [p for p in pods if is_ready(p) and not p["metadata"].get("deletionTimestamp")]
        # A deleted pod is written Succeeded/Failed once its containers are stopped, a
        # moment before it leaves the store: it holds nothing the surge fence is about.
        unfinished = [p for p in pods if (p.get("status") or {}).get("phase")
                      not in ("Succeeded", "Failed")]
        active = [p for p in unfinished if not p["metadata"].get("deletionTimestamp")]
        return Sample(len(unfinished), len(active), len(available),
                      frozenset(p["metadata"]["labels"].get(util.HASH_LABEL, "")
                                for p in unfinished))

    def current(self) -> Sample | None:
        with self.lock:
            return self.samples[-1] if self.samples else None

    def mark_settled(self, replicas: int, timeout: float = 30) -> int:
        """Wait until the watch has seen exactly `replicas` pods, all available, of one
        template; returns the position from which the next rollout's samples start."""
        def settled() -> bool:
            s = self.current()
            return s is not None and s.existing == s.available == replicas and \
                len(s.hashes) == 1
        wait_for(settled, timeout=timeout, what=f"sampler to see {replicas} settled pods "
                                                f"(last {self.current()})")
        with self.lock:
            return len(self.samples)

    def since(self, mark: int) -> list[Sample]:
        assert self.error is None, f"pod watch failed: {self.error!r}"
        with self.lock:
            return self.samples[mark:]


# ---- helpers --------------------------------------------------------------------------------

def replica_sets(daemon: Daemon) -> dict[str, dict]:
    return {rs["metadata"]["name"]: rs for rs in daemon.client.list("ReplicaSet", "default")}


def rs_of_revision(daemon: Daemon, revision: int) -> dict:
    found = [rs for rs in replica_sets(daemon).values() if util.revision(rs) == revision]
    assert len(found) == 1, f"replica sets with revision {revision}: {found}"
    return found[0]


def rollout_status(daemon: Daemon, timeout: str | None = None) -> Any:
    # The default deadline stretches with the machine (the VM lane's emulation), as wait_for's do.
    timeout = timeout or f"{90 * SLOWDOWN:g}s"
    return daemon.cli("rollout", "status", "deployment/web", "--timeout", timeout,
                      check=False, timeout=150)


def assert_rolled_out(daemon: Daemon) -> None:
    result = rollout_status(daemon)
    assert result.returncode == 0, result.stdout + result.stderr
    assert 'deployment "web" successfully rolled out' in result.stdout


def pods_by_hash(daemon: Daemon) -> dict[str, list[dict]]:
    found: dict[str, list[dict]] = {}
    for pod in daemon.client.list("Pod", "default", label_selector=SELECTOR):
        found.setdefault(pod["metadata"]["labels"][util.HASH_LABEL], []).append(pod)
    return found


def template_version(rs: dict) -> str:
    env = rs["spec"]["template"]["spec"]["containers"][0]["env"]
    return next(e["value"] for e in env if e["name"] == "VERSION")


def assert_fences(samples: list[Sample], max_pods: int, min_available: int) -> None:
    assert samples, "no pod events during the rollout"
    worst_active = max(s.active for s in samples)
    worst_available = min(s.available for s in samples)
    assert worst_active <= max_pods, \
        f"surge fence broken: {worst_active} active pods > {max_pods}: {samples}"
    assert worst_available >= min_available, \
        f"availability fence broken: {worst_available} available < {min_available}: {samples}"


# ---- RollingUpdate --------------------------------------------------------------------------

ROLLING = {"strategy": {"type": "RollingUpdate",
                        "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "25%"}}}
# 6 replicas at 25%/25%: surge rounds up (1.5 -> 2), unavailable rounds down (1.5 -> 1).
MAX_PODS, MIN_AVAILABLE = 6 + 2, 6 - 1


def test_rolling_update_keeps_fences_completes_and_undo_reuses_the_old_replica_set(daemon):
    with Sampler(daemon) as sampler:
        daemon.apply(deployment("1", cause="version 1", **ROLLING))
        assert_rolled_out(daemon)
        first = rs_of_revision(daemon, 1)

        mark = sampler.mark_settled(6)
        daemon.apply(deployment("2", cause="version 2", **ROLLING))
        assert_rolled_out(daemon)
        rollout = sampler.since(mark)
        assert_fences(rollout, MAX_PODS, MIN_AVAILABLE)
        second = rs_of_revision(daemon, 2)
        assert template_version(second) == "2"
        assert {len(s.hashes) for s in rollout} >= {2}, "old and new pods never overlapped"

        # All six pods are the new template; the old set is kept, scaled to zero. As in
        # Kubernetes, the rollout is complete while old pods may still be terminating.
        new_hash = second["metadata"]["labels"][util.HASH_LABEL]
        by_hash = wait_for(lambda: (found := pods_by_hash(daemon)).keys() == {new_hash}
                           and found, timeout=30, what="the old pods to finish terminating")
        assert len(by_hash[new_hash]) == 6
        assert replica_sets(daemon)[first["metadata"]["name"]]["spec"]["replicas"] == 0

        history = daemon.cli("rollout", "history", "deployment/web").stdout
        rows = [line.split(None, 1) for line in history.splitlines()[2:]]
        assert rows == [["1", "version 1"], ["2", "version 2"]], history
        shown = daemon.cli("rollout", "history", "deployment/web", "--revision", "1").stdout
        assert "with revision #1" in shown and "VERSION:\t1" in shown, shown
        assert "kubernetes.io/change-cause: version 1" in shown, shown

        # Undo: revision 1's template comes back through its own replica set, now revision 3.
        mark = sampler.mark_settled(6)
        out = daemon.cli("rollout", "undo", "deployment/web").stdout
        assert "deployment.apps/web rolled back" in out
        assert_rolled_out(daemon)
        assert_fences(sampler.since(mark), MAX_PODS, MIN_AVAILABLE)

    sets = replica_sets(daemon)
    assert set(sets) == {first["metadata"]["name"], second["metadata"]["name"]}, \
        "undo made a third replica set"
    reused = sets[first["metadata"]["name"]]
    assert reused["metadata"]["uid"] == first["metadata"]["uid"]
    assert util.revision(reused) == 3 and reused["spec"]["replicas"] == 6
    assert reused["metadata"]["annotations"][util.REVISION_HISTORY] == "1"
    assert template_version(reused) == "1"
    d = daemon.client.get("Deployment", "web")
    assert util.revision(d) == 3
    assert d["metadata"]["annotations"][util.CHANGE_CAUSE] == "version 1"
    # As after the first rollout: complete while revision 2's pods may still be terminating.
    first_hash = first["metadata"]["labels"][util.HASH_LABEL]
    wait_for(lambda: list(pods_by_hash(daemon)) == [first_hash], timeout=30,
             what="revision 2's pods to finish terminating")
    history = daemon.cli("rollout", "history", "deployment/web").stdout
    assert [line.split(None, 1) for line in history.splitlines()[2:]] == \
        [["2", "version 2"], ["3", "version 1"]], history


# ---- a broken template stalls -----------------------------------------------------------------

def stall_point(daemon: Daemon, old_name: str) -> bool:
    d = daemon.client.get("Deployment", "web")
    old = replica_sets(daemon)[old_name]
    return d["status"].get("updatedReplicas") == 3 and old["spec"]["replicas"] == 5

NEVER_READY = {"probe_port": PORT + 1}  # the server listens on 8080, the probe knocks on 8081
EXITS = {"command": ["sh", "-c", "exit 3"]}  # crash-loops: never ready


@pytest.mark.parametrize("broken", [NEVER_READY, EXITS], ids=["never-ready", "exits"])
def test_broken_template_stalls_with_old_pods_serving(daemon, broken):
    deadline = {"progressDeadlineSeconds": 10, **ROLLING}
    with Sampler(daemon) as sampler:
        daemon.apply(deployment("1", **deadline))
        assert_rolled_out(daemon)
        old = rs_of_revision(daemon, 1)
        old_hash = old["metadata"]["labels"][util.HASH_LABEL]

        mark = sampler.mark_settled(6)
        daemon.apply(deployment("2", **deadline, **broken))
        # R=6, surge 2, unavailable 1: new grows to 2, old shrinks to 5, new grows to 3, and
        # there it stalls (5 old available = minAvailable, 8 pods = the surge bound).
        wait_for(lambda: stall_point(daemon, old["metadata"]["name"]), timeout=60,
                 what="the rollout to stall at old=5, new=3")
        short = rollout_status(daemon, "3s")
        assert short.returncode != 0, short.stdout
        assert "timed out waiting for the condition" in short.stderr, short.stderr

        stalled = rollout_status(daemon, "60s")
        assert stalled.returncode != 0, stalled.stdout
        assert 'deployment "web" exceeded its progress deadline' in stalled.stderr, \
            stalled.stderr + stalled.stdout
        assert_fences(sampler.since(mark), MAX_PODS, MIN_AVAILABLE)

    # The stall holds: old pods serve (at least minAvailable, all Ready), new ones are not.
    assert stall_point(daemon, old["metadata"]["name"])
    pods = pods_by_hash(daemon)
    serving = [p for p in pods[old_hash] if is_ready(p)
               and not p["metadata"].get("deletionTimestamp")]
    assert len(serving) >= MIN_AVAILABLE, pods[old_hash]
    new = rs_of_revision(daemon, 2)
    new_pods = pods[new["metadata"]["labels"][util.HASH_LABEL]]
    assert new_pods and not any(is_ready(p) for p in new_pods)
    d = daemon.client.get("Deployment", "web")
    progressing = util.get_condition(d["status"], util.PROGRESSING)
    assert progressing["status"] == "False" and progressing["reason"] == util.TIMED_OUT


def test_undo_of_a_stalled_rollout_recovers(daemon):
    with Sampler(daemon) as sampler:
        daemon.apply(deployment("1", **ROLLING))
        assert_rolled_out(daemon)
        old = rs_of_revision(daemon, 1)
        mark = sampler.mark_settled(6)
        daemon.apply(deployment("2", **ROLLING, **NEVER_READY))
        wait_for(lambda: stall_point(daemon, old["metadata"]["name"]), timeout=60,
                 what="the rollout to stall at old=5, new=3")
        daemon.cli("rollout", "undo", "deployment/web")
        assert_rolled_out(daemon)
        assert_fences(sampler.since(mark), MAX_PODS, MIN_AVAILABLE)
    assert list(pods_by_hash(daemon)) == \
        [rs_of_revision(daemon, 3)["metadata"]["labels"][util.HASH_LABEL]]
    assert len(replica_sets(daemon)) == 2


# ---- Recreate -------------------------------------------------------------------------------

def test_recreate_never_runs_old_and_new_pods_together(daemon):
    recreate = {"strategy": {"type": "Recreate"}}
    with Sampler(daemon) as sampler:
        daemon.apply(deployment("1", replicas=4, **recreate))
        assert_rolled_out(daemon)
        mark = sampler.mark_settled(4)
        daemon.apply(deployment("2", replicas=4, **recreate))
        assert_rolled_out(daemon)
        # The watch thread can lag well behind the API (the VM lane's emulation): take the
        # samples only once it has seen the rollout's end, all four pods of the new template.
        new_hash = rs_of_revision(daemon, 2)["metadata"]["labels"][util.HASH_LABEL]
        wait_for(lambda: (s := sampler.current()) is not None and s.hashes == {new_hash}
                 and s.existing == s.available == 4,
                 what=f"the sampler to see 4 available new pods (last {sampler.current()})")
        samples = sampler.since(mark)
    mixed = [s for s in samples if len(s.hashes) > 1]
    assert not mixed, f"old and new pods existed together: {mixed}"
    assert any(s.existing == 0 for s in samples), "never went through zero pods"
    assert max(s.existing for s in samples) == 4
    assert len(pods_by_hash(daemon)) == 1


# ---- the rest of the rollout CLI ------------------------------------------------------------

def test_pause_resume_restart_history_get_and_describe(daemon):
    small = {"replicas": 3, **ROLLING}
    daemon.apply(deployment("1", cause="first", **small))
    assert_rolled_out(daemon)

    table = daemon.cli("get", "deploy").stdout.splitlines()
    assert table[0].split() == ["NAME", "READY", "UP-TO-DATE", "AVAILABLE", "AGE"]
    assert table[1].split()[:4] == ["web", "3/3", "3", "3"]

    assert "deployment.apps/web paused" in daemon.cli("rollout", "pause",
                                                      "deployment/web").stdout
    daemon.apply(deployment("2", cause="second", **small))
    daemon.apply(deployment("3", cause="third", **small))

    def observed() -> bool:
        d = daemon.client.get("Deployment", "web")
        return d["status"].get("observedGeneration") == d["metadata"]["generation"]
    wait_for(observed, what="the paused edits to be observed")
    assert daemon.client.get("Deployment", "web")["spec"]["paused"] is True, \
        "apply unpaused the deployment"
    assert len(replica_sets(daemon)) == 1, "a paused deployment rolled out"

    assert "deployment.apps/web resumed" in daemon.cli("rollout", "resume",
                                                       "deployment/web").stdout
    assert_rolled_out(daemon)
    sets = replica_sets(daemon)
    assert len(sets) == 2, f"two edits while paused made {len(sets) - 1} rollouts"
    assert template_version(rs_of_revision(daemon, 2)) == "3"

    before = {p["metadata"]["uid"] for p in daemon.client.list("Pod", "default")}
    assert "deployment.apps/web restarted" in daemon.cli("rollout", "restart",
                                                         "deployment/web").stdout
    assert_rolled_out(daemon)
    restarted = rs_of_revision(daemon, 3)
    assert "kubectl.kubernetes.io/restartedAt" in \
        restarted["spec"]["template"]["metadata"]["annotations"]
    wait_for(lambda: len(daemon.client.list("Pod", "default")) == 3, timeout=30,
             what="old pods gone after the restart")
    after = {p["metadata"]["uid"] for p in daemon.client.list("Pod", "default")}
    assert not before & after, "restart kept pods"

    history = daemon.cli("rollout", "history", "deployment/web").stdout
    assert history.splitlines()[0] == "deployment.apps/web"
    assert [line.split(None, 1) for line in history.splitlines()[2:]] == \
        [["1", "first"], ["2", "third"], ["3", "third"]], history

    described = daemon.cli("describe", "deploy", "web").stdout
    assert "ScalingReplicaSet" in described, described
    assert f"Scaled up replica set {restarted['metadata']['name']} to" in described, described


def test_resume_is_first_written_as_progressing_unknown(daemon):
    """`rollout resume`: as Kubernetes' checkPausedConditions, the controller first writes
    Progressing=Unknown/DeploymentResumed on its own, so a watch sees it before the rollout's
    ReplicaSetUpdated / NewReplicaSetAvailable."""
    small = {"replicas": 2, **ROLLING}
    daemon.apply(deployment("1", **small))
    assert_rolled_out(daemon)
    daemon.cli("rollout", "pause", "deployment/web")
    daemon.apply(deployment("2", **small))

    def progressing(d: dict) -> tuple[str, str] | None:
        cond = util.get_condition(d.get("status") or {}, util.PROGRESSING)
        return (cond["status"], cond["reason"]) if cond else None
    wait_for(lambda: progressing(daemon.client.get("Deployment", "web")) ==
             ("Unknown", "DeploymentPaused"), what="the pause noted on Progressing")
    start = daemon.client.get("Deployment", "web")["metadata"]["resourceVersion"]
    daemon.cli("rollout", "resume", "deployment/web")
    assert_rolled_out(daemon)
    seen: list[tuple[str, str]] = []
    with Client(daemon.socket) as client:
        try:  # every change since the resume, replayed from the watch cache
            for _, obj in client.watch("Deployment", "default", name="web",
                                       resource_version=start, idle_timeout=2):
                now = progressing(obj)
                if now is not None and (not seen or seen[-1] != now):
                    seen.append(now)
                if now == ("True", "NewReplicaSetAvailable"):
                    break
        except StreamIdle:
            pass
    after_pause = [state for state in seen if state != ("Unknown", "DeploymentPaused")]
    assert after_pause[0] == ("Unknown", "DeploymentResumed"), seen
    assert after_pause[-1] == ("True", "NewReplicaSetAvailable"), seen
