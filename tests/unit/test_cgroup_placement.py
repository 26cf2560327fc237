"""The cgroup placement is pinned in the runtime dir so later daemons and `reset` find pods
started from another session's cgroup."""

import json

from tinykube.runtime.cgroups import detect_pinned
from tinykube.runtime.layout import cgroup_placement


def test_first_start_records_and_later_starts_reuse_it(tmp_path):
    first = detect_pinned(tmp_path, subtree="tinykube-unit")
    saved = json.loads(cgroup_placement(tmp_path).read_text())
    assert saved["subtree"] == "tinykube-unit" and saved["version"] == first.version
    # Pretend the first daemon ran in another session's cgroup.
    key = next(iter(saved["roots"]))
    saved["roots"] = {k: f"/elsewhere/{k}" for k in saved["roots"]}
    cgroup_placement(tmp_path).write_text(json.dumps(saved))
    later = detect_pinned(tmp_path, subtree="tinykube-unit")
    assert later.subtree_dirs()[0].startswith("/elsewhere/")
    assert f"/elsewhere/{key}" in later.roots.values() or later.version == 2


def test_an_explicit_parent_wins_and_another_subtree_is_not_reused(tmp_path):
    detect_pinned(tmp_path, subtree="tinykube-a")
    other = detect_pinned(tmp_path, subtree="tinykube-b")
    assert all(d.endswith("/tinykube-b") for d in other.subtree_dirs())
    explicit = detect_pinned(tmp_path, "/tk-explicit", subtree="tinykube-b")
    assert all("/tk-explicit/tinykube-b" in d for d in explicit.subtree_dirs())
