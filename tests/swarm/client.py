"""What a user's client does against the Swarm stack, run in a one-off container on the stack's
edge network (Swarm cannot publish on 127.0.0.1 only, so the test publishes nothing):

    python client.py BASE CA FIRST_PASSWORD JOBS

signs in as the first admin (changing its password), uploads ``JOBS`` different generated images
with text on them, starts an OCR job on each (no result cache) and waits for all; prints one
JSON line: {"jobs": [{"job_id", "status", "text"}], "seconds"}. Exits 1 when a job fails.
Uses only what the job_manager image holds (httpx, Pillow).
"""

from __future__ import annotations

import io
import json
import sys
import time

import httpx
from PIL import Image, ImageDraw, ImageFont


def image(i: int) -> bytes:
    img = Image.new("RGB", (900, 200), "white")
    draw = ImageDraw.Draw(img)
    font = ImageFont.load_default(size=48)
    draw.text((20, 60), f"SWARM PAGE {i}", fill="black", font=font)
    out = io.BytesIO()
    img.save(out, "PNG")
    return out.getvalue()


def main() -> int:
    base, ca, first, jobs = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
    start = time.monotonic()
    with httpx.Client(base_url=base, verify=ca, timeout=60) as c:
        signed = c.post("/v1/auth/token", data={"username": "admin", "password": first})
        if signed.status_code == 200:  # the first sign-in: the password must be changed
            resp = c.post(
                "/v1/auth/password",
                json={"current_password": first, "new_password": first + "-changed"},
                headers={"Authorization": f"Bearer {signed.json()['access_token']}"},
            )
        else:  # changed by an earlier run of this script
            resp = c.post("/v1/auth/token", data={"username": "admin", "password": first + "-changed"})
        resp.raise_for_status()
        token = resp.json()["access_token"]
        auth = {"Authorization": f"Bearer {token}"}
        ids = []
        for i in range(jobs):
            media = c.post("/v1/media", files={"file": (f"page-{i}.png", image(i))}, headers=auth)
            media.raise_for_status()
            job = c.post(
                "/v1/jobs",
                json={"media_id": media.json()["media_id"], "tasks": ["ocr"], "use_cache": False},
                headers=auth,
            )
            job.raise_for_status()
            ids.append(job.json()["job_id"])
        done = []
        deadline = time.monotonic() + 300
        for job_id in ids:
            while True:
                job = c.get(f"/v1/jobs/{job_id}", headers=auth).json()
                if job["status"] in ("succeeded", "failed", "canceled") or time.monotonic() > deadline:
                    break
                time.sleep(0.5)
            ocr = (job.get("results") or {}).get("ocr") or {}
            text = str(ocr.get("text") or "")
            done.append({"job_id": job_id, "status": job["status"], "text": text})
    print(json.dumps({"jobs": done, "seconds": round(time.monotonic() - start, 1)}))
    return 0 if all(j["status"] == "succeeded" for j in done) else 1


if __name__ == "__main__":
    sys.exit(main())
