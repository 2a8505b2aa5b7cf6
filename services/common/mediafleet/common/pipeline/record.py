"""Record a succeeded task's result: the single path every recorder takes.

job_manager (results from RQ workers) and the CLI's embedded mode (results from runners in
the same process) both call :func:`record` with the task's row, so a result is indexed the
same way wherever it ran: its text segments replace the media's earlier ones for that task
(full-text search, ``/v1/ask``), its faces are kept for the job's owner and assigned to people
(:mod:`mediafleet.common.store.identities`), its facts (date, place) go on the media row, and a
fingerprint is compared with the owner's other files for near-duplicates
(:mod:`mediafleet.common.store.duplicates`). The result is parsed once
(:meth:`~mediafleet.common.capability.TaskSpec.derive`); the caller gets the parsed
:class:`~mediafleet.common.capability.Derived` back for what it does with vectors (job_manager
queues a vector_db sync in the same transaction).
"""

from __future__ import annotations

import structlog
from sqlalchemy.orm import Session

from mediafleet.common import registry
from mediafleet.common.capability import Derived, is_frames
from mediafleet.common.store import identities
from mediafleet.common.store.duplicates import update_duplicates
from mediafleet.common.store.models import Media, Task
from mediafleet.common.store.search import replace_segments

log = structlog.get_logger("mediafleet.pipeline.record")


def record(session: Session, task: Task) -> Derived | None:
    """Index ``task``'s stored result (``task.result``, a succeeded task of ``task.job``) in
    ``session``; the caller commits. Returns what the result handed over, or None when there
    is no result or no installed contract knows the task (logged; nothing is indexed).

    Raises pydantic.ValidationError when the result does not match the task's result model.
    """
    known = registry.tasks().get(task.name)
    if known is None:
        log.warning("task_contract_missing", task=task.name)
        return None
    if task.result is None:
        return None
    derived = known[1].derive(task.result)
    job = task.job
    replace_segments(session, job.media_id, task.name, derived.segments)
    if derived.faces:
        identities.store_faces(session, task, job.user_id, job.media_id, derived.faces)
    if derived.facts is not None:
        media = session.get(Media, job.media_id)
        if media is not None:  # the latest result that speaks of the file wins
            media.taken_at, media.place, media.country_code = (
                derived.facts.taken_at,
                derived.facts.place,
                derived.facts.country_code,
            )
    if known[1].likeness is not None and not is_frames(task.result):  # a video's frames: not compared
        update_duplicates(session, known[1], task, known[1].result.model_validate(task.result))
    return derived
