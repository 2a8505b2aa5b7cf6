"""Embedded mode: the same engines and the same SQL store in one process.

No Redis, no database server, no Docker: results go to a SQLite file
(``MEDIAFLEET_DATABASE_URL``, default ``sqlite:///var/mediafleet.db``) with an FTS5
index, so ``mediafleet search`` finds what ``mediafleet analyze`` read.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

from sqlalchemy import select

from mediafleet.common.media import probe_image
from mediafleet.common.store import Media, MediaOwner, User, create_db_engine, migrate, session_factory
from mediafleet.common.store.search import replace_ocr_lines, search_ocr
from mediafleet.ocr_detection.runner import OcrRunner
from mediafleet.ocr_detection.settings import OcrSettings

LOCAL_USER = "local"


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


class EmbeddedAnalyzer:
    def __init__(self, settings: OcrSettings | None = None, database_url: str | None = None):
        self.settings = settings or OcrSettings()
        self.engine = create_db_engine(database_url or self.settings.core.database_url)
        migrate(self.engine)
        self.sessions = session_factory(self.engine)
        self.runner = OcrRunner(self.settings)

    def _local_user_id(self, session) -> int:  # noqa: ANN001
        user = session.scalar(select(User).where(User.username == LOCAL_USER))
        if user is None:
            user = User(
                username=LOCAL_USER,
                password_hash="!",
                is_admin=False,
                must_change_password=False,
                token_version=0,
            )
            session.add(user)
            session.flush()
        return user.id

    def analyze(self, path: Path, tasks: list[str], options: dict[str, dict[str, Any]]) -> dict[str, Any]:
        """Probe, run ``tasks`` and store the results. Raises InvalidMedia, UnsupportedMediaType, BadRequest."""
        path = Path(path)
        probe = probe_image(path)
        media_id = sha256_file(path)
        media = {
            "media_id": media_id,
            "kind": probe.kind,
            "mime": probe.mime,
            "size_bytes": path.stat().st_size,
            "width": probe.width,
            "height": probe.height,
        }
        results: dict[str, Any] = {}
        for task in tasks:
            if task == "ocr":
                results["ocr"] = self.runner.analyze(path, options.get("ocr")).model_dump()
        with self.sessions.begin() as session:
            if session.get(Media, media_id) is None:
                session.add(
                    Media(
                        id=media_id,
                        kind=probe.kind,
                        mime=probe.mime,
                        size_bytes=media["size_bytes"],
                        width=probe.width,
                        height=probe.height,
                        storage_path=str(path.resolve()),
                    )
                )
            uid = self._local_user_id(session)
            if session.get(MediaOwner, (media_id, uid)) is None:
                session.add(MediaOwner(media_id=media_id, user_id=uid, filename=path.name))
            if "ocr" in results:
                replace_ocr_lines(session, media_id, results["ocr"])
        return {"file": str(path), "media": media, "results": results}

    def search(self, query: str, limit: int = 20) -> list[dict[str, Any]]:
        with self.sessions() as session:
            hits = search_ocr(session, query, user_id=None, limit=limit)
            for hit in hits:
                owner = session.scalar(select(MediaOwner).where(MediaOwner.media_id == hit["media_id"]))
                media = session.get(Media, hit["media_id"])
                hit["filename"] = owner.filename if owner else None
                hit["path"] = media.storage_path if media else None
            return hits
