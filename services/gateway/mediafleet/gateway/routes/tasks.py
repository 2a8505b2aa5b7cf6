"""``GET /v1/tasks``: every installed task, its options schema and whether the fleet can run it now."""

from __future__ import annotations

import redis
from fastapi import APIRouter
from fastapi.concurrency import run_in_threadpool

from mediafleet.common import registry
from mediafleet.common.worker import TaskReadiness, readiness
from mediafleet.gateway.deps import ContextDep, CurrentUser
from mediafleet.gateway.schemas import TaskInfo, TasksPublic

router = APIRouter(tags=["tasks"])


@router.get("/v1/tasks", response_model=TasksPublic)
async def list_tasks(_: CurrentUser, ctx: ContextDep) -> TasksPublic:
    """Every installed task: what it takes, its options (JSON Schema), its exports, and its
    readiness (``ready`` when a live worker has its models loaded; otherwise ``models_missing``
    with the command that provisions them, ``no_worker``, ...). The web UI ticks the tasks
    ``default_for`` the file's kind that are ``ready``."""

    def ready_now() -> dict[str, TaskReadiness] | None:
        try:
            return readiness(ctx.redis)
        except redis.RedisError:
            return None

    states = await run_in_threadpool(ready_now)
    data = [
        TaskInfo(
            name=name,
            capability=cap.name,
            title=cap.title,
            description=spec.description,
            media_kinds=spec.kinds(),
            default_for=[k for k in spec.kinds() if spec.default_for(k)],
            depends_on=list(spec.depends_on),
            options_schema=spec.options.model_json_schema(),
            exports=sorted(spec.exports),
            readiness=None if states is None else states.get(name),
        )
        for name, (cap, spec) in registry.tasks().items()
    ]
    return TasksPublic(data=data, count=len(data))
