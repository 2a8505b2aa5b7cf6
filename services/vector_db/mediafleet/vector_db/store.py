"""Durable named vector collections on FAISS, with per-owner isolation.

A collection has a dimension, a metric and an index type:

- metric ``cosine`` (vectors L2-normalised on the way in, inner product = cosine
  similarity in [-1, 1], higher is closer), ``ip`` (raw inner product, higher is closer)
  or ``l2`` (squared euclidean distance, FAISS's convention, lower is closer);
- index ``flat`` (exact), ``hnsw`` (FAISS ``IndexHNSWFlat``: M, efConstruction,
  efSearch; cosine or l2 only: on raw inner products its recall@10 was 0.67), ``ivf``
  (``IndexIVFFlat``: nlist, nprobe; trained once the collection holds ``39 * nlist``
  vectors, searched exactly until then) or ``auto``: flat (exact) below ``threshold`` live
  vectors (default :data:`AUTO_THRESHOLD`, measured by ``bench/vector_db --sweep``), then
  HNSW (IVF for ``ip``), built in a background thread while flat keeps answering, and
  swapped in when ready. It goes back to flat when a rebuild finds fewer than half the
  threshold.

Every item is keyed by ``(owner, id)``: one owner's upsert never replaces another's, and
every search runs with a FAISS ``IDSelectorBatch`` over the owner's rows (plus a payload
filter), so an owner's results come only from its own vectors, whatever the index.

Durability: each acknowledged write is appended to a write-ahead log (length + CRC32
framed records) and fsynced before the call returns. A snapshot (one ``.npz``: the
vectors and the rows as JSON, written to a temporary name, fsynced, renamed) is taken every
``snapshot_every`` writes; the log then starts afresh. At start a collection loads its
snapshot and replays the log; a torn last record (a crash mid-append) is dropped, since
it was never acknowledged.

Deletes and replacements leave tombstones in the FAISS index (HNSW cannot remove); the
index is rebuilt from the live rows when tombstones pass 20 % of it, and at snapshots.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import struct
import threading
import time
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO, Literal

import numpy as np
import structlog

from mediafleet.common.errors import BadRequest, Conflict, NotFound

if TYPE_CHECKING:
    import faiss

Metric = Literal["cosine", "ip", "l2"]
IndexType = Literal["flat", "hnsw", "ivf", "auto"]
#: ``auto`` collections switch from flat to HNSW (IVF for ``ip``) at this many live vectors.
#: bench/vector_db --sweep, 512-d, 2026-12-06 on the project's 2-core VM: flat p99 2.3 ms at
#: 10,000 and 6.9 ms at 20,000 (linear in n), HNSW p99 0.7 ms at recall@10 0.995 from 10,000
#: (0.972 at 2,500): below this size exact answers cost little, above it they grow past the
#: 10 ms goal by 40,000.
AUTO_THRESHOLD = 10_000
MAX_AUTO_THRESHOLD = 10_000_000
NAME_RE = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,63}$")
MAX_DIM = 4096
log = structlog.get_logger("mediafleet.vector_db")
_MAGIC = b"MFW1"
_HEADER = struct.Struct(">4sII")  # magic, body length, crc32(body)


@dataclass(frozen=True)
class CollectionSpec:
    name: str
    dim: int
    metric: Metric = "cosine"
    index: IndexType = "flat"
    #: HNSW: ``m`` (16), ``ef_construction`` (80), ``ef_search`` (64); IVF: ``nlist`` (256),
    #: ``nprobe`` (16); auto: ``threshold`` (:data:`AUTO_THRESHOLD`) and the others.
    params: dict[str, int] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "dim": self.dim,
            "metric": self.metric,
            "index": self.index,
            "params": self.params,
        }

    def param(self, key: str) -> int:
        defaults = {
            "m": 16,
            "ef_construction": 80,
            "ef_search": 64,
            "nlist": 256,
            "nprobe": 16,
            "threshold": AUTO_THRESHOLD,
        }
        return int(self.params.get(key, defaults[key]))

    @property
    def approximate(self) -> Literal["hnsw", "ivf"]:
        """The approximate index an ``auto`` collection switches to (HNSW needs a metric space)."""
        return "ivf" if self.metric == "ip" else "hnsw"


def validate_spec(spec: CollectionSpec) -> None:
    """Raises BadRequest for a bad name, dimension, metric, index type or parameter."""
    if not NAME_RE.match(spec.name):
        raise BadRequest(
            f"collection name {spec.name!r}: use a-z, 0-9, _ . - (at most 64)", code="invalid_name"
        )
    if not 1 <= spec.dim <= MAX_DIM:
        raise BadRequest(f"dim must be 1-{MAX_DIM}, got {spec.dim}", code="invalid_dimension")
    if spec.metric not in ("cosine", "ip", "l2") or spec.index not in ("flat", "hnsw", "ivf", "auto"):
        raise BadRequest("metric is cosine|ip|l2 and index flat|hnsw|ivf|auto", code="invalid_option")
    if spec.index == "hnsw" and spec.metric == "ip":
        # HNSW's graph needs a metric space; on raw inner products its recall@10 was 0.67 here
        raise BadRequest(
            "hnsw needs cosine or l2 (raw inner product is not a metric: recall collapses); "
            "use cosine for normalised embeddings, or flat/ivf for ip",
            code="invalid_option",
        )
    hnsw, ivf = {"m", "ef_construction", "ef_search"}, {"nlist", "nprobe"}
    allowed = {"flat": set(), "hnsw": hnsw, "ivf": ivf, "auto": {"threshold"} | hnsw | ivf}
    bad = set(spec.params) - allowed[spec.index]
    if bad or any(not 1 <= int(v) <= 65536 for k, v in spec.params.items() if k != "threshold"):
        raise BadRequest(
            f"index {spec.index} takes {sorted(allowed[spec.index])} in 1-65536", code="invalid_option"
        )
    if not 1 <= int(spec.params.get("threshold", 1)) <= MAX_AUTO_THRESHOLD:
        raise BadRequest(f"threshold must be 1-{MAX_AUTO_THRESHOLD}", code="invalid_option")


class Collection:
    """One collection: rows in memory (vectors float32 (n, dim), keys, payloads) + a FAISS index over them."""

    def __init__(self, spec: CollectionSpec, path: Path, snapshot_every: int = 10_000, fsync: bool = True):
        self.spec = spec
        self.path = Path(path)
        self.snapshot_every = snapshot_every
        self.fsync = fsync
        self.lock = threading.RLock()
        self._vectors = np.zeros((0, spec.dim), dtype=np.float32)
        self._keys: list[tuple[str, str] | None] = []  # row -> (owner, id); None = tombstone
        self._payloads: list[dict[str, Any] | None] = []
        self._row: dict[tuple[str, str], int] = {}
        self._owner_rows: dict[str, set[int]] = {}
        self._allowed_cache: dict[str, np.ndarray] = {}  # owner -> sorted rows (no payload filter)
        self._index: faiss.Index | None = None
        self._indexed = 0  # rows added to the FAISS index
        #: the index in use: the spec's, or for ``auto`` flat until the threshold, then approximate
        self._active: Literal["flat", "hnsw", "ivf"] = "flat" if spec.index == "auto" else spec.index
        self._generation = 0  # bumped when rows are renumbered (compaction): a background build is stale
        self._building: threading.Thread | None = None
        self._writes_since_snapshot = 0
        self._wal: BinaryIO | None = None

    # -- persistence -------------------------------------------------------------------
    @property
    def wal_path(self) -> Path:
        return self.path / "wal.log"

    def open(self) -> int:
        """Load the snapshot, replay the log, open the log for appending. Returns records replayed."""
        self.path.mkdir(parents=True, exist_ok=True)
        (self.path / "spec.json").write_text(json.dumps(self.spec.to_json()))
        snap = self.path / "snapshot.npz"
        if snap.is_file():
            with np.load(snap, allow_pickle=False) as data:
                vectors = data["vectors"]
                rows = json.loads(data["rows"].tobytes())
            for (owner, item_id, payload), vec in zip(rows["rows"], vectors, strict=True):
                self._put(owner, item_id, vec, payload)
        replayed = 0
        if self.wal_path.is_file():
            good = 0
            with self.wal_path.open("rb") as fh:
                data = fh.read()
            pos = 0
            while pos + _HEADER.size <= len(data):
                magic, length, crc = _HEADER.unpack_from(data, pos)
                body = data[pos + _HEADER.size : pos + _HEADER.size + length]
                if magic != _MAGIC or len(body) != length or zlib.crc32(body) != crc:
                    break  # a torn or corrupt tail: never acknowledged
                self._apply(body)
                pos += _HEADER.size + length
                good = pos
                replayed += 1
            if good != len(data):
                with self.wal_path.open("r+b") as fh:
                    fh.truncate(good)
        self._wal = self.wal_path.open("ab")
        self._rebuild()
        return replayed

    def close(self) -> None:
        with self.lock:
            if self._wal is not None:
                self._wal.close()
                self._wal = None

    def _log(self) -> BinaryIO:
        """The open write-ahead log; RuntimeError before :meth:`open` or after :meth:`close`."""
        if self._wal is None:
            raise RuntimeError(f"collection {self.spec.name} is not open")
        return self._wal

    def _append(self, body: bytes) -> None:
        wal = self._log()
        wal.write(_HEADER.pack(_MAGIC, len(body), zlib.crc32(body)) + body)
        wal.flush()
        if self.fsync:
            os.fsync(wal.fileno())
        self._writes_since_snapshot += 1

    def _after_write(self) -> None:
        """After a logged write is applied: snapshot when due (the record is then in the snapshot), else index it."""
        if self._writes_since_snapshot >= self.snapshot_every:
            self.snapshot()
        self._maybe_rebuild()

    def snapshot(self) -> None:
        """Write every live row to ``snapshot.{npy,json}`` atomically, then start an empty log."""
        with self.lock:
            live = [r for r, k in enumerate(self._keys) if k is not None]
            rows = [[*key, self._payloads[r]] for r in live if (key := self._keys[r]) is not None]
            tmp = self.path / "snapshot.npz.tmp"
            meta = json.dumps({"rows": rows, "taken_at": time.time()}).encode()
            with tmp.open("wb") as fh:
                vectors = self._vectors[live] if live else np.zeros((0, self.spec.dim), np.float32)
                np.savez(fh, vectors=vectors, rows=np.frombuffer(meta, dtype=np.uint8))
                fh.flush()
                os.fsync(fh.fileno())
            # one file, one rename: a crash leaves the old snapshot or the new one; the log
            # is removed after, and replaying it over the new snapshot is harmless (idempotent)
            os.replace(tmp, self.path / "snapshot.npz")
            self._log().close()
            self.wal_path.unlink(missing_ok=True)
            self._wal = self.wal_path.open("ab")
            self._writes_since_snapshot = 0
            if len(live) != len(self._keys):
                self._compact(live)

    # -- writes ------------------------------------------------------------------------
    def upsert(
        self,
        owner: str,
        ids: list[str],
        vectors: np.ndarray | list[list[float]],
        payloads: list[dict[str, Any]],
    ) -> int:
        """Insert or replace ``(owner, id)`` items; durable when this returns. Raises BadRequest."""
        checked = self._check_vectors(vectors, len(ids))
        if len(set(ids)) != len(ids):
            raise BadRequest("ids repeat within one upsert", code="invalid_option")
        meta = json.dumps({"op": "upsert", "owner": owner, "ids": ids, "payloads": payloads}).encode()
        body = struct.pack(">I", len(meta)) + meta + checked.astype("<f4").tobytes()
        with self.lock:
            self._append(body)
            self._apply(body)
            self._after_write()
        return len(ids)

    def delete(self, owner: str, ids: list[str]) -> int:
        meta = json.dumps({"op": "delete", "owner": owner, "ids": ids}).encode()
        with self.lock:
            present = sum((owner, i) in self._row for i in ids)
            if present:
                self._append(struct.pack(">I", len(meta)) + meta)
                self._apply(struct.pack(">I", len(meta)) + meta)
                self._after_write()
        return present

    def _apply(self, body: bytes) -> None:
        (n,) = struct.unpack_from(">I", body, 0)
        meta = json.loads(body[4 : 4 + n])
        owner = meta["owner"]
        if meta["op"] == "delete":
            for item_id in meta["ids"]:
                self._drop(owner, item_id)
            return
        vecs = np.frombuffer(body[4 + n :], dtype="<f4").reshape(len(meta["ids"]), self.spec.dim)
        for item_id, vec, payload in zip(meta["ids"], vecs, meta["payloads"], strict=True):
            self._put(owner, item_id, vec, payload)

    def _put(self, owner: str, item_id: str, vec: np.ndarray, payload: dict[str, Any] | None) -> None:
        self._drop(owner, item_id)
        row = len(self._keys)
        if row >= len(self._vectors):  # grow geometrically
            grown = np.zeros((max(16, 2 * len(self._vectors)), self.spec.dim), dtype=np.float32)
            grown[: len(self._vectors)] = self._vectors
            self._vectors = grown
        self._vectors[row] = vec
        self._keys.append((owner, item_id))
        self._payloads.append(payload or {})
        self._row[(owner, item_id)] = row
        self._owner_rows.setdefault(owner, set()).add(row)
        self._allowed_cache.pop(owner, None)

    def _drop(self, owner: str, item_id: str) -> None:
        row = self._row.pop((owner, item_id), None)
        if row is not None:
            self._keys[row] = None
            self._payloads[row] = None
            self._owner_rows[owner].discard(row)
            self._allowed_cache.pop(owner, None)

    def _check_vectors(self, vectors: np.ndarray | list[list[float]], n: int) -> np.ndarray:
        arr = np.asarray(vectors, dtype=np.float32)
        if arr.ndim != 2 or arr.shape != (n, self.spec.dim):
            raise BadRequest(
                f"vectors must be {n} x {self.spec.dim}, got {list(arr.shape)}", code="invalid_dimension"
            )
        if not np.isfinite(arr).all():
            raise BadRequest("vectors contain NaN or infinity", code="invalid_vector")
        if self.spec.metric == "cosine":
            norms = np.linalg.norm(arr, axis=1, keepdims=True)
            if (norms == 0).any():
                raise BadRequest("a zero vector has no direction (cosine metric)", code="invalid_vector")
            arr = arr / norms
        return arr

    # -- the FAISS index -----------------------------------------------------------------
    def _new_index(self, train: np.ndarray | None, kind: str | None = None) -> faiss.Index | None:
        """An empty FAISS index of ``kind`` (default: the active one); None for IVF with too few vectors."""
        import faiss

        kind = kind or self._active
        metric = faiss.METRIC_L2 if self.spec.metric == "l2" else faiss.METRIC_INNER_PRODUCT
        d = self.spec.dim
        if kind == "hnsw":
            hnsw = faiss.IndexHNSWFlat(d, self.spec.param("m"), metric)
            hnsw.hnsw.efConstruction = self.spec.param("ef_construction")
            return hnsw
        if kind == "ivf":
            nlist = self.spec.param("nlist")
            if train is None or len(train) < 39 * nlist:
                return None  # too few vectors to train: exact search until then
            quantizer = faiss.IndexFlatL2(d) if metric == faiss.METRIC_L2 else faiss.IndexFlatIP(d)
            index = faiss.IndexIVFFlat(quantizer, d, nlist, metric)
            index.train(train)
            return index
        return faiss.IndexFlatL2(d) if metric == faiss.METRIC_L2 else faiss.IndexFlatIP(d)

    def _compact(self, live: list[int]) -> None:
        keys = [self._keys[r] for r in live]
        payloads = [self._payloads[r] for r in live]
        self._vectors = np.ascontiguousarray(self._vectors[live])
        self._keys, self._payloads = keys, payloads
        self._row = {k: i for i, k in enumerate(keys) if k is not None}
        self._owner_rows = {}
        self._allowed_cache = {}
        self._generation += 1
        for (owner, _), i in self._row.items():
            self._owner_rows.setdefault(owner, set()).add(i)
        self._rebuild(compacted=True)

    def _rebuild(self, compacted: bool = False) -> None:
        if not compacted:
            live = [r for r, k in enumerate(self._keys) if k is not None]
            if len(live) != len(self._keys):
                self._compact(live)
                return
        n = len(self._keys)
        if self.spec.index == "auto":  # rows are all live here (just compacted)
            threshold = self.spec.param("threshold")
            if n >= threshold:
                self._active = self.spec.approximate
            elif n < threshold // 2:
                self._active = "flat"
        self._index = self._new_index(self._vectors[:n] if n else None)
        self._indexed = 0
        self._add_pending()

    def _add_pending(self) -> None:
        n = len(self._keys)
        if (
            self.spec.index == "auto"
            and self._active == "flat"
            and self._building is None
            and len(self._row) >= self.spec.param("threshold")
            # IVF trains on 39 x nlist vectors: below that a build would only come back empty
            and (self.spec.approximate != "ivf" or len(self._row) >= 39 * self.spec.param("nlist"))
        ):
            self._start_switch()
        if self._index is None and self._active == "ivf" and n >= 39 * self.spec.param("nlist"):
            self._index = self._new_index(self._vectors[:n])
            self._indexed = 0
        if self._index is not None and n > self._indexed:
            self._index.add(self._vectors[self._indexed : n])
            self._indexed = n

    def _start_switch(self) -> None:
        """Build the approximate index over a copy of today's rows in a thread (flat keeps
        answering meanwhile), then swap it in under the lock and add the rows written since.
        Called with the lock held."""
        n, generation, kind = len(self._keys), self._generation, self.spec.approximate
        rows = self._vectors[:n].copy()

        def build() -> None:
            started = time.perf_counter()
            index = self._build_index(rows, kind)
            with self.lock:
                self._building = None
                if index is None or generation != self._generation or self._wal is None:
                    return  # IVF not trainable yet, rows renumbered or closed: the next write retries
                self._index, self._indexed, self._active = index, n, kind
                self._add_pending()
            log.info(
                "vector_index_switched",
                collection=self.spec.name,
                index=kind,
                vectors=n,
                build_s=round(time.perf_counter() - started, 2),
            )

        self._building = threading.Thread(target=build, name=f"index-{self.spec.name}", daemon=True)
        self._building.start()

    def _build_index(self, rows: np.ndarray, kind: str) -> faiss.Index | None:
        """A ``kind`` index holding ``rows`` (float32 (n, dim)); runs without the lock."""
        index = self._new_index(rows, kind)
        if index is not None:
            index.add(rows)
        return index

    def wait_for_index(self, timeout_s: float | None = None) -> None:
        """Block until a background index build (``auto``) has finished; for tests and benchmarks."""
        building = self._building
        if building is not None:
            building.join(timeout_s)

    def _maybe_rebuild(self) -> None:
        dead = len(self._keys) - len(self._row)
        if dead > 1000 and dead > 0.2 * len(self._keys):
            self._rebuild()
        else:
            self._add_pending()

    # -- reads ---------------------------------------------------------------------------
    def count(self, owner: str | None = None) -> int:
        with self.lock:
            return len(self._row) if owner is None else len(self._owner_rows.get(owner, ()))

    def search(
        self, owner: str, vector: np.ndarray | list[float], k: int = 10, where: dict[str, Any] | None = None
    ) -> list[dict[str, Any]]:
        """The ``k`` nearest of ``owner``'s items whose payload matches ``where`` (equality per key).

        Returns ``[{"id", "score", "payload"}]`` best first; ``score`` is the cosine
        similarity / inner product (higher is closer) or the squared L2 distance (lower).
        """
        if not 1 <= k <= 1000:
            raise BadRequest("k must be 1-1000", code="invalid_option")
        query = self._check_vectors(np.asarray(vector, dtype=np.float32).reshape(1, -1), 1)
        with self.lock:
            rows = self._owner_rows.get(owner, set())
            if where:
                rows = {
                    r
                    for r in rows
                    if (payload := self._payloads[r]) is not None
                    and all(payload.get(key) == v for key, v in where.items())
                }
                allowed = np.fromiter(rows, dtype=np.int64, count=len(rows))
            else:
                cached = self._allowed_cache.get(owner)
                if cached is None:
                    cached = self._allowed_cache[owner] = np.fromiter(rows, dtype=np.int64, count=len(rows))
                allowed = cached
            if not len(allowed):
                return []
            labels, scores = self._search_rows(query, allowed, min(k, len(allowed)))
            return [
                {"id": key[1], "score": float(s), "payload": self._payloads[r]}
                for r, s in zip(labels, scores, strict=True)
                if r >= 0 and (key := self._keys[r]) is not None
            ]

    def _search_rows(self, query: np.ndarray, allowed: np.ndarray, k: int) -> tuple[list[int], list[float]]:
        import faiss

        if (
            self._index is None or len(allowed) <= 2048
        ):  # exact over the allowed rows (IVF untrained, few rows)
            vecs = self._vectors[allowed]
            if self.spec.metric == "l2":
                scores = ((vecs - query) ** 2).sum(axis=1)
                order = np.argsort(scores)[:k]
            else:
                scores = vecs @ query[0]
                order = np.argsort(-scores)[:k]
            return allowed[order].tolist(), scores[order].tolist()
        # every indexed row is this owner's (a single-user fleet): no selector needed
        selector = None if len(allowed) == self._indexed == len(self._row) else faiss.IDSelectorBatch(allowed)
        # faiss's loader picks its SWIG module at import time and class_wrappers.handle_SearchParameters
        # adds the keyword constructors: mypy sees neither (faiss/class_wrappers.py)
        params: faiss.SearchParameters
        if self._active == "hnsw":
            params = faiss.SearchParametersHNSW(  # type: ignore[attr-defined]
                sel=selector, efSearch=max(self.spec.param("ef_search"), k)
            )
        elif self._active == "ivf":
            params = faiss.SearchParametersIVF(sel=selector, nprobe=self.spec.param("nprobe"))  # type: ignore[call-arg]
        else:
            params = faiss.SearchParameters(sel=selector)  # type: ignore[call-arg]
        distances, labels = self._index.search(query, k, params=params)
        return labels[0].tolist(), distances[0].tolist()

    def info(self) -> dict[str, Any]:
        with self.lock:
            return {
                **self.spec.to_json(),
                "count": len(self._row),
                "owners": sum(1 for rows in self._owner_rows.values() if rows),
                "index_trained": self._index is not None,
                "index_active": self._active,
                "index_building": self._building is not None,
                "tombstones": len(self._keys) - len(self._row),
            }


class VectorStore:
    """Every collection under ``data_dir`` (one folder each)."""

    def __init__(self, data_dir: Path, snapshot_every: int = 10_000, fsync: bool = True):
        self.data_dir = Path(data_dir)
        self.snapshot_every = snapshot_every
        self.fsync = fsync
        self.collections: dict[str, Collection] = {}
        self.lock = threading.Lock()

    def open(self) -> dict[str, int]:
        """Open every stored collection; returns log records replayed per collection."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        replayed = {}
        for spec_file in sorted(self.data_dir.glob("*/spec.json")):
            raw = json.loads(spec_file.read_text())
            spec = CollectionSpec(raw["name"], raw["dim"], raw["metric"], raw["index"], raw.get("params", {}))
            coll = Collection(spec, spec_file.parent, self.snapshot_every, self.fsync)
            replayed[spec.name] = coll.open()
            self.collections[spec.name] = coll
        return replayed

    def create(self, spec: CollectionSpec) -> tuple[Collection, bool]:
        """Create ``spec`` (or return the same existing one). Raises BadRequest, Conflict."""
        validate_spec(spec)
        with self.lock:
            existing = self.collections.get(spec.name)
            if existing is not None:
                if existing.spec != spec:
                    raise Conflict(
                        f"collection {spec.name} exists as {existing.spec.to_json()}",
                        code="collection_exists",
                    )
                return existing, False
            coll = Collection(spec, self.data_dir / spec.name, self.snapshot_every, self.fsync)
            coll.open()
            self.collections[spec.name] = coll
            return coll, True

    def get(self, name: str) -> Collection:
        coll = self.collections.get(name)
        if coll is None:
            raise NotFound(f"no collection {name!r}", code="collection_not_found")
        return coll

    def drop(self, name: str) -> None:
        with self.lock:
            coll = self.get(name)
            coll.close()
            del self.collections[name]
            shutil.rmtree(coll.path, ignore_errors=True)

    def close(self) -> None:
        for coll in self.collections.values():
            coll.close()
