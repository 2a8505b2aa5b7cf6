"""vector_db benchmark: flat vs HNSW vs IVF on clustered vectors, side by side in one process.

``--n`` vectors (default 100,000) of ``--dim`` (512, CLIP's size) drawn around 1,000
random centres (a clustered distribution, like embeddings of a photo library), cosine
metric, one owner. Per index type: build time (upserts in batches of 1,000 through the
store, log fsync off: this measures the index), p50/p99 latency of one ``search`` (k=10)
over ``--queries`` queries drawn from the same distribution, recall@10 against exact
search, and memory per vector (the process's RSS growth / n).

Goal (issue): p99 <= 10 ms with recall@10 >= 0.95.

``--sweep 5000,10000,...``: instead, per collection size, flat vs HNSW p50/p99 and recall, and
the time to build HNSW over that many vectors at once (what an ``auto`` collection pays when it
crosses its threshold). This is how ``AUTO_THRESHOLD`` in ``store.py`` was chosen.

    python bench/vector_db/run.py [--n 100000] [--dim 512] [--queries 500] [--sweep SIZES]
"""

from __future__ import annotations

import argparse
import resource
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from mediafleet.vector_db.store import Collection, CollectionSpec


def rss_mb() -> float:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * 4096 / 2**20


def clustered(rng: np.random.Generator, n: int, dim: int, centres: np.ndarray) -> np.ndarray:
    """``n`` float32 vectors of ``dim`` around ``centres`` (noise sd 0.5)."""
    picks = centres[rng.integers(0, len(centres), n)]
    return picks + 0.5 * rng.normal(size=(n, dim)).astype(np.float32)


def timed_search(coll: Collection, q: np.ndarray, truth: np.ndarray) -> tuple[float, float, float]:
    """p50 ms, p99 ms and mean recall@10 of one search per row of ``q``."""
    times, recall = [], []
    for qi in range(len(q)):
        t = time.perf_counter()
        hits = coll.search("u0", q[qi], k=10)
        times.append((time.perf_counter() - t) * 1000)
        recall.append(len({int(h["id"][1:]) for h in hits} & set(truth[qi].tolist())) / 10)
    return float(np.percentile(times, 50)), float(np.percentile(times, 99)), float(np.mean(recall))


def sweep(args: argparse.Namespace) -> int:
    """Flat vs HNSW (the store's default parameters) by collection size, one owner."""
    rng = np.random.default_rng(args.seed)
    centres = rng.normal(size=(1000, args.dim)).astype(np.float32)
    q = clustered(rng, args.queries, args.dim, centres)
    qn = q / np.linalg.norm(q, axis=1, keepdims=True)
    print(f"bench/vector_db sweep: {args.dim}-d clustered, cosine, {args.queries} queries, k=10, one owner")
    print(
        f"{'n':>8}{'flat p50':>10}{'flat p99':>10}{'hnsw p50':>10}{'hnsw p99':>10}{'recall':>8}{'hnsw build s':>14}"
    )
    for n in (int(v) for v in args.sweep.split(",")):
        x = clustered(rng, n, args.dim, centres)
        xn = x / np.linalg.norm(x, axis=1, keepdims=True)
        truth = np.argsort(-(qn @ xn.T), axis=1)[:, :10]
        ids = [f"v{i}" for i in range(n)]
        row = []
        for index in ("flat", "hnsw"):
            with tempfile.TemporaryDirectory() as tmp:
                coll = Collection(
                    CollectionSpec("b", args.dim, "cosine", index), Path(tmp), 10**9, fsync=False
                )
                coll.open()
                for s in range(0, n, 1000):
                    coll.upsert("u0", ids[s : s + 1000], x[s : s + 1000], [{}] * len(ids[s : s + 1000]))
                t = time.perf_counter()
                coll._rebuild()  # the whole index at once, as when an auto collection switches
                build = time.perf_counter() - t
                row.append((*timed_search(coll, q, truth), build))
                coll.close()
        (fp50, fp99, _, _), (hp50, hp99, hrec, hbuild) = row
        print(f"{n:>8}{fp50:>10.2f}{fp99:>10.2f}{hp50:>10.2f}{hp99:>10.2f}{hrec:>8.3f}{hbuild:>14.1f}")
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=100_000)
    parser.add_argument("--dim", type=int, default=512)
    parser.add_argument("--queries", type=int, default=500)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--sweep", default="", help="comma-separated sizes: flat vs hnsw per size")
    args = parser.parse_args()
    if args.sweep:
        return sweep(args)
    rng = np.random.default_rng(args.seed)
    centres = rng.normal(size=(1000, args.dim)).astype(np.float32)
    x = centres[rng.integers(0, 1000, args.n)] + 0.5 * rng.normal(size=(args.n, args.dim)).astype(np.float32)
    q = centres[rng.integers(0, 1000, args.queries)] + 0.5 * rng.normal(size=(args.queries, args.dim)).astype(
        np.float32
    )
    xn = x / np.linalg.norm(x, axis=1, keepdims=True)
    qn = q / np.linalg.norm(q, axis=1, keepdims=True)
    truth = np.argsort(-(qn @ xn.T), axis=1)[:, :10]
    ids = [f"v{i}" for i in range(args.n)]
    print(
        f"bench/vector_db: {args.n} x {args.dim} float32 (clustered, 1000 centres), cosine, {args.queries} queries, k=10"
    )
    print(
        f"{'index':<7}{'owners':>7}{'build s':>9}{'p50 ms':>9}{'p99 ms':>9}{'recall@10':>11}{'bytes/vector':>14}"
    )
    hnsw = {"m": 32, "ef_construction": 80, "ef_search": 64}
    ivf = {"nlist": 1024, "nprobe": 16}
    # owners=2: items alternate between two users and u0 searches (a FAISS ID selector over its half)
    configs = [("flat", {}, 1), ("hnsw", hnsw, 1), ("ivf", ivf, 1), ("hnsw", hnsw, 2), ("ivf", ivf, 2)]
    own_truth = np.argsort(-(qn @ xn[0::2].T), axis=1)[:, :10] * 2  # u0 holds the even rows
    for index, params, owners in configs:
        with tempfile.TemporaryDirectory() as tmp:
            base = rss_mb()
            coll = Collection(
                CollectionSpec("b", args.dim, "cosine", index, params), Path(tmp), 10**9, fsync=False
            )
            coll.open()
            t = time.perf_counter()
            for s in range(0, args.n, 1000):
                for o in range(owners):
                    rows = slice(s + o, s + 1000, owners)
                    coll.upsert(f"u{o}", ids[rows], x[rows], [{}] * len(ids[rows]))
            build = time.perf_counter() - t
            grown = rss_mb() - base
            times, recall = [], []
            for qi in range(args.queries):
                t = time.perf_counter()
                hits = coll.search("u0", q[qi], k=10)
                times.append((time.perf_counter() - t) * 1000)
                got = {int(h["id"][1:]) for h in hits}
                want = truth[qi] if owners == 1 else own_truth[qi]
                recall.append(len(got & set(want.tolist())) / 10)
            coll.close()
            del coll
        print(f"{index:<7}{owners:>7}{build:>9.1f}{np.percentile(times, 50):>9.2f}{np.percentile(times, 99):>9.2f}"
              f"{np.mean(recall):>11.3f}{grown * 2**20 / args.n:>14.0f}")  # fmt: skip
    print(f"peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
