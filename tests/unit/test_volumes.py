"""Volume sources: one table in the model, one preparation per source in the runtime."""

import pytest

from tinykube.model import schema, validation
from tinykube.runtime import volumes


def test_the_runtime_prepares_every_source_the_model_accepts():
    assert set(volumes.PREPARE) == set(schema.VOLUME_SOURCES)


def test_prepare_volumes_makes_each_source(tmp_path):
    pod = {"metadata": {"uid": "u1", "namespace": "ns"}, "spec": {"volumes": [
        {"name": "scratch", "emptyDir": {}},
        {"name": "data", "persistentVolumeClaim": {"claimName": "data-0"}},
        {"name": "host", "hostPath": {"path": str(tmp_path / "host"), "type": "DirectoryOrCreate"}},
    ]}}
    paths = volumes.prepare_volumes(pod, tmp_path)
    assert paths == {"scratch": tmp_path / "pods" / "u1" / "volumes" / "scratch",
                     "data": tmp_path / "volumes" / "ns" / "data-0",
                     "host": tmp_path / "host"}
    assert all(path.is_dir() for path in paths.values())


@pytest.mark.parametrize("source", sorted(schema.VOLUME_SOURCES))
def test_two_sources_in_one_volume_are_refused_for_every_source(source):
    # The "one source per volume" rule reads the same table, so a new source cannot slip by.
    other = next(s for s in schema.VOLUME_SOURCES if s != source)
    samples = {"emptyDir": {}, "hostPath": {"path": "/tmp"},
               "persistentVolumeClaim": {"claimName": "c"}, "configMap": {"name": "c"},
               "secret": {"secretName": "s"}, "downwardAPI": {}, "projected": {"sources": []}}
    volume = {"name": "v", source: samples[source], other: samples[other]}
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "namespace": "default"},
           "spec": {"containers": [{"name": "c", "image": "x", "command": ["true"]}],
                    "volumes": [volume]}}
    errors = [str(e) for e in validation.validate(pod)]
    assert any("may not specify more than 1 volume type" in e for e in errors), errors


def test_a_volume_without_a_known_source_names_the_field(tmp_path):
    pod = {"metadata": {"uid": "u1"}, "spec": {"volumes": [{"name": "v", "nfs": {}}]}}
    with pytest.raises(volumes.VolumeError, match=r"spec.volumes\[0\]: needs exactly one"):
        volumes.prepare_volumes(pod, tmp_path)
