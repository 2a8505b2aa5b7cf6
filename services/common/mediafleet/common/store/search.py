"""Full-text search over OCR lines: PostgreSQL ``tsvector`` or SQLite FTS5.

Both index the same tokens: Unicode word characters, case-folded, no stemming
(PostgreSQL's ``simple`` configuration, SQLite's ``unicode61`` tokenizer). A query
matches a line that holds every query word (AND).
"""

from __future__ import annotations

import re
from typing import Any

from sqlalchemy import delete, text
from sqlalchemy.orm import Session

from mediafleet.common.errors import BadRequest
from mediafleet.common.store.models import OcrLineRow

_WORD = re.compile(r"\w+", re.UNICODE)
MAX_QUERY_WORDS = 16


def query_words(query: str) -> list[str]:
    """Words of a user query; raises BadRequest when it has none."""
    words = _WORD.findall(query)[:MAX_QUERY_WORDS]
    if not words:
        raise BadRequest("search query has no words", code="empty_query")
    return words


def replace_ocr_lines(session: Session, media_id: str, result: dict[str, Any]) -> int:
    """Index an OCR result (``OcrResult`` as a dict) for ``media_id``; the latest OCR replaces earlier ones.

    Returns the number of lines indexed. The caller commits.
    """
    session.execute(delete(OcrLineRow).where(OcrLineRow.media_id == media_id))
    rows = [
        OcrLineRow(
            media_id=media_id,
            line_no=i,
            text=line["text"],
            x1=line["box"][0],
            y1=line["box"][1],
            x2=line["box"][2],
            y2=line["box"][3],
            score=line["score"],
            engine=result["engine"],
        )
        for i, line in enumerate(result["lines"])
    ]
    session.add_all(rows)
    return len(rows)


def search_ocr(session: Session, query: str, user_id: int | None, limit: int = 20) -> list[dict[str, Any]]:
    """Media whose OCR text matches ``query``, best first, each with its matching lines.

    ``user_id`` restricts results to media that user uploaded (None: all, embedded mode).
    Returns ``[{"media_id", "score", "matches": [{"line_no", "text", "box", "score"}]}]``;
    ``score`` is the rank of the best line (higher is better).
    """
    words = query_words(query)
    dialect = session.get_bind().dialect.name
    params: dict[str, Any] = {"limit": limit * 10}
    owner_join = ""
    if user_id is not None:
        owner_join = "JOIN media_owners o ON o.media_id = l.media_id AND o.user_id = :uid"
        params["uid"] = user_id
    if dialect == "postgresql":
        params["q"] = " & ".join(_pg_lexeme(w) for w in words)
        sql = f"""
            SELECT l.media_id, l.line_no, l.text, l.x1, l.y1, l.x2, l.y2, l.score,
                   ts_rank(l.tsv, to_tsquery('simple', :q)) AS rank
            FROM ocr_lines l {owner_join}
            WHERE l.tsv @@ to_tsquery('simple', :q)
            ORDER BY rank DESC, l.media_id, l.line_no
            LIMIT :limit"""
    elif dialect == "sqlite":
        params["q"] = " ".join('"' + w.replace('"', '""') + '"' for w in words)
        sql = f"""
            SELECT l.media_id, l.line_no, l.text, l.x1, l.y1, l.x2, l.y2, l.score,
                   -bm25(ocr_lines_fts) AS rank
            FROM ocr_lines_fts f JOIN ocr_lines l ON l.id = f.rowid {owner_join}
            WHERE ocr_lines_fts MATCH :q
            ORDER BY rank DESC, l.media_id, l.line_no
            LIMIT :limit"""
    else:
        raise ValueError(f"full-text search supports postgresql and sqlite, not {dialect}")
    groups: dict[str, dict[str, Any]] = {}
    for row in session.execute(text(sql), params).mappings():
        group = groups.setdefault(
            row["media_id"], {"media_id": row["media_id"], "score": float(row["rank"]), "matches": []}
        )
        group["matches"].append(
            {
                "line_no": row["line_no"],
                "text": row["text"],
                "box": [row["x1"], row["y1"], row["x2"], row["y2"]],
                "score": row["score"],
            }
        )
    return list(groups.values())[:limit]


def _pg_lexeme(word: str) -> str:
    # Quote each word as a tsquery lexeme so no character is read as an operator.
    return "'" + word.lower().replace("'", "''").replace("\\", "\\\\") + "'"
