"""``/v1/admin``: what the fleet runs now, for the web UI's admin view."""

from __future__ import annotations

import datetime as dt

import redis
from fastapi import APIRouter
from fastapi.concurrency import run_in_threadpool
from sqlalchemy import func, select

from mediafleet.common.errors import ServiceUnavailable
from mediafleet.common.queues import job_manager_liveness
from mediafleet.common.schemas import JobStatus
from mediafleet.common.store import Task
from mediafleet.common.store.models import utcnow
from mediafleet.common.worker import fleet_report
from mediafleet.gateway.deps import AdminUser, ContextDep, SessionDep
from mediafleet.gateway.schemas import FleetStatus

router = APIRouter(tags=["admin"])


@router.get("/v1/admin/services", response_model=FleetStatus)
async def services(_: AdminUser, ctx: ContextDep, session: SessionDep) -> FleetStatus:
    """Each capability's live workers (per device), tasks waiting per priority and how long the
    oldest has waited, its tasks that failed in the last hour, and the model versions its workers
    loaded (admin only); and whether job_manager reconciles. 503 ``redis_unavailable`` while
    Redis is down (the database-backed API keeps working)."""

    def report() -> FleetStatus:
        cutoff = utcnow() - dt.timedelta(hours=1)
        failed = dict(
            session.execute(
                select(Task.name, func.count())
                .where(Task.status == JobStatus.failed, Task.finished_at >= cutoff)
                .group_by(Task.name)
            ).all()
        )
        try:
            capabilities = fleet_report(ctx.redis)
            for cap in capabilities:
                cap["failed_last_hour"] = sum(failed.get(t, 0) for t in cap["tasks"])
            return FleetStatus(job_manager=job_manager_liveness(ctx.redis), capabilities=capabilities)
        except redis.RedisError as exc:
            raise ServiceUnavailable(f"Redis is unavailable: {exc}", code="redis_unavailable") from exc

    return await run_in_threadpool(report)
