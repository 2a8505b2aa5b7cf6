"""People and faces of the caller: ``/v1/people`` (enrol, name, merge, forget, their media),
``/v1/faces`` (a face, "find this face everywhere") and ``POST /v1/faces/verify``.

Faces come from tasks whose contract declares ``faces`` (:class:`~mediafleet.common.capability.FaceItem`);
job_manager stores them and assigns people (:mod:`mediafleet.common.store.identities`). Every
query is scoped to the caller: another user's face or person is 404, as if it did not exist.
"""

from __future__ import annotations

import base64
from typing import Annotated, Any

import numpy as np
from fastapi import APIRouter, Query, Request, Response, status
from pydantic import ValidationError
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile

from mediafleet.common import registry
from mediafleet.common.errors import (
    BadRequest,
    Conflict,
    NotFound,
    ServiceUnavailable,
    ValidationFailed,
    bounded_details,
)
from mediafleet.common.store import FaceRow, Media, Person, identities
from mediafleet.common.vectors import VectorDbError, item_id
from mediafleet.gateway import queries
from mediafleet.gateway.crud import people as crud
from mediafleet.gateway.crud.media import filenames
from mediafleet.gateway.deps import ContextDep, CurrentUser, SessionDep, owned
from mediafleet.gateway.routes.media import cached_face_crop
from mediafleet.gateway.routes.search import require_vector_db
from mediafleet.gateway.schemas import (
    BINARY,
    FaceMatch,
    FaceMatches,
    FacePublic,
    PeoplePublic,
    PersonCreate,
    PersonMedia,
    PersonMediaList,
    PersonMerge,
    PersonPublic,
    PersonRefPublic,
    PersonSplit,
    PersonUpdate,
    VerifyFaces,
    VerifyPublic,
)

router = APIRouter(tags=["people"])


# -- helpers -----------------------------------------------------------------------------------


def _person(session: Session, user_id: int, person_id: str) -> Person:
    return owned(session, Person, person_id, user_id, noun="person", code="person_not_found")


def _face(session: Session, user_id: int, fid: str) -> FaceRow:
    return owned(session, FaceRow, fid, user_id, noun="face", code="face_not_found")


def face_public(face: FaceRow, filename: str | None = None) -> FacePublic:
    person = face.person
    return FacePublic(
        face_id=face.id, media_id=face.media_id, filename=filename, task=face.task, ref=face.ref,
        box=face.box, score=face.score, t=face.t, collection=face.collection, cluster_id=face.person_id,
        person=PersonRefPublic(id=person.id, name=person.name, similarity=face.similarity)
        if person is not None and person.name
        else None,
    )  # fmt: skip


def person_public(session: Session, person: Person) -> PersonPublic:
    faces = crud.faces_of_person(session, person_id=person.id)
    sample = max(faces, key=lambda f: f.score, default=None)
    return PersonPublic(
        id=person.id, name=person.name, collection=person.collection, faces=len(faces),
        media=len({f.media_id for f in faces}), sample_face_id=sample.id if sample else None,
        created_at=person.created_at, updated_at=person.updated_at,
    )  # fmt: skip


# -- people -----------------------------------------------------------------------------------


@router.get("/v1/people", response_model=PeoplePublic)
def list_people(
    user: CurrentUser,
    session: SessionDep,
    named: Annotated[
        bool | None, Query(description="true: named people only; false: unnamed clusters")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
    offset: Annotated[int, Query(ge=0, le=1_000_000_000)] = 0,
) -> PeoplePublic:
    """The caller's people, named first (by name), then clusters by size."""
    people = [person_public(session, p) for p in crud.people_of(session, user_id=user.id, named=named)]
    people.sort(key=lambda p: (p.name is None, (p.name or "").lower(), -p.faces, p.id))
    return PeoplePublic(data=people[offset : offset + limit], count=len(people))


@router.post("/v1/people", response_model=PersonPublic, status_code=status.HTTP_201_CREATED)
def enrol(body: PersonCreate, user: CurrentUser, session: SessionDep) -> PersonPublic:
    """Enrol a named person from the caller's faces (``face_ids`` of one embedder).

    The faces leave their clusters; unnamed faces whose closest face of the new person is
    at or above their embedder's threshold join it too. 404 for a face that is not the
    caller's, 400 for faces of different embedders.
    """
    try:
        person = identities.enrol(session, user.id, body.name, body.face_ids)
    except LookupError as exc:
        raise NotFound(f"face {exc.args[0]} not found", code="face_not_found") from exc
    except ValueError as exc:
        raise BadRequest(str(exc), code="mixed_embedders") from exc
    session.commit()
    return person_public(session, person)


@router.get("/v1/people/{person_id}", response_model=PersonPublic)
def get_person(person_id: str, user: CurrentUser, session: SessionDep) -> PersonPublic:
    return person_public(session, _person(session, user.id, person_id))


@router.patch("/v1/people/{person_id}", response_model=PersonPublic)
def name_person(person_id: str, body: PersonUpdate, user: CurrentUser, session: SessionDep) -> PersonPublic:
    """Name a person or a cluster (``null`` turns it back into an unnamed cluster)."""
    person = _person(session, user.id, person_id)
    person.name = body.name
    session.commit()
    return person_public(session, person)


@router.post("/v1/people/{person_id}/merge", response_model=PersonPublic)
def merge_people(person_id: str, body: PersonMerge, user: CurrentUser, session: SessionDep) -> PersonPublic:
    """Merge ``person_ids`` into this person: their faces move here, they are deleted.

    The person keeps its name (or takes the first merged name when it has none). 404 for a
    person that is not the caller's; 400 for itself or a person of another embedder.
    """
    into = _person(session, user.id, person_id)
    others = [_person(session, user.id, pid) for pid in dict.fromkeys(body.person_ids)]
    try:
        identities.merge(session, into, others)
    except ValueError as exc:
        raise BadRequest(str(exc), code="invalid_merge") from exc
    session.commit()
    return person_public(session, into)


@router.post("/v1/people/{person_id}/split", response_model=PersonPublic, status_code=status.HTTP_201_CREATED)
def split_person(person_id: str, body: PersonSplit, user: CurrentUser, session: SessionDep) -> PersonPublic:
    """Split a wrongly merged person: the chosen faces move to a new person (``name``, or an
    unnamed cluster), and are remembered as not the same as the faces left behind (no
    re-clustering joins them again; a merge does, as the user's word). 201 with the new
    person; 404 for a person that is not the caller's or a face that is not this person's;
    400 ``invalid_split`` for none or all of its faces."""
    person = _person(session, user.id, person_id)
    try:
        new = identities.split(session, person, body.face_ids, body.name)
    except LookupError as exc:
        raise NotFound(f"face {exc.args[0]} is not a face of this person", code="face_not_found") from exc
    except ValueError as exc:
        raise BadRequest(str(exc), code="invalid_split") from exc
    session.commit()
    return person_public(session, new)


@router.delete("/v1/people/{person_id}", status_code=status.HTTP_204_NO_CONTENT)
def forget_person(person_id: str, user: CurrentUser, session: SessionDep, ctx: ContextDep) -> Response:
    """Forget a person: their faces, embeddings (vector_db, stored results, result cache) and name.

    vector_db's items go first; when vector_db is configured but unreachable the answer is
    503 and nothing is deleted.
    """
    person = _person(session, user.id, person_id)
    faces = list(person.faces)
    if faces and ctx.vectors is not None:
        ids = [item_id(f.media_id, f.task, f.ref) for f in faces]
        try:
            ctx.vectors.delete(person.collection, str(user.id), ids)
        except VectorDbError as exc:
            raise ServiceUnavailable(
                f"vector_db is unreachable, nothing was deleted: {exc}", code="vector_db_unavailable"
            ) from exc
    identities.forget(session, person)
    session.commit()
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get("/v1/people/{person_id}/media", response_model=PersonMediaList)
def person_media(person_id: str, user: CurrentUser, session: SessionDep) -> PersonMediaList:
    """Every media of the caller where this person's faces were found, with those faces."""
    person = _person(session, user.id, person_id)
    faces = crud.faces_of_person(session, person_id=person.id)
    names = filenames(session, user_id=user.id, media_ids={f.media_id for f in faces})
    grouped: dict[str, list[FacePublic]] = {}
    for face in faces:
        grouped.setdefault(face.media_id, []).append(face_public(face, names.get(face.media_id)))
    data = [PersonMedia(media_id=m, filename=names.get(m), faces=fs) for m, fs in grouped.items()]
    return PersonMediaList(person_id=person.id, data=data, count=len(data))


@router.post("/v1/people/recluster")
def recluster(
    user: CurrentUser, session: SessionDep, collection: Annotated[str, Query(min_length=1, max_length=128)]
) -> dict[str, Any]:
    """Rebuild the caller's unnamed clusters of one embedder collection; named people stay as they are."""
    clusters = identities.recluster(session, user.id, collection)
    session.commit()
    return {"collection": collection, "clusters": clusters}


# -- faces -------------------------------------------------------------------------------------


@router.get("/v1/faces", response_model=list[FacePublic])
def list_faces(
    user: CurrentUser,
    session: SessionDep,
    media_id: Annotated[str | None, Query(max_length=64)] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 200,
) -> list[FacePublic]:
    """The caller's faces, optionally of one media."""
    rows = crud.faces_of(session, user_id=user.id, limit=limit, media_id=media_id)
    names = filenames(session, user_id=user.id, media_ids={f.media_id for f in rows})
    return [face_public(f, names.get(f.media_id)) for f in rows]


@router.get("/v1/faces/{face_id}", response_model=FacePublic)
def get_face(face_id: str, user: CurrentUser, session: SessionDep) -> FacePublic:
    face = _face(session, user.id, face_id)
    return face_public(
        face, filenames(session, user_id=user.id, media_ids={face.media_id}).get(face.media_id)
    )


@router.post("/v1/faces/{face_id}/not-this-person", response_model=FacePublic)
def not_this_person(face_id: str, user: CurrentUser, session: SessionDep) -> FacePublic:
    """ "This is not X": the face leaves its person and is remembered as not being them (no
    later job, re-clustering or enrolment puts it back; a merge does, as the user's word). It
    joins the closest other person it may (at or above the embedder's threshold), or a new
    unnamed cluster; the answer is the face with its new person. A cluster left empty goes.
    404 for a face that is not the caller's; 409 ``no_person`` for a face in no person."""
    face = _face(session, user.id, face_id)
    try:
        identities.not_person(session, face)
    except ValueError as exc:
        raise Conflict(str(exc), code="no_person") from exc
    session.commit()
    return face_public(
        face, filenames(session, user_id=user.id, media_ids={face.media_id}).get(face.media_id)
    )


@router.get(
    "/v1/faces/{face_id}/thumbnail",
    response_class=Response,
    responses={200: {"content": {"image/jpeg": BINARY}, "description": "JPEG, size x size pixels"}},
)
def face_thumbnail(
    face_id: str,
    user: CurrentUser,
    session: SessionDep,
    ctx: ContextDep,
    size: Annotated[int, Query(description="pixels: 96 or 192", json_schema_extra={"enum": [96, 192]})] = 96,
) -> Response:
    """The face cut out of its image (or its video frame), square, with a margin: how the
    People page tells clusters apart. Made once and kept. 404 for another user's face."""
    if size not in (96, 192):
        raise ValidationFailed("face thumbnail size must be 96 or 192", code="invalid_size")
    face = _face(session, user.id, face_id)
    media = session.get(Media, face.media_id)
    if media is None:
        raise NotFound(f"face {face_id} not found", code="face_not_found")
    data = cached_face_crop(ctx, media, face.id, list(face.box), face.t, size)
    return Response(data, media_type="image/jpeg", headers={"Cache-Control": "private, max-age=86400"})


@router.get("/v1/faces/{face_id}/matches", response_model=FaceMatches)
def face_matches(
    face_id: str,
    user: CurrentUser,
    session: SessionDep,
    ctx: ContextDep,
    limit: Annotated[int, Query(ge=1, le=200)] = 20,
    all_matches: Annotated[bool, Query(alias="all", description="also faces below the threshold")] = False,
) -> FaceMatches:
    """Find this face everywhere: the caller's other faces nearest to it in vector_db, best first.

    Only faces at or above the embedder's threshold unless ``all=true``. 503 without vector_db.
    """
    face = _face(session, user.id, face_id)
    vectors = require_vector_db(ctx.vectors)
    vector = identities.vector_of(face)
    if not vector.size:
        raise BadRequest(f"face {face_id} has no embedding", code="no_embedding")
    hits = vectors.search(face.collection, str(user.id), [float(v) for v in vector], limit + 1)
    slots = {
        identities.face_id(user.id, h["payload"]["media_id"], h["payload"]["task"], face.collection,
                           h["payload"]["ref"]): float(h["score"])
        for h in hits
    }  # fmt: skip
    rows = crud.faces_by_id(session, ids=slots)
    names = filenames(session, user_id=user.id, media_ids={r.media_id for r in rows.values()})
    data = []
    for fid, sim in sorted(slots.items(), key=lambda kv: -kv[1]):
        row = rows.get(fid)
        if row is None or fid == face.id or row.media_id not in names:
            continue
        if sim < face.threshold and not all_matches:
            continue
        data.append(FaceMatch(face=face_public(row, names[row.media_id]), similarity=round(sim, 6),
                              same_person=sim >= face.threshold))  # fmt: skip
    data = data[:limit]
    return FaceMatches(face_id=face.id, collection=face.collection, threshold=face.threshold, data=data,
                       count=len(data))  # fmt: skip


@router.post(
    "/v1/faces/verify",
    response_model=VerifyPublic,
    openapi_extra={
        "requestBody": {
            "content": {
                "application/json": {"schema": VerifyFaces.model_json_schema()},
                "multipart/form-data": {
                    "schema": {
                        "type": "object",
                        "required": ["image1", "image2"],
                        "properties": {
                            "image1": {"type": "string", "format": "binary"},
                            "image2": {"type": "string", "format": "binary"},
                            "detector": {"type": "string"},
                            "embedder": {"type": "string"},
                        },
                    }
                },
            },
            "required": True,
        }
    },
)
async def verify(request: Request, user: CurrentUser, ctx: ContextDep) -> VerifyPublic:
    """One-to-one face verification: are these the same person?

    JSON ``{"face_ids": [a, b]}`` compares two stored faces of the caller (one embedder).
    Multipart ``image1``, ``image2`` (optional ``detector``, ``embedder``) compares the
    largest face of each image, computed by a worker of the capability answering
    ``face_verify`` queries (503 when none runs; 422 ``no_face`` when an image has none).
    Returns the cosine similarity, the embedder's threshold and ``same_person``.
    """
    ctype = request.headers.get("content-type", "")
    if ctype.startswith("multipart/form-data"):
        form = await request.form()
        files = [f for f in (form.get("image1"), form.get("image2")) if isinstance(f, UploadFile)]
        if len(files) != 2:
            raise BadRequest("send two files, image1 and image2", code="missing_image")
        payload: dict[str, str | list[str]] = {
            "images": [base64.b64encode(await f.read()).decode() for f in files]
        }
        for key in ("detector", "embedder"):
            value = form.get(key)
            if isinstance(value, str) and value:
                payload[key] = value
        cap, spec = registry.find_query("face_verify")
        try:
            query = spec.input.model_validate(payload)
        except ValidationError as exc:
            errors = bounded_details(
                exc.errors(include_url=False, include_context=False, include_input=False)
            )
            raise ValidationFailed(f"invalid verify request: {errors[0]['msg']}", details=errors) from exc
        answer = await run_in_threadpool(
            queries.ask, ctx.redis, cap, spec, query, ctx.settings.core.query_timeout_s
        )
        data = answer.model_dump()
        return VerifyPublic(**{k: data.get(k) for k in VerifyPublic.model_fields if k in data})
    try:
        body = VerifyFaces.model_validate_json(await request.body())
    except ValidationError as exc:
        errors = bounded_details(exc.errors(include_url=False, include_context=False, include_input=False))
        raise ValidationFailed("send JSON {\"face_ids\": [a, b]} or multipart image1, image2",
                               details=errors) from exc  # fmt: skip
    with ctx.sessions() as session:
        a, b = (_face(session, user.id, fid) for fid in body.face_ids)
        if a.collection != b.collection:
            raise BadRequest(f"the faces come from different embedders ({a.collection}, {b.collection})",
                             code="mixed_embedders")  # fmt: skip
        va, vb = identities.vector_of(a), identities.vector_of(b)
        if not va.size or not vb.size:
            raise BadRequest("a face has no embedding (its person was forgotten)", code="no_embedding")
        sim = float(np.dot(va, vb))
        return VerifyPublic(similarity=round(sim, 4), distance=round(1 - sim, 4), threshold=a.threshold,
                            same_person=sim >= a.threshold, embedder=a.collection, face_ids=[a.id, b.id])  # fmt: skip
