"""configwatch's filters: which Pod events can change downwardAPI files, and which pods
read a ConfigMap or Secret (volumes or env)."""

from tinykube.runtime import configwatch

DOWNWARD = {"name": "info", "downwardAPI": {"items": [
    {"path": "labels", "fieldRef": {"fieldPath": "metadata.labels"}}]}}


def pod(uid, labels, volumes=(), containers=()):
    return {"metadata": {"uid": uid, "labels": labels},
            "spec": {"volumes": list(volumes), "containers": list(containers)}}


def queued(watch):
    found = []
    while True:
        try:
            found.append(watch._pods_receive.receive_nowait()["metadata"]["labels"])
        except Exception:  # noqa: BLE001 - trio.WouldBlock: the queue is empty
            return found


def test_only_label_or_annotation_changes_of_pods_with_downward_files_are_queued():
    watch = configwatch.ConfigWatch(store=None, workers=list)
    watch.pod_changed(pod("a", {"x": "1"}))  # no downwardAPI volume: never
    watch.pod_changed(pod("b", {"x": "1"}, [DOWNWARD]))
    watch.pod_changed(pod("b", {"x": "1"}, [DOWNWARD]))  # a status write: same labels
    watch.pod_changed(pod("b", {"x": "2"}, [DOWNWARD]))
    assert queued(watch) == [{"x": "1"}, {"x": "2"}]
    watch.pod_gone("b")
    watch.pod_changed(pod("b", {"x": "2"}, [DOWNWARD]))  # a new pod with that uid
    assert queued(watch) == [{"x": "2"}]


def test_a_pod_reads_what_its_volumes_and_env_name():
    reader = pod("c", {}, [{"name": "v", "projected": {"sources": [
        {"secret": {"name": "s"}}, {"configMap": {"name": "m"}}]}}],
        [{"name": "app", "envFrom": [{"configMapRef": {"name": "env-cm"}}],
          "env": [{"name": "X", "valueFrom": {"secretKeyRef": {"name": "env-s",
                                                               "key": "k"}}}]}])
    for key in (("Secret", "s"), ("ConfigMap", "m"), ("ConfigMap", "env-cm"),
                ("Secret", "env-s")):
        assert configwatch._reads(reader, key), key
    assert not configwatch._reads(reader, ("ConfigMap", "s"))
