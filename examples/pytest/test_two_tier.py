"""A two-tier app under test: web (a Deployment) reading from db (a StatefulSet), each pod a
real process with its own network namespace, run by the `tinykube` fixture that installing
tinykube provides. Run: `sudo pytest` here (or `pytest -n 2`)."""

import http.client
import threading
from pathlib import Path

import pytest

from tinykube.testing import wait_for

# Applied before every test of this module, which starts once all of it is Ready (the
# Deployment rolled out, the StatefulSet's pod ready); deleted again after each test.
pytestmark = pytest.mark.tinykube(manifests=["db.yaml", "web.yaml"])
HERE = Path(__file__).parent


def web_pods(tinykube):
    return [p["metadata"]["name"] for p in tinykube.get("pods", selector="app=web")
            if "deletionTimestamp" not in p["metadata"]]  # not the terminating ones


def answered(tinykube, pod):
    response = tinykube.http_get(pod, 8080, "/")
    return response if response.status == 200 else None


def test_every_web_pod_reads_from_the_db(tinykube):
    pods = web_pods(tinykube)
    assert len(pods) == 2
    for pod in pods:
        # Ready says the web server is up; the db's DNS name follows the db's endpoints a
        # moment later (the web answers 503 until then).
        response = wait_for(lambda pod=pod: answered(tinykube, pod), timeout=30,
                            what=f"{pod} answering 200")
        version, served_by, db_row = response.text.split(" ", 2)
        assert (version, served_by) == ("v1", pod)
        assert db_row.strip() == "db-0 rows=42"


def test_db_pod_is_reachable_by_exec_and_logs(tinykube):
    code, output = tinykube.exec("db-0", ["python3", "-c",
                                          "import socket; print(socket.gethostname())"])
    assert (code, output) == (0, "db-0\n")
    assert tinykube.exec("db-0", "exit 3").exit_code == 3
    assert "db listening on 7001" in tinykube.logs("db-0")


def test_rolling_update_keeps_serving(tinykube):
    """Requests through the web Service never fail while every web pod is replaced."""
    address = tinykube.get("service/web")["spec"]["clusterIP"]
    answers, failures, retried = [], [], []
    stop = threading.Event()

    def get():
        """One GET through the Service: (status, body), or raises OSError."""
        conn = http.client.HTTPConnection(address, 80, timeout=5)
        try:
            conn.request("GET", "/")
            response = conn.getresponse()
            return response.status, response.read().decode()
        finally:
            conn.close()

    def load():
        while not stop.is_set():
            # As an HTTP client does for an idempotent GET: one retry when a connection
            # breaks. (Rarely, on a loaded machine, a connection to a pod that is just
            # being removed gets no answer.) Two failures in a row, or any error status,
            # fail the test.
            for attempt in (1, 2):
                try:
                    status, body = get()
                except OSError as e:
                    (retried if attempt == 1 else failures).append(repr(e))
                    continue
                (answers if status == 200 else failures).append(body)
                break

    before = set(web_pods(tinykube))
    worker = threading.Thread(target=load)
    worker.start()
    try:
        tinykube.apply((HERE / "web.yaml").read_text().replace("value: v1", "value: v2"))
        tinykube.wait("deployment/web", timeout=180)  # Ready: the new version rolled out
        # The Service's endpoints follow the pods a moment later (as kube-proxy's do): keep
        # the load on until it has answered v2 ten times in a row.
        wait_for(lambda: len(answers) >= 10 and all(a.startswith("v2 ") for a in answers[-10:]),
                 timeout=60, what="the web Service answering only v2")
    finally:
        stop.set()
        worker.join()

    total = len(failures) + len(answers)
    assert not failures, f"{len(failures)} of {total} requests failed: {failures[:5]}"
    assert len(retried) <= 3, f"{len(retried)} of {total} requests needed a retry: {retried[:5]}"
    versions = [answer.split(" ", 1)[0] for answer in answers]
    assert "v1" in versions and "v2" in versions  # served throughout, old and new
    after = set(web_pods(tinykube))
    assert len(after) == 2 and not after & before  # every pod was replaced
    for pod in after:
        assert tinykube.http_get(pod, 8080, "/").text.startswith(f"v2 {pod} db-0")

