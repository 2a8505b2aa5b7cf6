"""vector_db's store in the caller's process: what embedded mode keeps its vectors in.

The CLI's embedded mode (``mediafleet analyze``, no server) has no vector_db to send a task's
vectors to; :class:`LocalVectors` offers the calls of
:class:`~mediafleet.common.vectors.VectorDbClient` (both follow
:class:`~mediafleet.common.vectors.VectorIndex`) on a :class:`~mediafleet.vector_db.store.VectorStore`
in a local folder: the same FAISS collections, write-ahead log and snapshots as the service,
items keyed ``<media_id>/<task>/<ref>`` of their owner with the same payload, collections
created on first use (cosine). A folder written here can be copied into vector_db's data
volume and served as it is.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mediafleet.common.capability import VectorItem
from mediafleet.common.errors import NotFound
from mediafleet.common.vectors import item_id
from mediafleet.vector_db.store import CollectionSpec, IndexType, VectorStore


class LocalVectors:
    """Collections under ``data_dir`` (created if missing), opened at construction.

    Raises OSError when the folder cannot be created or read.
    """

    def __init__(self, data_dir: Path, index: IndexType = "flat"):
        self.index: IndexType = index
        self.store = VectorStore(Path(data_dir))
        self.store.open()

    def close(self) -> None:
        self.store.close()

    def upsert(self, owner: str, media_id: str, task: str, items: list[VectorItem]) -> int:
        """Store ``items`` (any collections; each created with its vectors' dimension on first
        use); returns how many were written. Raises BadRequest (a vector of another dimension
        than its collection's, or not finite) or Conflict."""
        by_collection: dict[str, list[VectorItem]] = {}
        for item in items:
            by_collection.setdefault(item.collection, []).append(item)
        written = 0
        for name, group in by_collection.items():
            spec = CollectionSpec(name, len(group[0].vector), "cosine", self.index)
            collection = self.store.collections.get(name) or self.store.create(spec)[0]
            written += collection.upsert(
                owner,
                [item_id(media_id, task, it.ref) for it in group],
                [it.vector for it in group],
                [{"media_id": media_id, "task": task, "ref": it.ref} for it in group],
            )
        return written

    def search(
        self, collection: str, owner: str, vector: list[float], k: int, where: dict[str, Any] | None = None
    ) -> list[dict[str, Any]]:
        """``[{"id", "score" (cosine similarity in [-1, 1]), "payload"}]`` best first, the
        owner's items only; [] when the collection does not exist yet. Raises BadRequest
        (``k`` outside 1-1000, a vector of another dimension)."""
        try:
            found = self.store.get(collection)
        except NotFound:
            return []
        return found.search(owner, vector, k, where)

    def delete(self, collection: str, owner: str, ids: list[str]) -> int:
        """Delete the owner's items ``ids``; returns how many existed (0 without the collection)."""
        try:
            found = self.store.get(collection)
        except NotFound:
            return 0
        return found.delete(owner, ids)
