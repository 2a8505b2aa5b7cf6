"""The vector_db HTTP API (internal network only: the gateway and workers call it, users never do).

Every write and search names the ``owner`` (the gateway passes the user id): items are
keyed by (owner, id) and searches see only the owner's items.

    PUT    /v1/collections/{name}            {"dim", "metric", "index", "params"} -> 201 | 200 (same spec) | 409
    GET    /v1/collections                   every collection with its count
    GET    /v1/collections/{name}            spec, count, owners, tombstones
    DELETE /v1/collections/{name}
    POST   /v1/collections/{name}/upsert     {"owner", "items": [{"id", "vector", "payload"}]} (<= 1000 items)
    POST   /v1/collections/{name}/search     {"owner", "vector", "k", "where": {key: value}}
    POST   /v1/collections/{name}/delete     {"owner", "ids"}
    GET    /v1/collections/{name}/count?owner=
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any, Literal

import structlog
from fastapi import FastAPI, Response
from pydantic import BaseModel, ConfigDict, Field

from mediafleet.common.errors import BadRequest, install_error_handlers
from mediafleet.common.limits import UploadSizeLimit
from mediafleet.common.metrics import register_storage
from mediafleet.common.observability import InternalTokenGuard, MetricsMiddleware, health_router
from mediafleet.common.tracing import FASTAPI_TELEMETRY
from mediafleet.vector_db.settings import VectorDbSettings
from mediafleet.vector_db.store import CollectionSpec, VectorStore

log = structlog.get_logger("mediafleet.vector_db")
Owner = Field(min_length=1, max_length=128, description="the user the items belong to (set by the gateway)")


class CreateBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    dim: int = Field(ge=1, le=4096)
    metric: Literal["cosine", "ip", "l2"] = "cosine"
    index: Literal["flat", "hnsw", "ivf", "auto"] = "auto"
    params: dict[str, int] = Field(default_factory=dict, max_length=8)


class Item(BaseModel):
    model_config = ConfigDict(extra="forbid")
    id: str = Field(min_length=1, max_length=256)
    vector: list[float] = Field(max_length=4096)
    payload: dict[str, Any] = Field(default_factory=dict, max_length=32)


class UpsertBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    owner: str = Owner
    items: list[Item] = Field(min_length=1, max_length=1000)


class SearchBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    owner: str = Owner
    vector: list[float] = Field(max_length=4096)
    k: int = Field(default=10, ge=1, le=1000)
    where: dict[str, str | int | float | bool] = Field(default_factory=dict, max_length=16)


class DeleteBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    owner: str = Owner
    ids: list[str] = Field(min_length=1, max_length=1000)


def create_app(settings: VectorDbSettings | None = None, store: VectorStore | None = None) -> FastAPI:
    settings = settings or VectorDbSettings()
    store = store or VectorStore(settings.data_dir, settings.snapshot_every, settings.fsync)
    state = {"opened": False}

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        replayed = await asyncio.to_thread(store.open)
        state["opened"] = True
        register_storage({"vectors": settings.data_dir})
        log.info("vector_db_opened", data_dir=str(settings.data_dir), replayed=replayed)
        yield
        store.close()

    app = FastAPI(
        title="mediafleet vector_db", version="0.1.0", lifespan=lifespan, telemetry=FASTAPI_TELEMETRY
    )
    install_error_handlers(app)
    token = settings.core.internal_token
    app.add_middleware(InternalTokenGuard, token=token.get_secret_value() if token else None)
    # 1000 items of 4096 floats as JSON are ~90 MB: a bound, not a working size
    app.add_middleware(UploadSizeLimit, max_bytes=settings.max_body_bytes)
    app.add_middleware(MetricsMiddleware, service="vector_db")
    app.include_router(health_router({"store": lambda: None if state["opened"] else "opening"}))
    app.state.store = store

    @app.put("/v1/collections/{name}", status_code=201)
    def create(name: str, body: CreateBody, response: Response) -> dict[str, Any]:
        coll, created = store.create(CollectionSpec(name, body.dim, body.metric, body.index, body.params))
        if not created:
            response.status_code = 200
        return coll.info()

    @app.get("/v1/collections")
    def collections() -> dict[str, Any]:
        return {"data": [c.info() for c in store.collections.values()]}

    @app.get("/v1/collections/{name}")
    def collection(name: str) -> dict[str, Any]:
        return store.get(name).info()

    @app.delete("/v1/collections/{name}", status_code=204)
    def drop(name: str) -> Response:
        store.drop(name)
        return Response(status_code=204)

    @app.post("/v1/collections/{name}/upsert")
    def upsert(name: str, body: UpsertBody) -> dict[str, Any]:
        coll = store.get(name)
        vectors = [item.vector for item in body.items]
        if any(len(v) != coll.spec.dim for v in vectors):
            raise BadRequest(f"every vector must have {coll.spec.dim} values", code="invalid_dimension")
        n = coll.upsert(body.owner, [i.id for i in body.items], vectors, [i.payload for i in body.items])
        return {"upserted": n, "count": coll.count(body.owner)}

    @app.post("/v1/collections/{name}/search")
    def search(name: str, body: SearchBody) -> dict[str, Any]:
        hits = store.get(name).search(body.owner, body.vector, body.k, body.where)
        return {"data": hits}

    @app.post("/v1/collections/{name}/delete")
    def delete(name: str, body: DeleteBody) -> dict[str, Any]:
        return {"deleted": store.get(name).delete(body.owner, body.ids)}

    @app.get("/v1/collections/{name}/count")
    def count(name: str, owner: str | None = None) -> dict[str, Any]:
        return {"count": store.get(name).count(owner)}

    return app
