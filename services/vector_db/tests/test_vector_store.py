"""vector_db: metrics, index types, owner isolation, payload filters, the log and snapshots, the HTTP API."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient

from mediafleet.common.errors import BadRequest, Conflict, NotFound
from mediafleet.vector_db.app import create_app
from mediafleet.vector_db.settings import VectorDbSettings
from mediafleet.vector_db.store import Collection, CollectionSpec, VectorStore

RNG = np.random.default_rng(7)


def clustered(n: int, dim: int, centres: int = 20, spread: float = 0.3) -> np.ndarray:
    c = RNG.normal(size=(centres, dim)).astype(np.float32)
    x = c[RNG.integers(0, centres, n)] + spread * RNG.normal(size=(n, dim)).astype(np.float32)
    return x.astype(np.float32)


def exact_top(x: np.ndarray, q: np.ndarray, k: int, metric: str) -> list[int]:
    if metric == "cosine":
        xn = x / np.linalg.norm(x, axis=1, keepdims=True)
        return list(np.argsort(-(xn @ (q / np.linalg.norm(q))))[:k])
    if metric == "ip":
        return list(np.argsort(-(x @ q))[:k])
    return list(np.argsort(((x - q) ** 2).sum(axis=1))[:k])


@pytest.mark.parametrize("metric", ["cosine", "ip", "l2"])
@pytest.mark.parametrize(
    ("index", "params"), [("flat", {}), ("hnsw", {}), ("ivf", {"nlist": 16, "nprobe": 8})]
)
def test_search_matches_exact_search(tmp_path: Path, metric: str, index: str, params: dict) -> None:
    x = clustered(3000, 32)
    store = VectorStore(tmp_path)
    if index == "hnsw" and metric == "ip":
        with pytest.raises(BadRequest, match="hnsw needs cosine or l2"):
            store.create(CollectionSpec("c", 32, metric, index, params))
        return
    coll, created = store.create(CollectionSpec("c", 32, metric, index, params))
    assert created
    ids = [f"v{i}" for i in range(len(x))]
    for start in range(0, len(x), 1000):
        coll.upsert(
            "alice",
            ids[start : start + 1000],
            x[start : start + 1000],
            [{"i": i} for i in range(start, start + 1000)],
        )
    assert coll.info()["index_trained"] is True
    recall = []
    for q in clustered(20, 32):
        want = {f"v{i}" for i in exact_top(x, q, 10, metric)}
        hits = coll.search("alice", q, k=10)
        recall.append(len(want & {h["id"] for h in hits}) / 10)
        scores = [h["score"] for h in hits]
        assert scores == sorted(scores, reverse=metric != "l2")
    assert np.mean(recall) >= (1.0 if index == "flat" else 0.9)
    if metric == "cosine":  # the score is the cosine similarity
        hit = coll.search("alice", x[5], k=1)[0]
        assert hit["id"] == "v5" and hit["score"] == pytest.approx(1.0, abs=1e-5)


def test_owners_never_see_each_other(tmp_path: Path) -> None:
    store = VectorStore(tmp_path)
    coll, _ = store.create(CollectionSpec("faces", 8, "cosine", "hnsw"))
    a, b = clustered(3000, 8), clustered(3000, 8)
    coll.upsert("alice", [f"a{i}" for i in range(1000)], a[:1000], [{}] * 1000)
    coll.upsert("alice", [f"a{i}" for i in range(1000, 3000)], a[1000:], [{}] * 2000)
    coll.upsert("bob", [f"b{i}" for i in range(3000)], b, [{}] * 3000)
    coll.upsert("bob", ["a0"], b[:1], [{"same id, other owner": True}])
    assert coll.count("alice") == 3000 and coll.count("bob") == 3001 and coll.count() == 6001
    for q in b[:10]:  # bob's own vectors as queries: alice still gets only alice's
        assert all(h["id"].startswith("a") for h in coll.search("alice", q, k=20))
    assert coll.search("alice", a[0], k=1)[0]["payload"] == {}  # bob's "a0" did not replace alice's
    assert coll.search("carol", a[0], k=5) == []


def test_payload_filter_and_delete(tmp_path: Path) -> None:
    coll, _ = VectorStore(tmp_path).create(CollectionSpec("c", 4))
    x = clustered(10, 4)
    coll.upsert(
        "u", [str(i) for i in range(10)], x, [{"kind": "even" if i % 2 == 0 else "odd"} for i in range(10)]
    )
    hits = coll.search("u", x[1], k=10, where={"kind": "odd"})
    assert {h["id"] for h in hits} == {"1", "3", "5", "7", "9"}
    assert coll.delete("u", ["1", "3", "missing"]) == 2
    assert {h["id"] for h in coll.search("u", x[1], k=10, where={"kind": "odd"})} == {"5", "7", "9"}
    assert coll.delete("other-owner", ["5"]) == 0 and coll.count("u") == 8


def test_bad_input_is_refused_and_nothing_stored(tmp_path: Path) -> None:
    store = VectorStore(tmp_path)
    coll, _ = store.create(CollectionSpec("c", 4))
    for vectors, code in (([[1, 2, 3]], "invalid_dimension"), ([[0, 0, 0, 0]], "invalid_vector"),
                          ([[float("nan"), 1, 1, 1]], "invalid_vector")):  # fmt: skip
        with pytest.raises(BadRequest) as err:
            coll.upsert("u", ["x"], np.array(vectors, dtype=np.float32), [{}])
        assert err.value.code == code
    assert coll.count() == 0 and coll.wal_path.stat().st_size == 0
    with pytest.raises(Conflict):
        store.create(CollectionSpec("c", 8))
    with pytest.raises(BadRequest):
        store.create(CollectionSpec("Bad Name", 8))
    with pytest.raises(BadRequest):
        store.create(CollectionSpec("d", 8, index="hnsw", params={"nlist": 4}))
    with pytest.raises(NotFound):
        store.get("nope")


@pytest.mark.parametrize("index", ["flat", "hnsw", "ivf"])
def test_log_replay_snapshot_and_torn_tail(tmp_path: Path, index: str) -> None:
    spec = CollectionSpec("c", 16, "cosine", index, {"nlist": 4} if index == "ivf" else {})
    x = clustered(700, 16)
    coll = Collection(spec, tmp_path / "c", snapshot_every=5)
    coll.open()
    for i in range(0, 600, 50):  # 12 writes: two snapshots, two writes in the log after
        coll.upsert(
            "u", [f"v{j}" for j in range(i, i + 50)], x[i : i + 50], [{"j": j} for j in range(i, i + 50)]
        )
    coll.delete("u", ["v0", "v1"])
    coll.upsert("u", ["v2"], x[600:601], [{"replaced": True}])
    assert (tmp_path / "c" / "snapshot.npz").is_file()
    coll.close()
    with (tmp_path / "c" / "wal.log").open("ab") as fh:
        fh.write(b"MFW1\x00\x00\x10\x00garbage")  # a torn record: announced 4096 bytes, 7 written

    again = Collection(spec, tmp_path / "c", snapshot_every=5)
    replayed = again.open()
    assert replayed >= 1 and again.count("u") == 598
    hit = again.search("u", x[600], k=1)[0]
    assert hit["id"] == "v2" and hit["payload"] == {"replaced": True}
    assert again.search("u", x[300], k=1)[0]["id"] == "v300"
    assert all(h["id"] not in ("v0", "v1") for h in again.search("u", x[0], k=20))
    again.upsert("u", ["after"], x[650:651], [{}])  # the torn tail was cut: new records follow good ones
    again.close()
    third = Collection(spec, tmp_path / "c")
    third.open()
    assert third.count("u") == 599


def test_http_api(tmp_path: Path) -> None:
    app = create_app(VectorDbSettings(data_dir=tmp_path))
    with TestClient(app) as c:
        assert (
            c.put("/v1/collections/clip", json={"dim": 3, "metric": "cosine", "index": "hnsw"}).status_code
            == 201
        )
        assert (
            c.put("/v1/collections/clip", json={"dim": 3, "metric": "cosine", "index": "hnsw"}).status_code
            == 200
        )
        conflict = c.put("/v1/collections/clip", json={"dim": 4})
        assert conflict.status_code == 409 and conflict.json()["error"]["code"] == "collection_exists"
        items = [{"id": "m1", "vector": [1, 0, 0], "payload": {"media_id": "m1"}},
                 {"id": "m2", "vector": [0.9, 0.1, 0], "payload": {"media_id": "m2"}}]  # fmt: skip
        assert (
            c.post("/v1/collections/clip/upsert", json={"owner": "u1", "items": items}).json()["upserted"]
            == 2
        )
        hits = c.post(
            "/v1/collections/clip/search", json={"owner": "u1", "vector": [1, 0, 0], "k": 2}
        ).json()["data"]
        assert [h["id"] for h in hits] == ["m1", "m2"] and hits[0]["score"] == pytest.approx(1.0)
        assert (
            c.post("/v1/collections/clip/search", json={"owner": "u2", "vector": [1, 0, 0]}).json()["data"]
            == []
        )
        bad = c.post(
            "/v1/collections/clip/upsert", json={"owner": "u1", "items": [{"id": "x", "vector": [1, 2]}]}
        )
        assert bad.status_code == 400 and bad.json()["error"]["code"] == "invalid_dimension"
        missing = c.post("/v1/collections/nope/search", json={"owner": "u1", "vector": [1, 0, 0]})
        assert missing.status_code == 404 and missing.json()["error"]["code"] == "collection_not_found"
        no_owner = c.post("/v1/collections/clip/search", json={"vector": [1, 0, 0]})
        assert no_owner.status_code in (400, 422) and "error" in no_owner.json()
        assert c.get("/v1/collections/clip/count", params={"owner": "u1"}).json() == {"count": 2}
        assert c.post("/v1/collections/clip/delete", json={"owner": "u1", "ids": ["m1"]}).json() == {
            "deleted": 1
        }
        assert c.get("/readyz").status_code == 200
        assert c.delete("/v1/collections/clip").status_code == 204
        assert c.get("/v1/collections").json() == {"data": []}


def test_only_the_fleet_is_answered_and_bodies_are_bounded(tmp_path: Path) -> None:
    """With MEDIAFLEET_INTERNAL_TOKEN set (compose sets it) every call but the probes and
    /metrics needs it: another process on the host or the network reads no user's vectors.
    A body over VECTOR_DB_MAX_BODY_BYTES is 413 before it is parsed."""
    from pydantic import SecretStr

    from mediafleet.common.settings import CoreSettings

    settings = VectorDbSettings(
        data_dir=tmp_path, core=CoreSettings(internal_token=SecretStr("fleet-token-0123456789")),
        max_body_bytes=1 << 16,
    )  # fmt: skip
    fleet = {"Authorization": "Bearer fleet-token-0123456789"}
    with TestClient(create_app(settings)) as c:
        anonymous = c.get("/v1/collections")
        assert anonymous.status_code == 401 and anonymous.json()["error"]["code"] == "internal_token_required"
        assert c.get("/v1/collections", headers={"Authorization": "Bearer guess"}).status_code == 401
        assert c.get("/v1/collections", headers=fleet).json() == {"data": []}
        for probe in ("/healthz", "/readyz", "/metrics"):
            assert c.get(probe).status_code == 200, probe
        assert c.put("/v1/collections/c", json={"dim": 3}, headers=fleet).status_code == 201
        big = {"owner": "u", "items": [{"id": str(i), "vector": [0.1, 0.2, 0.3]} for i in range(3000)]}
        over = c.post("/v1/collections/c/upsert", json=big, headers=fleet)
        assert over.status_code == 413 and over.json()["error"]["code"] == "payload_too_large"


@pytest.mark.parametrize(("metric", "approximate"), [("cosine", "hnsw"), ("l2", "hnsw"), ("ip", "ivf")])
def test_auto_switches_to_an_approximate_index_at_its_threshold(
    tmp_path: Path, metric: str, approximate: str
) -> None:
    """``auto``: exact below ``threshold`` live vectors; crossing it builds HNSW (IVF for ip)
    in a thread while flat answers, then the approximate index answers; a reopen picks the
    index from the size; deletes below half the threshold go back to exact."""
    import threading

    spec = CollectionSpec("c", 32, metric, "auto", {"threshold": 2500, "nlist": 16, "nprobe": 8})
    # 200 clusters: on 20 tight ones HNSW (plain or auto alike) sometimes finds 1 of a query's 10
    x = clustered(3000, 32, centres=200)
    ids = [f"v{i}" for i in range(len(x))]
    coll = Collection(spec, tmp_path / "c")
    coll.open()
    coll.upsert("alice", ids[:2400], x[:2400], [{}] * 2400)
    assert coll.info()["index_active"] == "flat" and not coll.info()["index_building"]

    release = threading.Event()
    build = coll._build_index

    def slow_build(rows: np.ndarray, kind: str):  # type: ignore[no-untyped-def]
        release.wait(30)
        return build(rows, kind)

    coll._build_index = slow_build  # type: ignore[method-assign]
    coll.upsert("alice", ids[2400:2600], x[2400:2600], [{}] * 200)
    info = coll.info()
    assert info["index_active"] == "flat" and info["index_building"]
    queries = clustered(10, 32, centres=200)
    exact = [[h["id"] for h in coll.search("alice", q, k=10)] for q in queries]  # flat serves meanwhile
    for q, got in zip(queries, exact, strict=True):
        assert got == [f"v{i}" for i in exact_top(x[:2600], q, 10, metric)]
    coll.upsert("alice", ids[2600:], x[2600:], [{}] * 400)  # written during the build
    release.set()
    coll.wait_for_index(30)
    info = coll.info()
    assert info["index_active"] == approximate and not info["index_building"] and info["count"] == 3000
    recall = []
    for q in queries:
        want = {f"v{i}" for i in exact_top(x, q, 10, metric)}
        recall.append(len(want & {h["id"] for h in coll.search("alice", q, k=10)}) / 10)
    assert np.mean(recall) >= 0.9
    # a row written during the build is found (for ip the best match of x[2900] is another row)
    assert coll.search("alice", x[2900], k=1)[0]["id"] == f"v{exact_top(x, x[2900], 1, metric)[0]}"
    coll.close()

    again = Collection(spec, tmp_path / "c")
    again.open()
    assert again.info()["index_active"] == approximate
    again.delete("alice", ids[:1900])  # 1,100 left < 2500 / 2: the rebuild goes back to exact
    assert again.info()["index_active"] == "flat" and again.count() == 1100
    q = queries[0]
    assert [h["id"] for h in again.search("alice", q, k=5)] == [
        f"v{1900 + i}" for i in exact_top(x[1900:], q, 5, metric)
    ]
    again.close()


def test_auto_parameters_are_checked(tmp_path: Path) -> None:
    store = VectorStore(tmp_path)
    for params in ({"threshold": 0}, {"threshold": 20_000_000}, {"bogus": 3}, {"m": 70_000}):
        with pytest.raises(BadRequest):
            store.create(CollectionSpec("c", 8, "cosine", "auto", params))
    with pytest.raises(BadRequest):
        store.create(CollectionSpec("c", 8, "cosine", "flat", {"threshold": 100}))
    coll, _ = store.create(CollectionSpec("c", 8, "cosine", "auto", {"threshold": 200_000}))
    assert coll.info()["index_active"] == "flat"


def test_auto_ip_waits_for_enough_vectors_to_train_ivf(tmp_path: Path) -> None:
    """ip switches to IVF, which trains on 39 x nlist vectors: over the threshold but below
    that, no build starts (each write would start one that comes back empty)."""
    coll = Collection(CollectionSpec("c", 8, "ip", "auto", {"threshold": 100, "nlist": 16}), tmp_path / "c")
    coll.open()
    x = clustered(700, 8)
    coll.upsert("u", [f"v{i}" for i in range(200)], x[:200], [{}] * 200)
    assert coll.info()["index_active"] == "flat" and not coll.info()["index_building"]
    coll.upsert("u", [f"v{i}" for i in range(200, 700)], x[200:], [{}] * 500)  # 700 >= 39 x 16
    coll.wait_for_index(30)
    assert coll.info()["index_active"] == "ivf"
    coll.close()
