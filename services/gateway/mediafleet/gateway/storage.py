"""Content-addressed media storage on the media volume.

An upload is streamed to a temporary file while its SHA-256 is computed, probed
(real content type from the bytes), then moved atomically to
``<media_dir>/<sha[0:2]>/<sha[2:4]>/<sha><ext>``. A rejected upload leaves nothing behind.
"""

from __future__ import annotations

import errno
import hashlib
import os
import shutil
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from mediafleet.common.errors import InsufficientStorage, PayloadTooLarge
from mediafleet.common.media import MediaProbe, probe_media

CHUNK = 1 << 20


@dataclass(frozen=True)
class StoredFile:
    sha256: str
    size_bytes: int
    probe: MediaProbe
    relative_path: str
    #: True when this call created the file (False: same bytes were already stored).
    created: bool


class MediaStore:
    def __init__(self, root: Path, max_bytes: int, max_duration_s: float | None = None):
        self.root = Path(root)
        self.max_bytes = max_bytes
        self.max_duration_s = max_duration_s
        self.tmp = self.root / ".tmp"
        self.tmp.mkdir(parents=True, exist_ok=True)

    def path_of(self, relative_path: str) -> Path:
        return self.root / relative_path

    def save(self, source: BinaryIO) -> StoredFile:
        """Store ``source``. Raises PayloadTooLarge, InvalidMedia, UnsupportedMediaType (nothing kept)."""
        tmp = self.tmp / f"{uuid.uuid4().hex}.part"
        digest = hashlib.sha256()
        size = 0
        try:
            with tmp.open("wb") as out:
                for block in iter(lambda: source.read(CHUNK), b""):
                    size += len(block)
                    if size > self.max_bytes:
                        raise PayloadTooLarge(
                            f"upload exceeds the limit of {self.max_bytes} bytes",
                            details={"max_bytes": self.max_bytes},
                        )
                    digest.update(block)
                    out.write(block)
            probe = probe_media(tmp, self.max_duration_s)
            sha = digest.hexdigest()
            rel = f"{sha[:2]}/{sha[2:4]}/{sha}{probe.extension}"
            final = self.root / rel
            final.parent.mkdir(parents=True, exist_ok=True)
            created = not final.exists()
            if created:
                os.replace(tmp, final)
            return StoredFile(sha, size, probe, rel, created)
        except OSError as exc:
            if exc.errno in (errno.ENOSPC, errno.EDQUOT):
                raise InsufficientStorage(
                    "the media disk is full: nothing was stored; an admin must free space",
                    details={"free_bytes": self.free_bytes()},
                ) from exc
            raise
        finally:
            tmp.unlink(missing_ok=True)

    def free_bytes(self) -> int:
        """Bytes free on the media disk (for this process's user)."""
        return shutil.disk_usage(self.root).free

    def thumbnail(self, name: str, make: Callable[[], bytes]) -> bytes:
        """The bytes of thumbnail ``.thumbs/<name>``, made by ``make`` the first time and kept
        (:meth:`derived_file`)."""
        made: list[bytes] = []

        def write(part: Path) -> None:
            made.append(make())
            part.write_bytes(made[0])

        path = self.derived_file(name, write)
        return made[0] if made else path.read_bytes()

    def derived_file(self, name: str, write: Callable[[Path], object]) -> Path:
        """The path of derived file ``.thumbs/<name>``, written by ``write(part)`` the first time
        and kept: written as a part in ``.tmp`` and renamed, so a reader never sees half a file
        and a killed process leaves only a part that :meth:`clean_stale_parts` removes."""
        path = self.root / ".thumbs" / name
        if not path.is_file():
            path.parent.mkdir(parents=True, exist_ok=True)
            part = self.tmp / f"{uuid.uuid4().hex}.part"
            try:
                write(part)
                os.replace(part, path)
            finally:
                part.unlink(missing_ok=True)
        return path

    def clean_stale_parts(self, older_than_s: float = 3600.0) -> int:
        """Remove ``.tmp/*.part`` files older than ``older_than_s`` (uploads a killed gateway left
        behind; a younger one may be an upload in progress on another gateway); returns how many."""
        cutoff = time.time() - older_than_s
        removed = 0
        for part in self.tmp.glob("*.part"):
            try:
                if part.stat().st_mtime < cutoff:
                    part.unlink()
                    removed += 1
            except FileNotFoundError:
                pass  # another gateway removed it first
        return removed

    def discard(self, stored: StoredFile) -> None:
        """Remove a file this process just created (its database row could not be written)."""
        if stored.created:
            self.path_of(stored.relative_path).unlink(missing_ok=True)
