"""Upgrades keep data (issue 25.6): a database left at **every earlier migration head**, with a
user's data in it as that schema held it, is upgraded to the newest schema by the gateway's own
start (``migrate`` in its lifespan, as ``make upgrade`` restarts it) and read back through the
API: sign-in with the stored password hash, the media and its original file, the job with its
OCR result, text search, and where the old schema had them the user's named person, API key
and near-duplicate pair.

The rows are written with the old schema's own columns (reflected at that revision): a column a
later migration added is not written, and one the old schema required is (a NOT NULL column the
data lacks fails the test, so the data follows each schema as a deployment of that time wrote it).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient
from pydantic import SecretStr

from mediafleet.common.settings import CoreSettings
from mediafleet.common.store import create_db_engine, migrate
from mediafleet.gateway.app import create_app
from mediafleet.gateway.security import hash_password
from mediafleet.gateway.settings import AdminSettings, GatewaySettings
from tests.api_helpers import auth
from tests.conftest import ROOT, sample

VERSIONS = ROOT / "services/common/mediafleet/common/store/migrations/versions"
REVISIONS = sorted(p.name.split("_", 1)[0] for p in VERSIONS.glob("0*.py"))
HEAD = REVISIONS[-1]
PASSWORD = "ann-stored-password-1"
API_SECRET = "s3cret-of-the-old-key"
LINES = ["Reduce your risk", "Clean hands with soap and water"]
BOXES = [[328.0, 100.0, 595.0, 121.0], [330.0, 130.0, 640.0, 152.0]]
T0 = dt.datetime(2026, 1, 2, 3, 4, 5)


def ocr_result() -> dict[str, Any]:
    return {
        "engine": "rapidocr",
        "model": "ppocr-v4-mobile",
        "model_version": "0123456789ab",
        "languages": ["en"],
        "text": "\n".join(LINES),
        "lines": [
            {
                "text": t,
                "box": b,
                "polygon": [[b[0], b[1]], [b[2], b[1]], [b[2], b[3]], [b[0], b[3]]],
                "score": 0.93,
            }
            for t, b in zip(LINES, BOXES, strict=True)
        ],
        "elapsed_ms": 41.5,
    }


def rows(bus: Path, zidane: Path) -> list[tuple[str, dict[str, Any]]]:
    """The user's data in insertion order: (table, row with every column any schema had)."""
    media = [
        ("m_bus", bus, 810, 1080, "bus.jpg"),
        ("m_copy", bus, 810, 1080, "bus-copy.jpg"),
        ("m_zidane", zidane, 1280, 720, "zidane.jpg"),
    ]
    out: list[tuple[str, dict[str, Any]]] = [
        ("users", {"id": 7, "username": "ann", "password_hash": hash_password(PASSWORD), "is_admin": False,
                   "must_change_password": False, "token_version": 0, "disabled": False, "created_at": T0}),
    ]  # fmt: skip
    for media_id, path, w, h, name in media:
        out.append(("media", {"id": media_id, "kind": "image", "mime": "image/jpeg", "size_bytes": path.stat().st_size,
                              "width": w, "height": h, "storage_path": f"{media_id}.jpg", "created_at": T0}))  # fmt: skip
        out.append(("media_owners", {"media_id": media_id, "user_id": 7, "filename": name, "created_at": T0}))
    out += [
        ("jobs", {"id": "j_ocr", "user_id": 7, "media_id": "m_bus", "status": "succeeded", "priority": "normal",
                  "options": {}, "created_at": T0, "updated_at": T0, "finished_at": T0, "use_cache": True}),
        ("tasks", {"id": "t_ocr", "job_id": "j_ocr", "name": "ocr", "status": "succeeded", "attempts": 1,
                   "result": ocr_result(), "created_at": T0, "finished_at": T0, "depends_on": [], "cached": False}),
        ("jobs", {"id": "j_faces", "user_id": 7, "media_id": "m_zidane", "status": "succeeded", "priority": "normal",
                  "options": {}, "created_at": T0, "updated_at": T0, "finished_at": T0, "use_cache": True}),
        ("tasks", {"id": "t_faces", "job_id": "j_faces", "name": "faces", "status": "succeeded", "attempts": 1,
                   "result": None, "created_at": T0, "finished_at": T0, "depends_on": [], "cached": False}),
        # the search index: ocr_lines in the first schema, text_segments since (0002 moves them)
        *(("ocr_lines", {"media_id": "m_bus", "line_no": i, "text": t, "x1": b[0], "y1": b[1], "x2": b[2],
                         "y2": b[3], "score": 0.93, "engine": "rapidocr"}) for i, (t, b) in enumerate(zip(LINES, BOXES, strict=True))),
        *(("text_segments", {"media_id": "m_bus", "task": "ocr", "ref": f"lines[{i}]", "seq": i, "text": t,
                             "x1": b[0], "y1": b[1], "x2": b[2], "y2": b[3], "score": 0.93})
          for i, (t, b) in enumerate(zip(LINES, BOXES, strict=True))),
        ("people", {"id": "p_zidane", "user_id": 7, "collection": "dlib", "name": "Zinedine Zidane",
                    "created_at": T0, "updated_at": T0}),
        ("faces", {"id": "f_1", "user_id": 7, "media_id": "m_zidane", "task_id": "t_faces", "task_name": "faces",
                   "ref": "faces[0]", "collection": "dlib", "box": [740.0, 40.0, 1010.0, 380.0], "score": 0.99,
                   "threshold": 0.6, "embedding": bytes(128 * 4), "person_id": "p_zidane", "created_at": T0}),
        ("api_keys", {"id": "kold", "user_id": 7, "name": "backup script",
                      "secret_sha256": hashlib.sha256(API_SECRET.encode()).hexdigest(), "scopes": ["read"],
                      "created_at": T0}),
        # one row per pair, the smaller id first (as store/duplicates.py writes it)
        ("media_duplicates", {"user_id": 7, "media_id": "m_bus", "other_id": "m_copy", "task": "fingerprint",
                              "similarity": 1.0, "method": "phash+dhash", "detail": "0 of 128 bits differ",
                              "created_at": T0}),
    ]  # fmt: skip
    return out


def write_as_the_old_schema_held_it(engine: sa.Engine, data: list[tuple[str, dict[str, Any]]]) -> set[str]:
    """Insert each row into its table as it is at the database's revision: only the columns the
    table has then; a table it does not have yet is skipped. Returns the tables written."""
    written: set[str] = set()
    with engine.begin() as conn:
        existing = set(sa.inspect(conn).get_table_names())
        tables: dict[str, sa.Table] = {}
        for name, row in data:
            if name not in existing:
                continue
            if name not in tables:
                tables[name] = sa.Table(name, sa.MetaData(), autoload_with=conn)
            table = tables[name]
            values = {k: v for k, v in row.items() if k in table.c}
            required = {  # NOT NULL without a default, but not an integer key the database numbers
                c.name
                for c in table.c
                if not c.nullable
                and c.server_default is None
                and not (c.primary_key and isinstance(c.type, sa.Integer))
            }
            assert required <= set(values), f"{name} at this revision needs {required - set(values)}"
            for column in table.c:  # JSON as the old column type stores it
                if column.name in values and isinstance(column.type, sa.JSON) and values[column.name] is None:
                    values[column.name] = sa.null()
            conn.execute(table.insert().values(**values))
            written.add(name)
    return written


@pytest.fixture(params=["postgresql", "sqlite"])
def database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    yield (
        f"sqlite:///{tmp_path / 'old.db'}" if request.param == "sqlite" else request.getfixturevalue("pg_url")
    )


@pytest.mark.parametrize("revision", REVISIONS[:-1])
def test_data_of_every_earlier_schema_reads_back_after_the_upgrade(
    revision: str, database: str, redis_url: str, tmp_path: Path
) -> None:
    media_dir = tmp_path / "media"
    media_dir.mkdir()
    bus, zidane = sample("bus.jpg"), sample("zidane.jpg")
    for media_id, path in (("m_bus", bus), ("m_copy", bus), ("m_zidane", zidane)):
        shutil.copyfile(path, media_dir / f"{media_id}.jpg")
    engine = create_db_engine(database)
    migrate(engine, revision)
    written = write_as_the_old_schema_held_it(engine, rows(bus, zidane))
    engine.dispose()
    assert {"users", "media", "jobs", "tasks"} <= written
    assert ("ocr_lines" in written) == (revision == "0001") and ("text_segments" in written) == (
        revision >= "0002"
    )

    settings = GatewaySettings(
        core=CoreSettings(database_url=database, redis_url=redis_url, media_dir=media_dir),
        secret_key=SecretStr("test-secret-key-with-enough-length-0123456789"),
        admin=AdminSettings(username="admin", password=SecretStr("first-admin-password")),
    )
    with TestClient(create_app(settings)) as c:  # its start upgrades the schema to the newest
        signed = c.post("/v1/auth/token", data={"username": "ann", "password": PASSWORD})
        assert signed.status_code == 200, signed.text
        assert signed.json()["must_change_password"] is False
        h = auth(signed.json()["access_token"])
        assert c.get("/v1/users/me", headers=h).json()["username"] == "ann"

        library = c.get("/v1/media", headers=h).json()
        assert library["count"] == 3
        assert {m["filename"] for m in library["data"]} == {"bus.jpg", "bus-copy.jpg", "zidane.jpg"}
        one = c.get("/v1/media/m_bus", headers=h).json()
        assert (one["kind"], one["width"], one["height"], one["size_bytes"]) == (
            "image",
            810,
            1080,
            bus.stat().st_size,
        )
        original = c.get("/v1/media/m_bus/original", headers=h)
        assert original.status_code == 200 and original.content == bus.read_bytes()

        jobs = c.get("/v1/jobs", headers=h).json()
        assert {j["job_id"] for j in jobs["data"]} == {"j_ocr", "j_faces"}
        job = c.get("/v1/jobs/j_ocr", headers=h).json()
        assert job["status"] == "succeeded" and job["tasks"][0]["name"] == "ocr"
        assert [line["text"] for line in job["results"]["ocr"]["lines"]] == LINES
        assert job["results"]["ocr"]["lines"][1]["box"] == BOXES[1]

        hits = c.get("/v1/search", params={"q": "soap"}, headers=h).json()["data"]
        assert [hit["media_id"] for hit in hits] == ["m_bus"]
        assert hits[0]["matches"][0]["text"] == LINES[1]

        people = c.get("/v1/people", headers=h).json()
        if "people" in written:
            assert [(p["name"], p["faces"]) for p in people["data"]] == [("Zinedine Zidane", 1)]
        else:
            assert people["count"] == 0
        if "api_keys" in written:
            keyed = c.get("/v1/jobs/j_ocr", headers=auth(f"mfk_kold_{API_SECRET}"))
            assert keyed.status_code == 200 and keyed.json()["job_id"] == "j_ocr"
        if "media_duplicates" in written:
            twins = c.get("/v1/media/m_bus/duplicates", headers=h).json()
            assert [(d["media"]["media_id"], d["detail"]) for d in twins["data"]] == [
                ("m_copy", "0 of 128 bits differ")
            ]
    engine = create_db_engine(database)
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT version_num FROM alembic_version")).scalar() == HEAD
    engine.dispose()
    print(f"[upgrade] {revision} -> {HEAD} ({database.split(':')[0]}): {sorted(written)} read back")
