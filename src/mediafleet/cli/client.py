"""HTTP client of a running gateway for ``mediafleet analyze --api URL`` (httpx)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import httpx

TERMINAL = {"succeeded", "failed", "canceled"}


class ApiError(Exception):
    pass


def api_error(resp: httpx.Response) -> ApiError:
    try:
        err = resp.json()["error"]
        return ApiError(f"HTTP {resp.status_code} {err['code']}: {err['message']}")
    except (ValueError, KeyError, TypeError):
        return ApiError(f"HTTP {resp.status_code}: {resp.text[:200]}")


class ApiClient:
    def __init__(
        self,
        base_url: str,
        token: str | None = None,
        username: str | None = None,
        password: str | None = None,
    ):
        self.http = httpx.Client(base_url=base_url.rstrip("/"), timeout=60.0)
        if not token:
            if not (username and password):
                raise ApiError("give --token, or --username and --password (or MEDIAFLEET_TOKEN)")
            try:
                resp = self.http.post("/v1/auth/token", data={"username": username, "password": password})
            except httpx.HTTPError as exc:
                raise ApiError(f"cannot reach the gateway: {exc}") from exc
            if resp.status_code != 200:
                raise api_error(resp)
            token = resp.json()["access_token"]
        self.http.headers["Authorization"] = f"Bearer {token}"

    def ready_defaults(self, kind: str) -> tuple[list[str], dict[str, str]]:
        """The fleet's default tasks for ``kind`` that it can run now (``GET /v1/tasks``), and
        why the others cannot (task -> the readiness message)."""
        resp = self.http.get("/v1/tasks")
        if resp.status_code != 200:
            raise api_error(resp)
        ready: list[str] = []
        skipped: dict[str, str] = {}
        for task in resp.json()["data"]:
            if kind not in task["default_for"]:
                continue
            state = task["readiness"] or {
                "state": "unknown",
                "message": "readiness unknown (Redis unavailable)",
            }
            if state["state"] == "ready":
                ready.append(task["name"])
            else:
                skipped[task["name"]] = state["message"]
        return ready, skipped

    def analyze(
        self, path: Path, tasks: list[str] | None, options: dict[str, Any], timeout: float = 600.0
    ) -> dict[str, Any]:
        """Upload ``path``, run ``tasks`` (None: :meth:`ready_defaults` for its kind) and wait."""
        skipped: dict[str, str] = {}
        try:
            with path.open("rb") as fh:
                resp = self.http.post("/v1/media", files={"file": (path.name, fh)})
            if resp.status_code not in (200, 201):
                raise api_error(resp)
            media = resp.json()
            if tasks is None:
                tasks, skipped = self.ready_defaults(media["kind"])
                if not tasks:
                    raise ApiError(
                        f"no default task for {media['kind']} is ready in the fleet: "
                        + "; ".join(f"{t}: {why}" for t, why in skipped.items())
                    )
            wanted = {t: o for t, o in options.items() if t in tasks}
            resp = self.http.post(
                "/v1/jobs", json={"media_id": media["media_id"], "tasks": tasks, "options": wanted}
            )
            if resp.status_code not in (200, 201, 202):
                raise api_error(resp)
            job_id = resp.json()["job_id"]
            skipped.update(resp.json().get("skipped") or {})  # tasks the media has no stream for
            deadline = time.monotonic() + timeout
            while True:
                resp = self.http.get(f"/v1/jobs/{job_id}")
                if resp.status_code != 200:
                    raise api_error(resp)
                job = resp.json()
                if job["status"] in TERMINAL:
                    break
                if time.monotonic() > deadline:
                    raise ApiError(f"job {job_id} still {job['status']} after {timeout:.0f} s")
                time.sleep(0.25)
        except httpx.HTTPError as exc:
            raise ApiError(f"gateway request failed: {exc}") from exc
        if job["status"] != "succeeded":
            raise ApiError(f"job {job_id} {job['status']}: {job.get('error')}")
        media_out = {
            k: media[k] for k in ("media_id", "kind", "mime", "size_bytes", "width", "height", "duration_s")
        }
        item: dict[str, Any] = {"file": str(path), "media": media_out, "results": job["results"]}
        if skipped:
            item["skipped"] = skipped
        return item
