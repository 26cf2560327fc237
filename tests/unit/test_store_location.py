"""`--store`: which backend a value names, and a clear error naming the flag otherwise."""

from pathlib import Path

import pytest

from tinykube.store.location import EtcdTLS, StoreLocationError, parse_store

DEFAULT = Path("/var/lib/tinykube/state.db")


def test_the_default_is_the_embedded_sqlite_store():
    assert parse_store(None, default_path=DEFAULT).sqlite_path == DEFAULT
    assert parse_store("", default_path=DEFAULT).sqlite_path == DEFAULT
    assert parse_store("sqlite:/tmp/x.db", default_path=DEFAULT).sqlite_path == Path("/tmp/x.db")


def test_etcd_endpoints_and_tls():
    location = parse_store("etcd://127.0.0.1:2379,etcd-2.lan:2379,[::1]:2379",
                           default_path=DEFAULT)
    assert location.is_etcd and location.sqlite_path is None
    assert location.etcd_endpoints == ("127.0.0.1:2379", "etcd-2.lan:2379", "[::1]:2379")
    assert location.describe() == ("etcd http://127.0.0.1:2379,http://etcd-2.lan:2379,"
                                   "http://[::1]:2379")
    secure = parse_store("etcd://e:2379", default_path=DEFAULT,
                         tls=EtcdTLS(cafile="/ca.pem", certfile="/c.pem", keyfile="/k.pem"))
    assert secure.describe() == "etcd https://e:2379"


@pytest.mark.parametrize(("value", "says"), [
    ("etcd://", "'' is not HOST:PORT"),
    ("etcd://host", "'host' is not HOST:PORT"),
    ("etcd://h:2379,h:99999", "'h:99999' is not HOST:PORT"),
    ("etcd://h:2379/x", "is not HOST:PORT"),
    ("sqlite:", "sqlite: needs a path"),
    ("postgres://db", "expected sqlite:PATH or etcd://"),
])
def test_bad_values_name_the_flag_and_the_reason(value, says):
    with pytest.raises(StoreLocationError, match="--store") as error:
        parse_store(value, default_path=DEFAULT)
    assert says in str(error.value)


def test_a_key_without_its_certificate_is_refused():
    with pytest.raises(StoreLocationError, match="--etcd-keyfile: needs --etcd-certfile"):
        parse_store("etcd://e:2379", default_path=DEFAULT, tls=EtcdTLS(keyfile="/k.pem"))


def test_compaction_interval():
    assert parse_store("etcd://e:2379", default_path=DEFAULT).etcd_compaction_interval == 300
    assert parse_store("etcd://e:2379", default_path=DEFAULT,
                       compaction_interval=0).etcd_compaction_interval == 0
    with pytest.raises(StoreLocationError, match="--etcd-compaction-interval: must be 0"):
        parse_store("etcd://e:2379", default_path=DEFAULT, compaction_interval=-1)
