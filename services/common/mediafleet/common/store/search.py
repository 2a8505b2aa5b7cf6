"""Full-text search over the text segments of every capability: PostgreSQL ``tsvector`` or SQLite FTS5.

Both index the same tokens: Unicode word characters, case-folded, no stemming
(PostgreSQL's ``simple`` configuration, SQLite's ``unicode61`` tokenizer). A query
matches a segment that holds every query word (AND).
"""

from __future__ import annotations

import re
from collections.abc import Collection, Sequence
from typing import Any

from sqlalchemy import delete, text
from sqlalchemy.orm import Session

from mediafleet.common.capability import TextSegment
from mediafleet.common.errors import BadRequest
from mediafleet.common.store.models import TextSegmentRow

_WORD = re.compile(r"\w+", re.UNICODE)
MAX_QUERY_WORDS = 16


def query_words(query: str) -> list[str]:
    """Words of a user query; raises BadRequest when it has none."""
    words = _WORD.findall(query)[:MAX_QUERY_WORDS]
    if not words:
        raise BadRequest("search query has no words", code="empty_query")
    return words


def replace_segments(session: Session, media_id: str, task: str, segments: Sequence[TextSegment]) -> int:
    """Index ``segments`` of ``task``'s result for ``media_id``, replacing that task's earlier ones.

    Returns the number of segments indexed. The caller commits.
    """
    session.execute(
        delete(TextSegmentRow).where(TextSegmentRow.media_id == media_id, TextSegmentRow.task == task)
    )
    rows = []
    for seq, seg in enumerate(segments):
        box: list[float | None] = list(seg.box) if seg.box else [None, None, None, None]
        rows.append(
            TextSegmentRow(
                media_id=media_id,
                task=task,
                ref=seg.ref,
                seq=seq,
                text=seg.text,
                x1=box[0],
                y1=box[1],
                x2=box[2],
                y2=box[3],
                start=seg.start,
                end=seg.end,
                score=seg.score,
            )
        )
    session.add_all(rows)
    return len(rows)


def search_text(
    session: Session,
    query: str,
    user_id: int | None,
    limit: int = 20,
    match: str = "all",
    exclude_tasks: Collection[str] = (),
) -> list[dict[str, Any]]:
    """Media whose indexed text matches ``query``, best first, each with its matching segments.

    ``match``: ``"all"`` words (AND, the search API) or ``"any"`` word (OR, ranked: what
    retrieval for a question needs). ``exclude_tasks``: segments of these tasks are left out
    (``/v1/ask`` leaves out text a model wrote, see ``TaskSpec.generated``).
    ``user_id`` restricts results to media that user uploaded and to the tasks that user ran
    on them (None: all, embedded mode).
    Returns ``[{"media_id", "score", "matches": [{"task", "ref", "text", "box", "start",
    "end", "score"}]}]``; ``score`` is the rank of the best segment (higher is better).
    """
    words = query_words(query)
    dialect = session.get_bind().dialect.name
    params: dict[str, Any] = {"limit": limit * 10}
    owner_join, own_result = "", ""
    if user_id is not None:
        # The user's own media, and only the text of tasks the user ran on it: segments belong
        # to the content (stored once), so another user's OCR of the same bytes must not show.
        owner_join = "JOIN media_owners o ON o.media_id = s.media_id AND o.user_id = :uid"
        own_result = """AND EXISTS (SELECT 1 FROM jobs j JOIN tasks t ON t.job_id = j.id
                WHERE j.user_id = :uid AND j.media_id = s.media_id AND t.name = s.task
                AND t.status = 'succeeded')"""
        params["uid"] = user_id
    for i, name in enumerate(sorted(exclude_tasks)):
        own_result += f" AND s.task <> :xt{i}"
        params[f"xt{i}"] = name
    cols = 's.media_id, s.task, s.ref, s.seq, s.text, s.x1, s.y1, s.x2, s.y2, s.start, s."end", s.score'
    if dialect == "postgresql":
        params["q"] = (" | " if match == "any" else " & ").join(_pg_lexeme(w) for w in words)
        sql = f"""
            SELECT {cols}, ts_rank(s.tsv, to_tsquery('simple', :q)) AS rank
            FROM text_segments s {owner_join}
            WHERE s.tsv @@ to_tsquery('simple', :q) {own_result}
            ORDER BY rank DESC, s.media_id, s.task, s.seq
            LIMIT :limit"""
    elif dialect == "sqlite":
        params["q"] = (" OR " if match == "any" else " ").join(
            '"' + w.replace('"', '""') + '"' for w in words
        )
        sql = f"""
            SELECT {cols}, -bm25(text_segments_fts) AS rank
            FROM text_segments_fts f JOIN text_segments s ON s.id = f.rowid {owner_join}
            WHERE text_segments_fts MATCH :q {own_result}
            ORDER BY rank DESC, s.media_id, s.task, s.seq
            LIMIT :limit"""
    else:
        raise ValueError(f"full-text search supports postgresql and sqlite, not {dialect}")
    groups: dict[str, dict[str, Any]] = {}
    for row in session.execute(text(sql), params).mappings():
        group = groups.setdefault(
            row["media_id"], {"media_id": row["media_id"], "score": float(row["rank"]), "matches": []}
        )
        box = [row["x1"], row["y1"], row["x2"], row["y2"]]
        group["matches"].append(
            {
                "task": row["task"],
                "ref": row["ref"],
                "text": row["text"],
                "box": box if None not in box else None,
                "start": row["start"],
                "end": row["end"],
                "score": row["score"],
            }
        )
    return list(groups.values())[:limit]


def _pg_lexeme(word: str) -> str:
    # Quote each word as a tsquery lexeme so no character is read as an operator.
    return "'" + word.lower().replace("'", "''").replace("\\", "\\\\") + "'"
