"""No small request exhausts the gateway's memory: a real gateway process (PostgreSQL, Redis),
its resident set (``VmRSS`` of /proc) sampled every 20 ms while hostile requests run.

Seen before the limits (issue "Hardening"): a 40 MiB JSON list sent to ``/v1/auth/refresh``
took the gateway from 284 to 1358 MB and it stayed at 1279 MB; ``options.ocr`` with 1,000,000
keys, 137 -> 1551 MB and a 98.8 MB 422 that echoed every key.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.api_helpers import admin_token, assert_envelope, auth, upload
from tests.conftest import sample

#: Growth of the gateway's RSS a hostile request may cause, MiB (a parsed 40 MiB JSON list
#: costs > 1000 MiB).
MAX_GROWTH_MIB = 40


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


class RssPeak:
    """The highest RSS of ``pid`` while the ``with`` block runs (sampled every 20 ms)."""

    def __init__(self, pid: int):
        self.pid, self.peak, self._stop = pid, 0.0, threading.Event()

    def __enter__(self) -> RssPeak:
        self.before = rss_mib(self.pid)
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def _sample(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, rss_mib(self.pid))
            time.sleep(0.02)

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()
        self.growth = self.peak - self.before


@pytest.fixture
def gateway(tmp_path: Path, pg_url: str, redis_url: str) -> Iterator[tuple[httpx.Client, int]]:
    from tests.fleet import Fleet

    fleet = Fleet(tmp_path, pg_url, redis_url)
    proc = fleet.start("gateway")
    try:
        with httpx.Client(base_url=fleet.url("gateway"), timeout=60) as client:
            # warm the routes up so their first-use allocations are not counted
            token = admin_token(client)
            client.get("/v1/jobs", headers=auth(token))
            client.post("/v1/auth/refresh", json={"refresh_token": "x"})
            yield client, proc.pid
    finally:
        fleet.stop_all()


def test_a_large_json_body_is_refused_while_it_streams(gateway: tuple[httpx.Client, int]) -> None:
    client, pid = gateway
    big = json.dumps(list(range(6_000_000))).encode()  # 40 MiB
    assert len(big) > 40 * 1024 * 1024
    with RssPeak(pid) as declared:
        resp = client.post("/v1/auth/refresh", content=big, headers={"content-type": "application/json"})
    error = assert_envelope(resp, 413, "payload_too_large")
    assert error["details"] == {"max_bytes": 1024 * 1024}

    def chunks() -> Iterator[bytes]:  # no Content-Length: counted while it streams
        for i in range(0, len(big), 1 << 16):
            yield big[i : i + (1 << 16)]

    with RssPeak(pid) as streamed:
        resp = client.post("/v1/auth/refresh", content=chunks(), headers={"content-type": "application/json"})
    assert_envelope(resp, 413, "payload_too_large")
    print(f"RSS growth: declared 40 MiB {declared.growth:.1f} MiB, streamed {streamed.growth:.1f} MiB")
    assert declared.growth < MAX_GROWTH_MIB and streamed.growth < MAX_GROWTH_MIB, (
        declared.growth,
        streamed.growth,
    )
    # the same limit on a form body (the login form)
    resp = client.post("/v1/auth/token", content=b"username=" + b"a" * (2 << 20),
                       headers={"content-type": "application/x-www-form-urlencoded"})  # fmt: skip
    assert_envelope(resp, 413, "payload_too_large")
    assert client.get("/healthz").status_code == 200


def test_many_bad_options_give_a_small_error(gateway: tuple[httpx.Client, int]) -> None:
    """A job whose options hold 40,000 unknown keys (just under the 1 MiB JSON limit): a 422 of
    a few KiB that names no key's value, and bounded memory."""
    client, pid = gateway
    token = admin_token_again(client)
    media_id = upload(client, token, sample("english.png")).json()["media_id"]
    options = {f"key{i:05d}": "v" * 8 for i in range(40_000)}
    body = json.dumps({"media_id": media_id, "tasks": ["echo"], "options": {"echo": options}})
    assert len(body) < 1024 * 1024
    with RssPeak(pid) as peak:
        resp = client.post(
            "/v1/jobs", content=body, headers={**auth(token), "content-type": "application/json"}
        )
    assert_envelope(resp, 422)
    assert len(resp.content) < 16 * 1024, len(resp.content)
    assert "vvvvvvvv" not in resp.text
    print(f"40,000 bad keys: 422 of {len(resp.content)} bytes, RSS growth {peak.growth:.1f} MiB")
    assert peak.growth < 2 * MAX_GROWTH_MIB, peak.growth
    # over the limit: refused before parsing
    options = {f"key{i:07d}": "v" * 8 for i in range(1_000_000)}
    body = json.dumps({"media_id": media_id, "tasks": ["echo"], "options": {"echo": options}})
    with RssPeak(pid) as peak:
        resp = client.post(
            "/v1/jobs", content=body, headers={**auth(token), "content-type": "application/json"}
        )
    assert_envelope(resp, 413, "payload_too_large")
    assert peak.growth < MAX_GROWTH_MIB, peak.growth


def admin_token_again(client: httpx.Client) -> str:
    from tests.api_helpers import ADMIN, NEW_PASSWORD, login

    return login(client, ADMIN, NEW_PASSWORD)["access_token"]


def test_a_huge_but_small_png_is_probed_without_decoding_it(
    gateway: tuple[httpx.Client, int], tmp_path: Path
) -> None:
    """The largest RGBA PNG accepted (6981 x 6981, 48.7 megapixels: MAX_PIXELS) in 0.2 MB:
    an 80-MP one cost 303 MB per upload in the gateway when every image was decoded to check
    it; now its chunks are checked, no pixel made. One pixel row more is refused on the header."""
    from PIL import Image

    from mediafleet.common.media import MAX_PIXELS

    client, pid = gateway
    token = admin_token_again(client)
    side = int(MAX_PIXELS**0.5)
    path = tmp_path / "huge.png"
    Image.new("RGBA", (side, side)).save(path, optimize=False, compress_level=9)
    assert path.stat().st_size < 1024 * 1024
    with RssPeak(pid) as peak:
        resp = upload(client, token, path)
    assert resp.status_code == 201, resp.text
    assert (resp.json()["width"], resp.json()["height"]) == (side, side)
    print(f"{side}x{side} RGBA PNG of {path.stat().st_size} bytes: RSS growth {peak.growth:.1f} MiB")
    assert peak.growth < MAX_GROWTH_MIB, peak.growth
    Image.new("RGBA", (side, side + 1)).save(path, optimize=False, compress_level=9)
    over = upload(client, token, path)
    assert over.status_code == 422 and "too large to decode" in over.json()["error"]["message"], over.text


def mjpeg_mkv(path: Path, width: int, height: int, fps: int = 5, frames: int = 1) -> Path:
    """A Matroska file of ``frames`` MJPEG frames of ``width`` x ``height`` (stripes: a few MB)."""
    import av
    import numpy as np

    with av.open(str(path), "w", format="matroska") as out:
        stream = out.add_stream("mjpeg", rate=fps)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuvj420p"
        image = np.zeros((height, width, 3), np.uint8)
        image[::50] = 255
        for _ in range(frames):
            for packet in stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
    return path


def test_a_video_over_the_pixel_cap_is_refused_before_any_frame_is_decoded(
    gateway: tuple[httpx.Client, int], tmp_path: Path
) -> None:
    """Videos bypassed the images' pixel cap: a 3 MB MKV with one 16000 x 16000 MJPEG frame was
    accepted, and its thumbnail took the gateway from 185 to 1905 MB. Now its header is checked
    like an image's: 422 ``too_many_pixels``, nothing stored, the gateway's RSS flat."""
    client, pid = gateway
    token = admin_token_again(client)
    path = mjpeg_mkv(tmp_path / "huge.mkv", 9000, 9000)  # 81 MP > MAX_PIXELS (48.7 MP)
    assert path.stat().st_size < 8 * 1024 * 1024
    with RssPeak(pid) as peak:
        resp = upload(client, token, path)
    error = assert_envelope(resp, 422, "too_many_pixels")
    assert (error["details"]["width"], error["details"]["height"]) == (9000, 9000)
    print(f"9000x9000 MJPEG MKV of {path.stat().st_size} bytes: RSS growth {peak.growth:.1f} MiB")
    assert peak.growth < MAX_GROWTH_MIB, peak.growth
    assert client.get("/v1/media", headers=auth(token)).json()["count"] == 0  # nothing stored
