"""generateName as Kubernetes' API server does it: the prefix plus 5 characters of its
alphabet, redrawn when the name is taken (issue 14: it used to store a pod without a name)."""

import itertools

import pytest
import trio

from tinykube import apiserver
from tinykube.model import names
from tinykube.model.errors import AlreadyExists


def pod(meta):
    return {"apiVersion": "v1", "kind": "Pod", "metadata": meta,
            "spec": {"containers": [{"name": "c", "command": ["sleep", "1"]}]}}


async def call(fn, *args):
    return await trio.to_thread.run_sync(lambda: fn(*args))


def test_generated_names_use_kubernetes_alphabet_and_cut_the_prefix():
    name = names.generate_name("x" * 100)
    assert len(name) == 63 and name.startswith("x" * 58)
    assert set(name[58:]) <= set("bcdfghjklmnpqrstvwxz2456789")


async def test_a_taken_generated_name_is_redrawn(api, monkeypatch):
    store, client, _ = api
    await store.create(pod({"name": "g-aaaaa"}))
    draws = itertools.chain(["aaaaa", "aaaaa"], itertools.repeat("bbbbb"))
    monkeypatch.setattr(names, "random_suffix", lambda: next(draws))
    created = await call(client.create, pod({"generateName": "g-"}))
    assert created["metadata"]["name"] == "g-bbbbb"
    assert store.get("Pod", "default", "g-aaaaa")["metadata"]["uid"] != created["metadata"]["uid"]


async def test_generate_name_gives_up_after_a_few_draws(api, monkeypatch):
    store, client, _ = api
    await store.create(pod({"name": "g-aaaaa"}))
    monkeypatch.setattr(names, "random_suffix", lambda: "aaaaa")
    with pytest.raises(AlreadyExists, match="after 8 attempts"):
        await call(client.create, pod({"generateName": "g-"}))
    assert len(store.list("Pod")) == 1 and apiserver.GENERATE_NAME_ATTEMPTS == 8
