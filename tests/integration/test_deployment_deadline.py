"""A Deployment older than its progressDeadlineSeconds that loses a pod (issue 14).

Regression: the progress re-check was due in the past, so the Deployment was re-queued "now"
forever, and the work queue never yielded: 100% CPU, the API silent, again after a restart.
Now the pod is replaced and `/healthz` keeps answering within 100 ms throughout.
"""

from __future__ import annotations

import json
import time

import pytest

from tests.integration.daemon import wait_for
from tests.integration.health import assert_healthz_fast

pytestmark = pytest.mark.root

DEPLOYMENT = {
    "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "old"},
    "spec": {"replicas": 2, "progressDeadlineSeconds": 1,
             "selector": {"matchLabels": {"app": "old"}},
             "template": {"metadata": {"labels": {"app": "old"}},
                          "spec": {"terminationGracePeriodSeconds": 1,
                                   "containers": [{"name": "c",
                                                   "command": ["sleep", "3600"]}]}}},
}


def available(daemon) -> bool:
    d = daemon.client.get("Deployment", "old", "default")
    return (d.get("status") or {}).get("availableReplicas") == 2


def test_deadline_passed_deployment_replaces_a_lost_pod_and_stays_responsive(daemon):
    daemon.apply(json.dumps(DEPLOYMENT))
    wait_for(lambda: available(daemon), what="deployment available")
    time.sleep(2.5)  # well past progressDeadlineSeconds since the last progress
    pods = daemon.client.list("Pod", "default", label_selector="app=old")
    lost = pods[0]["metadata"]["name"]
    daemon.client.delete("Pod", lost, "default", grace_period=0)
    assert_healthz_fast(daemon.socket)

    def replaced() -> bool:
        names = {p["metadata"]["name"] for p in
                 daemon.client.list("Pod", "default", label_selector="app=old")
                 if (p.get("status") or {}).get("phase") == "Running"}
        return len(names) == 2 and lost not in names
    wait_for(replaced, what="the lost pod replaced")
    wait_for(lambda: available(daemon), what="deployment available again")
    assert_healthz_fast(daemon.socket)
    daemon.stop()
    daemon.start()  # and again after a restart
    assert_healthz_fast(daemon.socket)
