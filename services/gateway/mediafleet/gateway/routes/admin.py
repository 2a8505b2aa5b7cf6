"""``/v1/admin``: what the fleet runs now, for the web UI's admin view."""

from __future__ import annotations

import redis
from fastapi import APIRouter
from fastapi.concurrency import run_in_threadpool

from mediafleet.common.errors import ServiceUnavailable
from mediafleet.common.queues import job_manager_liveness
from mediafleet.common.worker import fleet_report
from mediafleet.gateway.deps import AdminUser, ContextDep
from mediafleet.gateway.schemas import FleetStatus

router = APIRouter(tags=["admin"])


@router.get("/v1/admin/services", response_model=FleetStatus)
async def services(_: AdminUser, ctx: ContextDep) -> FleetStatus:
    """Each capability's live workers, tasks waiting per priority, and the model versions its
    workers loaded (admin only); and whether job_manager reconciles. 503 ``redis_unavailable``
    while Redis is down (the database-backed API keeps working)."""

    def report() -> FleetStatus:
        try:
            return FleetStatus(
                job_manager=job_manager_liveness(ctx.redis), capabilities=fleet_report(ctx.redis)
            )
        except redis.RedisError as exc:
            raise ServiceUnavailable(f"Redis is unavailable: {exc}", code="redis_unavailable") from exc

    return await run_in_threadpool(report)
