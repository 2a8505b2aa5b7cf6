"""People and the faces kept for them (grouping itself: mediafleet.common.store.identities)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from sqlalchemy import select
from sqlalchemy.orm import Session

from mediafleet.common.store import FaceRow, Person


def faces_of_person(session: Session, *, person_id: str) -> Sequence[FaceRow]:
    """The person's faces, by media and their place in its result."""
    return session.scalars(
        select(FaceRow).where(FaceRow.person_id == person_id).order_by(FaceRow.media_id, FaceRow.ref)
    ).all()


def people_of(session: Session, *, user_id: int, named: bool | None = None) -> Sequence[Person]:
    """The user's people; ``named`` True: those with a name, False: the unnamed clusters."""
    query = select(Person).where(Person.user_id == user_id)
    if named is True:
        query = query.where(Person.name.is_not(None))
    elif named is False:
        query = query.where(Person.name.is_(None))
    return session.scalars(query).all()


def faces_of(session: Session, *, user_id: int, limit: int, media_id: str | None = None) -> Sequence[FaceRow]:
    """The user's faces (of one media with ``media_id``), by media and place, at most ``limit``."""
    query = select(FaceRow).where(FaceRow.user_id == user_id)
    if media_id is not None:
        query = query.where(FaceRow.media_id == media_id)
    return session.scalars(query.order_by(FaceRow.media_id, FaceRow.ref).limit(limit)).all()


def faces_by_id(session: Session, *, ids: Iterable[str]) -> dict[str, FaceRow]:
    """The faces of ``ids`` that exist, by id (whoever owns them: the caller checks)."""
    return {r.id: r for r in session.scalars(select(FaceRow).where(FaceRow.id.in_(list(ids))))}
