"""runtime/safepath.py and its users never follow a symlink planted below a directory the
daemon owns (issue 14): the /etc/hosts peer rewrite, claim clean-up, paths in volumes."""

from __future__ import annotations

import os

import pytest

from tinykube.runtime import hostsfile, safepath
from tinykube.runtime.hostsfile import HostEntry


def test_the_hosts_rewrite_refuses_a_symlink_in_place_of_the_file(tmp_path):
    victim = tmp_path / "host-file"
    victim.write_text("precious\n")
    pod_dir = tmp_path / "pod"
    pod_dir.mkdir()
    (pod_dir / "etc-hosts").symlink_to(victim)
    with pytest.raises(safepath.UnsafePath):
        hostsfile.write_pod_files(pod_dir, HostEntry("10.0.0.2", "web-0", "web"), [], "web-0")
    assert victim.read_text() == "precious\n"


def test_the_hosts_rewrite_keeps_the_inode(tmp_path):
    files = hostsfile.write_pod_files(tmp_path, HostEntry("10.0.0.2", "a"), [], "a")
    inode = os.stat(files["/etc/hosts"]).st_ino
    hostsfile.write_pod_files(tmp_path, HostEntry("10.0.0.2", "a"),
                              [HostEntry("10.0.0.3", "b")], "a")
    assert os.stat(files["/etc/hosts"]).st_ino == inode
    assert "10.0.0.3\tb" in files["/etc/hosts"].read_text()


def test_resolve_beneath_refuses_symlinks_and_dotdot(tmp_path):
    base = tmp_path / "vol"
    (base / "real").mkdir(parents=True)
    (base / "link").symlink_to(tmp_path)
    assert safepath.resolve_beneath(base, "real") == base / "real"
    assert safepath.resolve_beneath(base, "real/new/deeper", create="dir").is_dir()
    for bad in ("link", "link/x", "../x", "/etc"):
        with pytest.raises(safepath.UnsafePath):
            safepath.resolve_beneath(base, bad, create="dir")
    assert not (tmp_path / "x").exists()


def test_remove_tree_unlinks_symlinks_never_their_targets(tmp_path):
    keep = tmp_path / "keep"
    keep.mkdir()
    (keep / "f").write_text("x")
    doomed = tmp_path / "trash" / "claim"
    doomed.mkdir(parents=True)
    (doomed / "to-dir").symlink_to(keep)
    (doomed / "to-file").symlink_to(keep / "f")
    safepath.remove_tree(tmp_path / "trash", "claim")
    assert not doomed.exists() and (keep / "f").read_text() == "x"
    (tmp_path / "trash" / "link").symlink_to(keep)
    safepath.remove_tree(tmp_path / "trash", "link")  # the link goes, the directory stays
    assert keep.is_dir()
