"""IPAM: allocation rules, persistence and concurrency (pure logic on a temp dir)."""

import ipaddress
import json
import threading

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tinykube.netns.errors import AddressPoolExhausted, NetworkConfigError
from tinykube.netns.ipam import FILE_NAME, Ipam
from tinykube.netns.ipamlog import JOURNAL_NAME, recorded_allocations


def test_gateway_and_first_allocation(tmp_path):
    ipam = Ipam(tmp_path, "10.88.0.0/16")
    assert ipam.gateway == "10.88.0.1"
    assert ipam.prefixlen == 16
    assert ipam.allocate("uid-a") == "10.88.0.2"
    assert ipam.allocate("uid-b") == "10.88.0.3"


def test_allocate_is_idempotent_per_uid(tmp_path):
    ipam = Ipam(tmp_path, "10.201.3.0/24")
    first = ipam.allocate("uid-a")
    assert ipam.allocate("uid-a") == first
    assert ipam.allocations() == {"uid-a": first}


def test_release_is_idempotent_and_frees(tmp_path):
    ipam = Ipam(tmp_path, "10.201.3.0/24")
    ip = ipam.allocate("uid-a")
    assert ipam.release("uid-a") == ip
    assert ipam.release("uid-a") is None
    assert ipam.release("never-seen") is None
    assert ipam.allocations() == {}


def test_released_address_is_not_reused_at_once(tmp_path):
    ipam = Ipam(tmp_path, "10.201.3.0/24")
    a = ipam.allocate("a")
    ipam.release("a")
    assert ipam.allocate("b") != a


def test_never_hands_out_network_gateway_or_broadcast(tmp_path):
    ipam = Ipam(tmp_path, "10.201.3.0/29")  # hosts .1-.6; .1 is the gateway
    got = {ipam.allocate(f"u{i}") for i in range(5)}
    assert got == {f"10.201.3.{i}" for i in range(2, 7)}
    with pytest.raises(AddressPoolExhausted, match="10.201.3.0/29"):
        ipam.allocate("one-too-many")


def test_wraps_around_to_freed_addresses(tmp_path):
    ipam = Ipam(tmp_path, "10.201.3.0/29")
    for i in range(5):
        ipam.allocate(f"u{i}")
    ipam.release("u1")
    assert ipam.allocate("late") == "10.201.3.3"


def test_allocations_survive_restart(tmp_path):
    ipam = Ipam(tmp_path, "10.201.3.0/24")
    a = ipam.allocate("a")
    b = ipam.allocate("b")
    ipam.release("a")
    reloaded = Ipam(tmp_path, "10.201.3.0/24")
    assert reloaded.allocations() == {"b": b}
    # next-fit position survives too: the released address is not handed out first
    assert reloaded.allocate("c") not in {a, b}


def test_file_is_written_atomically_without_leftovers(tmp_path):
    ipam = Ipam(tmp_path, "10.201.3.0/24")
    ipam.allocate("a")
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([FILE_NAME, JOURNAL_NAME])
    data = json.loads((tmp_path / FILE_NAME).read_text())
    assert data["cidr"] == "10.201.3.0/24"
    assert recorded_allocations(tmp_path) == {"a": "10.201.3.2"}


def test_failed_write_does_not_allocate(tmp_path, monkeypatch):
    ipam = Ipam(tmp_path, "10.201.3.0/24")

    def broken_replace(*args):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("tinykube.netns.ipamlog.os.replace", broken_replace)
    with pytest.raises(OSError):
        ipam.allocate("a")
    assert ipam.allocations() == {}
    assert list(tmp_path.iterdir()) == []


def test_remove_file(tmp_path):
    ipam = Ipam(tmp_path, "10.201.3.0/24")
    ipam.allocate("a")
    ipam.remove_file()
    assert list(tmp_path.iterdir()) == []
    assert ipam.allocations() == {}
    ipam.remove_file()  # idempotent


def test_other_cidr_in_file_is_refused(tmp_path):
    Ipam(tmp_path, "10.201.3.0/24").allocate("a")
    with pytest.raises(NetworkConfigError, match="10.201.3.0/24"):
        Ipam(tmp_path, "10.201.4.0/24")


def test_corrupt_file_is_refused_with_its_path(tmp_path):
    (tmp_path / FILE_NAME).write_text("{not json")
    with pytest.raises(NetworkConfigError, match=FILE_NAME):
        Ipam(tmp_path, "10.201.3.0/24")


@pytest.mark.parametrize("cidr", ["10.201.3.1/24", "not-a-cidr", "10.201.3.0/31", "fd00::/64"])
def test_bad_cidr_is_refused(tmp_path, cidr):
    with pytest.raises(NetworkConfigError, match="cidr"):
        Ipam(tmp_path, cidr)


def test_concurrent_allocations_are_distinct(tmp_path):
    ipam = Ipam(tmp_path, "10.201.3.0/24")
    results: dict[str, str] = {}
    barrier = threading.Barrier(16)

    def worker(n: int) -> None:
        barrier.wait()
        for i in range(10):
            uid = f"t{n}-{i}"
            results[uid] = ipam.allocate(uid)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(set(results.values())) == 160
    assert Ipam(tmp_path, "10.201.3.0/24").allocations() == results


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.booleans(), st.integers(0, 7)), max_size=40))
def test_model_matches_dict(tmp_path_factory, ops):
    """Random allocate/release sequences: unique addresses inside the range, all persisted."""
    state_dir = tmp_path_factory.mktemp("ipam")
    ipam = Ipam(state_dir, "10.201.3.0/28")
    model: dict[str, str] = {}
    for is_allocate, n in ops:
        uid = f"u{n}"
        if is_allocate:
            ip = ipam.allocate(uid)
            assert model.setdefault(uid, ip) == ip
        else:
            ipam.release(uid)
            model.pop(uid, None)
    assert ipam.allocations() == model
    assert len(set(model.values())) == len(model)
    net = ipaddress.IPv4Network("10.201.3.0/28")
    for ip in model.values():
        assert ipaddress.IPv4Address(ip) in net
        assert ip not in {"10.201.3.0", "10.201.3.1", "10.201.3.15"}
    assert Ipam(state_dir, "10.201.3.0/28").allocations() == model


def test_an_empty_file_left_by_a_power_cut_reads_as_nothing_allocated(tmp_path):
    (tmp_path / "ipam.json").write_text("")
    ipam = Ipam(tmp_path, "10.77.0.0/24")
    assert ipam.allocations() == {}
    assert ipam.allocate("a") == "10.77.0.2"


def test_rename_hands_an_address_to_another_uid_and_persists_it(tmp_path):
    # A warm sandbox's address becomes its pod's (runtime/warmpool.py).
    ipam = Ipam(tmp_path, "10.201.3.0/24")
    ip = ipam.allocate("w-abc123")
    other = ipam.allocate("uid-b")
    assert ipam.rename("w-abc123", "uid-a") == ip
    assert ipam.allocations() == {"uid-a": ip, "uid-b": other}
    assert Ipam(tmp_path, "10.201.3.0/24").allocations() == {"uid-a": ip, "uid-b": other}


def test_rename_refuses_a_taken_or_unknown_uid_and_changes_nothing(tmp_path):
    ipam = Ipam(tmp_path, "10.201.3.0/24")
    ipam.allocate("w-abc123")
    ipam.allocate("uid-b")
    before = ipam.allocations()
    with pytest.raises(ValueError, match="uid-b"):
        ipam.rename("w-abc123", "uid-b")
    with pytest.raises(KeyError):
        ipam.rename("w-gone00", "uid-c")
    assert ipam.allocations() == before
    assert Ipam(tmp_path, "10.201.3.0/24").allocations() == before


def test_failed_rename_write_keeps_the_old_owner(tmp_path, monkeypatch):
    ipam = Ipam(tmp_path, "10.201.3.0/24")
    ip = ipam.allocate("w-abc123")

    def fail(*args, **kwargs):
        raise OSError("disk full")
    monkeypatch.setattr("tinykube.netns.ipamlog.os.write", fail)
    with pytest.raises(OSError):
        ipam.rename("w-abc123", "uid-a")
    assert ipam.allocations() == {"w-abc123": ip}
    assert recorded_allocations(tmp_path) == {"w-abc123": ip}
