"""Small helpers shared by the API tests."""

from __future__ import annotations

from pathlib import Path

ADMIN = "admin"
FIRST_PASSWORD = "first-admin-password"
NEW_PASSWORD = "a-much-better-password"


def login(client, username: str, password: str) -> dict:
    resp = client.post("/v1/auth/token", data={"username": username, "password": password})
    assert resp.status_code == 200, resp.text
    return resp.json()


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def admin_token(client) -> str:
    """Log in as the first admin and change its password, as a fresh deployment requires."""
    first = login(client, ADMIN, FIRST_PASSWORD)
    resp = client.post(
        "/v1/auth/password",
        json={"current_password": FIRST_PASSWORD, "new_password": NEW_PASSWORD},
        headers=auth(first["access_token"]),
    )
    assert resp.status_code == 200, resp.text
    return resp.json()["access_token"]


def create_user(client, admin: str, username: str, password: str) -> str:
    """Create an account as an admin does, then sign in as it and choose ``password`` (a
    password an admin set must be changed at first sign-in). Returns the user's access token."""
    temporary = password + "-from-admin"
    resp = client.post("/v1/users", json={"username": username, "password": temporary}, headers=auth(admin))
    assert resp.status_code == 201, resp.text
    assert resp.json()["must_change_password"] is True
    first = login(client, username, temporary)
    resp = client.post(
        "/v1/auth/password",
        json={"current_password": temporary, "new_password": password},
        headers=auth(first["access_token"]),
    )
    assert resp.status_code == 200, resp.text
    return resp.json()["access_token"]


def upload(client, token: str, path: Path, name: str | None = None):
    with path.open("rb") as fh:
        return client.post("/v1/media", files={"file": (name or path.name, fh)}, headers=auth(token))


def assert_envelope(resp, status: int, code: str | None = None) -> dict:
    assert resp.status_code == status, resp.text
    body = resp.json()
    assert set(body) == {"error"} and set(body["error"]) == {"code", "message", "details"}
    assert body["error"]["message"]
    if code is not None:
        assert body["error"]["code"] == code, body
    return body["error"]


def assert_openai_error(resp, status: int, code: str | None = None, param: str | None = None) -> dict:
    """An error in OpenAI's shape (the OpenAI-compatible routes): ``{"error": {"message", "type",
    "param", "code"}}`` with the type OpenAI gives ``status``."""
    assert resp.status_code == status, resp.text
    body = resp.json()
    assert set(body) == {"error"} and set(body["error"]) == {"message", "type", "param", "code"}, body
    expected = {401: "authentication_error", 403: "permission_error", 429: "rate_limit_error"}.get(
        status, "server_error" if status >= 500 else "invalid_request_error"
    )
    assert body["error"]["message"] and body["error"]["type"] == expected, body
    if code is not None:
        assert body["error"]["code"] == code, body
    if param is not None:
        assert body["error"]["param"] == param, body
    return body["error"]


def wait_job(client, token: str, job_id: str, timeout: float = 120.0, until=None) -> dict:
    """Poll ``GET /v1/jobs/{id}`` until ``until(job)`` (default: a terminal status)."""
    import time

    until = until or (lambda j: j["status"] in ("succeeded", "failed", "canceled"))
    deadline = time.monotonic() + timeout
    while True:
        job = client.get(f"/v1/jobs/{job_id}", headers=auth(token)).json()
        if until(job):
            return job
        if time.monotonic() > deadline:
            raise TimeoutError(f"job {job_id}: {job}")
        time.sleep(0.1)


def vectors_settled(job: dict) -> bool:
    """A ``wait_job`` condition: the job failed, or it succeeded and its tasks' embeddings are
    no longer waiting for vector_db (``synced`` or ``failed``)."""
    if job["status"] in ("failed", "canceled"):
        return True
    return job["status"] == "succeeded" and all(
        t["vectors"] is None or t["vectors"]["state"] != "pending" for t in job["tasks"]
    )


def create_job(client, token: str, media_id: str, **fields) -> str:
    """``POST /v1/jobs`` for an OCR job (``fields``: ``options``, ``priority``); returns the job id."""
    resp = client.post(
        "/v1/jobs", json={"media_id": media_id, "tasks": ["ocr"], **fields}, headers=auth(token)
    )
    assert resp.status_code == 202, resp.text
    return resp.json()["job_id"]


def sse_events(
    client, token: str | None, job_id: str, into: list | None = None, url: str | None = None
) -> list[tuple[str, dict]]:
    """Follow ``GET /v1/jobs/{id}/events`` (or ``url``, e.g. with a link token and no
    ``token``) to its end: ``[(event, data)]``, appended to ``into`` as they arrive when given
    (for a reader thread)."""
    import json

    events = [] if into is None else into
    headers = auth(token) if token else {}
    with client.stream("GET", url or f"/v1/jobs/{job_id}/events", headers=headers, timeout=120) as resp:
        assert resp.status_code == 200, resp.read()
        kind = None
        for line in resp.iter_lines():
            if line.startswith("event: "):
                kind = line[7:]
            elif line.startswith("data: ") and kind:
                events.append((kind, json.loads(line[6:])))
    return events
