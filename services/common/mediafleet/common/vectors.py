"""Client of the vector_db HTTP API (httpx), used by job_manager (writes) and the gateway (searches).

Items a task's contract hands over (:class:`~mediafleet.common.capability.VectorItem`) are
stored as ``<media_id>/<task>/<ref>`` of their owner (the user id as a string) with the
payload ``{"media_id", "task", "ref"}``; collections are created on first use with the
vector's dimension and the cosine metric.
"""

from __future__ import annotations

from typing import Any, Protocol

import httpx

from mediafleet.common import tracing
from mediafleet.common.capability import VectorItem
from mediafleet.common.errors import ServiceUnavailable


def item_id(media_id: str, task: str, ref: str) -> str:
    return f"{media_id}/{task}/{ref}"


class VectorIndex(Protocol):
    """Where a task's vectors are stored and searched: vector_db over HTTP
    (:class:`VectorDbClient`) or, in the CLI's embedded mode, the same store in-process
    (``mediafleet.vector_db.local.LocalVectors``)."""

    def upsert(self, owner: str, media_id: str, task: str, items: list[VectorItem]) -> int:
        """Store ``items`` (collections created on first use); returns how many were written."""
        ...

    def search(
        self, collection: str, owner: str, vector: list[float], k: int, where: dict[str, Any] | None = None
    ) -> list[dict[str, Any]]:
        """``[{"id", "score" (cosine similarity), "payload"}]`` best first; [] without the collection."""
        ...

    def delete(self, collection: str, owner: str, ids: list[str]) -> int:
        """Delete the owner's items ``ids``; returns how many existed."""
        ...

    def close(self) -> None: ...


class VectorDbError(ServiceUnavailable):
    """vector_db unreachable (``status`` None), or it refused a request (its HTTP ``status``)."""

    code = "vector_db_unavailable"

    def __init__(self, message: str, status: int | None = None):
        super().__init__(message)
        self.status = status


class VectorDbClient:
    """Thin synchronous client; every call raises :class:`VectorDbError` on failure."""

    def __init__(
        self,
        url: str,
        timeout_s: float = 10.0,
        index: str = "flat",
        http: httpx.Client | None = None,
        headers: dict[str, str] | None = None,
    ):
        self.url = url.rstrip("/")
        self.index = index
        #: ``http``: an httpx client to use instead (tests pass the app's TestClient).
        #: ``headers``: on every call (the fleet's internal token: observability.internal_headers).
        self._http = http or httpx.Client(
            base_url=self.url,
            timeout=timeout_s,
            headers=headers or {},
            event_hooks={"request": [tracing.inject_headers]},  # vector_db continues the caller's trace
        )
        self._known: dict[str, int] = {}

    def close(self) -> None:
        self._http.close()

    def _call(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        try:
            resp = self._http.request(method, path, **kwargs)
        except httpx.HTTPError as exc:
            raise VectorDbError(f"vector_db at {self.url} unreachable: {type(exc).__name__}: {exc}") from exc
        if resp.status_code >= 400:
            try:
                message = resp.json()["error"]["message"]
            except (ValueError, KeyError, TypeError):
                message = resp.text[:200]
            raise VectorDbError(
                f"vector_db {method} {path}: HTTP {resp.status_code}: {message}", resp.status_code
            )
        return resp.json() if resp.content else {}

    def ensure_collection(self, name: str, dim: int) -> None:
        """Create ``name`` (cosine, this client's index type) unless it exists with ``dim``."""
        if self._known.get(name) == dim:
            return
        try:
            info = self._call("GET", f"/v1/collections/{name}")
        except VectorDbError as exc:
            if exc.status != 404:
                raise
            info = self._call(
                "PUT", f"/v1/collections/{name}", json={"dim": dim, "metric": "cosine", "index": self.index}
            )
        have = int(info["dim"])
        if have != dim:
            raise VectorDbError(f"collection {name} holds {have}-d vectors, not {dim}-d")
        self._known[name] = dim

    def upsert(self, owner: str, media_id: str, task: str, items: list[VectorItem]) -> int:
        """Store ``items`` (any collections); returns how many were written."""
        by_collection: dict[str, list[VectorItem]] = {}
        for item in items:
            by_collection.setdefault(item.collection, []).append(item)
        written = 0
        for name, group in by_collection.items():
            self.ensure_collection(name, len(group[0].vector))
            for start in range(0, len(group), 1000):
                body = {
                    "owner": owner,
                    "items": [
                        {
                            "id": item_id(media_id, task, it.ref),
                            "vector": it.vector,
                            "payload": {"media_id": media_id, "task": task, "ref": it.ref},
                        }
                        for it in group[start : start + 1000]
                    ],
                }
                written += int(self._call("POST", f"/v1/collections/{name}/upsert", json=body)["upserted"])
        return written

    def search(
        self, collection: str, owner: str, vector: list[float], k: int, where: dict[str, Any] | None = None
    ) -> list[dict[str, Any]]:
        """``[{"id", "score" (cosine similarity), "payload"}]`` best first, the owner's items only."""
        body = {"owner": owner, "vector": vector, "k": k, "where": where or {}}
        try:
            hits: list[dict[str, Any]] = self._call(
                "POST", f"/v1/collections/{collection}/search", json=body
            )["data"]
            return hits
        except VectorDbError as exc:
            if exc.status == 404:  # no collection yet: nothing stored, nothing found
                return []
            raise

    def delete(self, collection: str, owner: str, ids: list[str]) -> int:
        """Delete the owner's items ``ids`` (``item_id(...)``); returns how many existed.

        A missing collection deletes nothing (0). Raises VectorDbError.
        """
        deleted = 0
        for start in range(0, len(ids), 1000):  # vector_db takes at most 1000 ids per call
            body = {"owner": owner, "ids": ids[start : start + 1000]}
            try:
                deleted += int(
                    self._call("POST", f"/v1/collections/{collection}/delete", json=body)["deleted"]
                )
            except VectorDbError as exc:
                if exc.status == 404:
                    return deleted
                raise
        return deleted
