"""IPAM on disk (netns/ipamlog.py): a snapshot plus an append-only journal. What a killed
daemon or a torn write leaves behind must load as exactly the allocations that were made,
never one address for two pods."""

import json

import pytest

from tinykube.netns import ipamlog
from tinykube.netns.errors import NetworkConfigError
from tinykube.netns.ipam import FILE_NAME, Ipam
from tinykube.netns.ipamlog import JOURNAL_NAME, recorded_allocations

CIDR = "10.201.3.0/24"


def journal_lines(state_dir):
    return (state_dir / JOURNAL_NAME).read_text().splitlines()


def test_a_change_appends_one_line_and_leaves_the_snapshot_alone(tmp_path):
    ipam = Ipam(tmp_path, CIDR)
    ipam.allocate("a")  # the first change starts the files
    snapshot = (tmp_path / FILE_NAME).stat()
    before = journal_lines(tmp_path)
    ipam.allocate("b")
    ipam.release("a")
    assert journal_lines(tmp_path) == [*before, "+ b 10.201.3.3", "- a"]
    after = (tmp_path / FILE_NAME).stat()
    assert (after.st_ino, after.st_mtime_ns) == (snapshot.st_ino, snapshot.st_mtime_ns)


def test_a_killed_daemon_leaves_every_change_it_made(tmp_path):
    # No close, no fold: what the next daemon reads is whatever the appends left.
    ipam = Ipam(tmp_path, CIDR)
    for uid in ("a", "b", "c"):
        ipam.allocate(uid)
    ipam.release("b")
    ipam.rename("c", "d")
    expected = ipam.allocations()
    again = Ipam(tmp_path, CIDR)
    assert again.allocations() == expected
    assert again.allocate("e") not in expected.values()


def test_a_torn_last_write_is_ignored_and_never_appended_to(tmp_path):
    ipam = Ipam(tmp_path, CIDR)
    a = ipam.allocate("a")
    with open(tmp_path / JOURNAL_NAME, "a") as f:
        f.write("+ b 10.201.3.")  # a power cut mid-write: no newline, never acknowledged
    again = Ipam(tmp_path, CIDR)
    assert again.allocations() == {"a": a}
    c = again.allocate("c")
    # The next change did not glue itself to the fragment: the files read back cleanly.
    assert recorded_allocations(tmp_path) == {"a": a, "c": c}
    assert Ipam(tmp_path, CIDR).allocations() == {"a": a, "c": c}
    assert "10.201.3." not in (tmp_path / JOURNAL_NAME).read_text().replace(f"+ c {c}", "")


def test_a_short_write_is_not_an_allocation(tmp_path, monkeypatch):
    ipam = Ipam(tmp_path, CIDR)
    a = ipam.allocate("a")
    real_write = ipamlog.os.write

    def half_write(fd, data):  # a full disk: the kernel took part of the line
        return real_write(fd, data[: len(data) // 2])

    monkeypatch.setattr(ipamlog.os, "write", half_write)
    with pytest.raises(OSError, match="short write"):
        ipam.allocate("b")
    monkeypatch.setattr(ipamlog.os, "write", real_write)
    assert ipam.allocations() == {"a": a}
    assert recorded_allocations(tmp_path) == {"a": a}
    c = ipam.allocate("c")
    assert Ipam(tmp_path, CIDR).allocations() == {"a": a, "c": c}


def test_a_fold_cut_short_does_not_replay_old_lines(tmp_path):
    # The snapshot of generation 2 was written, the journal of generation 1 not yet
    # replaced: its lines are in the snapshot already and must not apply twice.
    (tmp_path / FILE_NAME).write_text(json.dumps(
        {"cidr": CIDR, "allocations": {"b": "10.201.3.2"}, "last": "10.201.3.2",
         "journal": 2}))
    (tmp_path / JOURNAL_NAME).write_text(
        "# ipam journal 1\n+ a 10.201.3.2\n- a\n+ b 10.201.3.2\n- b\n")
    ipam = Ipam(tmp_path, CIDR)
    assert ipam.allocations() == {"b": "10.201.3.2"}
    ipam.allocate("c")
    assert Ipam(tmp_path, CIDR).allocations() == {"b": "10.201.3.2", "c": "10.201.3.3"}


def test_a_snapshot_from_before_the_journal_loads(tmp_path):
    (tmp_path / FILE_NAME).write_text(json.dumps(
        {"cidr": CIDR, "allocations": {"a": "10.201.3.7"}, "last": "10.201.3.7"}))
    ipam = Ipam(tmp_path, CIDR)
    assert ipam.allocations() == {"a": "10.201.3.7"}
    assert ipam.allocate("b") == "10.201.3.8"  # next-fit goes on from there
    assert Ipam(tmp_path, CIDR).allocations() == {"a": "10.201.3.7", "b": "10.201.3.8"}


def test_the_journal_is_folded_so_it_stays_short(tmp_path):
    ipam = Ipam(tmp_path, CIDR)
    ipam.allocate("kept")
    for i in range(3 * ipamlog.FOLD_AFTER_LINES):
        ipam.allocate(f"u{i}")
        ipam.release(f"u{i}")
    assert len(journal_lines(tmp_path)) <= ipamlog.FOLD_AFTER_LINES + 2
    assert Ipam(tmp_path, CIDR).allocations() == ipam.allocations()


def test_a_garbled_complete_line_is_refused_with_where_it_is(tmp_path):
    Ipam(tmp_path, CIDR).allocate("a")
    with open(tmp_path / JOURNAL_NAME, "a") as f:
        f.write("? what\n")
    with pytest.raises(NetworkConfigError, match=f"{JOURNAL_NAME}:3"):
        Ipam(tmp_path, CIDR)


def test_files_giving_one_address_to_two_pods_are_refused(tmp_path):
    Ipam(tmp_path, CIDR).allocate("a")
    with open(tmp_path / JOURNAL_NAME, "a") as f:
        f.write("+ b 10.201.3.2\n")
    with pytest.raises(NetworkConfigError, match="10.201.3.2 is held by both"):
        Ipam(tmp_path, CIDR)


def test_names_with_whitespace_are_refused_before_anything_is_written(tmp_path):
    ipam = Ipam(tmp_path, CIDR)
    with pytest.raises(ValueError, match="whitespace"):
        ipam.allocate("two words")
    assert ipam.allocations() == {}
    assert recorded_allocations(tmp_path) == {}
