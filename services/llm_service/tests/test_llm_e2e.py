"""The LLM through the whole fleet as real processes (gateway, job_manager, OCR,
whisper_transcriber and llm_service workers with real weights) on real PostgreSQL and Redis:
the official ``openai`` client unchanged against the gateway, summaries in jobs and in the
CLI (embedded and ``--api``), questions over one's own library with citations, another
user's library never retrieved, and a full LLM answering 503 with Retry-After."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import openai
import pytest

from tests.api_helpers import (
    ADMIN,
    NEW_PASSWORD,
    admin_token,
    assert_envelope,
    assert_openai_error,
    auth,
    create_user,
    login,
    upload,
    wait_job,
)
from tests.conftest import sample
from tests.fleet import Fleet

pytestmark = pytest.mark.slow


@pytest.fixture
def llm_fleet(tmp_path: Path, pg_url: str, redis_url: str, real_models_dir: Path):
    f = Fleet(
        tmp_path,
        pg_url,
        redis_url,
        MEDIAFLEET_MODELS_DIR=str(real_models_dir),
        # one slot, one waiting place, 2 s wait: the busy test fills them
        LLM_SLOTS="1",
        LLM_MAX_QUEUE="1",
        LLM_QUEUE_TIMEOUT_S="2",
    )
    try:
        for name in ("gateway", "job_manager", "ocr", "whisper", "llm"):
            f.start(name)
        yield f
    finally:
        f.stop_all()


def make_user(c: httpx.Client, admin: str, name: str) -> str:
    return create_user(c, admin, name, f"{name}-password-123")


def test_openai_client_summaries_and_questions(
    llm_fleet: Fleet, real_models_dir: Path, tmp_path: Path
) -> None:
    base = llm_fleet.url("gateway")
    with httpx.Client(base_url=base, timeout=120) as c:
        token = admin_token(c)
        client = openai.OpenAI(base_url=f"{base}/v1/llm", api_key=token, max_retries=0)

        # the official client, unchanged: models, chat (twice: temperature 0 is deterministic),
        # the same chat streamed, a completion, embeddings
        assert [m.id for m in client.models.list().data] == ["mediafleet-llm"]
        ask = [{"role": "user", "content": "What is the capital of France?"}]
        one = client.chat.completions.create(
            model="mediafleet-llm", messages=ask, temperature=0, max_tokens=32
        )
        two = client.chat.completions.create(
            model="mediafleet-llm", messages=ask, temperature=0, max_tokens=32
        )
        assert (
            one.choices[0].message.content
            and one.choices[0].message.content == two.choices[0].message.content
        )
        stream = client.chat.completions.create(
            model="mediafleet-llm", messages=ask, temperature=0, max_tokens=32, stream=True
        )
        streamed = "".join(chunk.choices[0].delta.content or "" for chunk in stream if chunk.choices)
        assert streamed == one.choices[0].message.content
        counted = list(
            client.chat.completions.create(
                model="mediafleet-llm", messages=ask, temperature=0, max_tokens=32, stream=True,
                stream_options={"include_usage": True},
            )
        )  # fmt: skip
        assert counted[-1].choices == [] and counted[-1].usage is not None and one.usage is not None
        assert counted[-1].usage.model_dump() == one.usage.model_dump()
        assert all(c.usage is None for c in counted[:-1])
        done = client.completions.create(
            model="mediafleet-llm", prompt="Monday, Tuesday,", max_tokens=6, temperature=0
        )
        assert done.choices[0].text and done.usage.completion_tokens <= 6
        # the client asks for base64 by default and decodes it: the same vectors as floats
        vectors = client.embeddings.create(model="mediafleet-llm", input=["soap", "water"]).data
        assert [len(v.embedding) for v in vectors] == [576, 576]
        floats = c.post(
            "/v1/llm/embeddings",
            json={"input": ["soap", "water"], "encoding_format": "float"},
            headers=auth(token),
        ).json()["data"]
        for got, want in zip(vectors, floats, strict=True):
            assert got.embedding == pytest.approx(want["embedding"], rel=1e-6, abs=1e-6)
        # OpenAI's conventions: one model object, unknown names 404, max_completion_tokens, n
        assert client.models.retrieve("mediafleet-llm").id == "mediafleet-llm"
        with pytest.raises(openai.NotFoundError) as unknown:
            client.models.retrieve("gpt-4o")
        assert unknown.value.code == "model_not_found"
        with pytest.raises(openai.NotFoundError) as unknown:
            client.chat.completions.create(model="gpt-4o", messages=ask, max_tokens=4)
        assert unknown.value.code == "model_not_found" and "mediafleet-llm" in unknown.value.message
        short = client.chat.completions.create(
            model="mediafleet-llm", messages=ask, temperature=0, max_completion_tokens=3
        )
        assert short.usage is not None and short.usage.completion_tokens <= 3
        assert short.choices[0].finish_reason == "length"
        with pytest.raises(openai.BadRequestError) as many:
            client.chat.completions.create(model="mediafleet-llm", messages=ask, max_tokens=4, n=2)
        assert many.value.code == "n_not_supported"
        with pytest.raises(openai.AuthenticationError):
            openai.OpenAI(base_url=f"{base}/v1/llm", api_key="not-a-token", max_retries=0).models.list()
        assert_openai_error(c.post("/v1/llm/fine_tuning/jobs", json={}, headers=auth(token)), 404)
        assert_openai_error(c.get("/v1/llm/models"), 401)  # the gateway's own errors take the shape too
        no_messages = c.post(
            "/v1/llm/chat/completions", json={"model": "mediafleet-llm"}, headers=auth(token)
        )
        assert_openai_error(no_messages, 400, "invalid_request_error", param="messages")

        # summarize after transcribe in one job
        jfk = upload(c, token, sample("jfk.flac")).json()["media_id"]
        resp = c.post(
            "/v1/jobs", json={"media_id": jfk, "tasks": ["transcribe", "summarize"]}, headers=auth(token)
        )
        assert resp.status_code == 202, resp.text
        job = wait_job(c, token, resp.json()["job_id"], timeout=180)
        assert job["status"] == "succeeded", job
        summary = job["results"]["summarize"]
        assert summary["summary"] and summary["sources"] == ["transcribe"]
        # /v1/ask answers from what was heard, not from the model's own summary of it
        words = " ".join(w for w in summary["summary"].split()[:6] if len(w) > 3)
        asked = c.post("/v1/ask", json={"question": words, "passages": 20}, headers=auth(token)).json()
        assert all(x["task"] != "summarize" for x in asked["citations"]), asked["citations"]
        asked = c.post("/v1/ask", json={"question": words, "passages": 20, "include_generated": True},
                       headers=auth(token)).json()  # fmt: skip
        assert any(x["task"] == "summarize" for x in asked["citations"]), asked["citations"]
        tasks = {t["name"]: t for t in job["tasks"]}
        assert set(tasks) == {"transcribe", "summarize"} and tasks["summarize"]["depends_on"] == [
            "transcribe"
        ]
        assert tasks["summarize"]["started_at"] >= tasks["transcribe"]["finished_at"]

        # questions over the library: the OCR lines of english.png are the passages
        english = upload(c, token, sample("english.png")).json()["media_id"]
        resp = c.post("/v1/jobs", json={"media_id": english, "tasks": ["ocr"]}, headers=auth(token))
        assert wait_job(c, token, resp.json()["job_id"], timeout=120)["status"] == "succeeded"
        answer = c.post(
            "/v1/ask", json={"question": "What should I clean my hands with?"}, headers=auth(token)
        )
        assert answer.status_code == 200, answer.text
        body = answer.json()
        assert body["answer"] and body["model"] == "mediafleet-llm"
        cited = {(x["media_id"], x["task"]) for x in body["citations"]}
        assert (english, "ocr") in cited
        assert any("soap" in x["text"].lower() for x in body["citations"])
        assert [x["n"] for x in body["citations"]] == list(range(1, len(body["citations"]) + 1))
        speech = c.post("/v1/ask", json={"question": "What did the Americans ask about their country?"},
                        headers=auth(token)).json()  # fmt: skip
        assert any(x["task"] == "transcribe" and x["start"] is not None for x in speech["citations"])
        nothing = c.post("/v1/ask", json={"question": "zebra xylophone"}, headers=auth(token)).json()
        assert (nothing["answer"], nothing["citations"]) == (None, [])

        # another user asks the same: nothing of the admin's library comes back
        bob = make_user(c, token, "bob")
        other = c.post(
            "/v1/ask", json={"question": "What should I clean my hands with?"}, headers=auth(bob)
        ).json()
        assert (other["answer"], other["citations"]) == (None, [])
        assert_envelope(c.post("/v1/ask", json={"question": ""}, headers=auth(token)), 422)

        # the CLI: embedded and through the gateway, transcribe + summarize
        env = {**os.environ, "MEDIAFLEET_MODELS_DIR": str(real_models_dir), "MEDIAFLEET_LOG_LEVEL": "WARNING"}
        cli = [sys.executable, "-m", "mediafleet.cli.main", "analyze", str(sample("jfk.flac")),
               "--tasks", "transcribe,summarize", "--json"]  # fmt: skip
        embedded = subprocess.run(
            [*cli, "--db", f"sqlite:///{tmp_path / 'cli.db'}"],
            capture_output=True,
            text=True,
            env=env,
            timeout=300,
        )
        assert embedded.returncode == 0, embedded.stderr
        out = json.loads(embedded.stdout)
        assert out["results"]["summarize"]["summary"] and out["results"]["transcribe"]["language"] == "en"
        remote = subprocess.run(
            [*cli, "--api", base, "--token", token], capture_output=True, text=True, env=env, timeout=300
        )
        assert remote.returncode == 0, remote.stderr
        assert json.loads(remote.stdout)["results"]["summarize"]["summary"]


def test_a_full_llm_answers_503_with_retry_after(llm_fleet: Fleet) -> None:
    base = llm_fleet.url("gateway")
    with httpx.Client(base_url=base, timeout=120) as c:
        token = admin_token(c)
        long_body = {  # SmolLM2's end tokens (<|endoftext|> 0, <|im_end|> 2) banned: 600 tokens, seconds
            "messages": [{"role": "user", "content": "Count from one to five hundred in words."}],
            "max_tokens": 600,
            "temperature": 0,
            "logit_bias": {"0": -100, "2": -100},
        }
        statuses: list[int] = []

        def occupy() -> None:
            with httpx.Client(base_url=base, timeout=120) as own:
                statuses.append(
                    own.post("/v1/llm/chat/completions", json=long_body, headers=auth(token)).status_code
                )

        threads = [threading.Thread(target=occupy) for _ in range(2)]  # the slot and the queue place
        for t in threads:
            t.start()
            time.sleep(0.3)
        refused = c.post("/v1/llm/chat/completions", json=long_body, headers=auth(token))
        for t in threads:
            t.join()
    assert_openai_error(refused, 503, "llm_busy")
    assert int(refused.headers["retry-after"]) >= 1
    assert 200 in statuses  # the running request finished


#: A chat that cannot end by itself: SmolLM2's end tokens (<|endoftext|> 0, <|im_end|> 2) banned.
ENDLESS = {
    "messages": [{"role": "user", "content": "Count from one to a thousand in words."}],
    "max_tokens": 1500,
    "temperature": 0,
    "logit_bias": {"0": -100, "2": -100},
}


def _slots(fleet: Fleet) -> dict:
    return httpx.get(fleet.url("llm") + "/readyz", timeout=10).json()["details"]["slots"]


def _freed_within(fleet: Fleet, seconds: float) -> float:
    """Seconds until no slot is busy and nobody waits (fails after ``seconds``)."""
    start = time.monotonic()
    while time.monotonic() - start < seconds:
        if _slots(fleet) == {"slots": 1, "busy": 0, "waiting": 0}:
            return time.monotonic() - start
        time.sleep(0.2)
    raise AssertionError(f"a slot still held after {seconds} s: {_slots(fleet)}")


def test_a_client_that_leaves_frees_the_llm(llm_fleet: Fleet) -> None:
    """Every way a request can end gives its slot back within seconds, and generation stops:
    a stream closed after one chunk, a non-streamed request whose client gives up, the
    gateway's own time-out. Before: one aborted stream held the only slot for good and every
    later request got 503 llm_busy. Also: no max_tokens takes LLM_DEFAULT_MAX_TOKENS, more than
    LLM_MAX_TOKENS is refused; slot use is in /readyz and /metrics."""
    base = llm_fleet.url("gateway")
    with httpx.Client(base_url=base, timeout=120) as c:
        token = admin_token(c)
        # 1. a stream read for one chunk, then closed
        with c.stream("POST", "/v1/llm/chat/completions", json={**ENDLESS, "stream": True},
                      headers=auth(token)) as resp:  # fmt: skip
            assert resp.status_code == 200
            lines = resp.iter_lines()  # kept: a dropped line iterator closes the response itself
            first = next(line for line in lines if line.startswith("data: "))
            assert json.loads(first[6:])["model"] == "mediafleet-llm"
            assert _slots(llm_fleet)["busy"] == 1
        print(f"\nstream closed: slot free after {_freed_within(llm_fleet, 10):.1f} s")
        # 2. a non-streamed request whose client stops waiting after 2 s
        with pytest.raises(httpx.ReadTimeout):
            c.post("/v1/llm/chat/completions", json=ENDLESS, headers=auth(token), timeout=2)
        print(f"client timed out: slot free after {_freed_within(llm_fleet, 10):.1f} s")
        # the LLM answers the next request at once (1500 tokens would take ~30 s here)
        short = {"messages": [{"role": "user", "content": "Say hi."}], "max_tokens": 8, "temperature": 0}
        t0 = time.monotonic()
        ok = c.post("/v1/llm/chat/completions", json=short, headers=auth(token))
        assert ok.status_code == 200 and time.monotonic() - t0 < 15, ok.text
        # 4. max_tokens: a default when absent, a ceiling when too large
        unbounded = {"messages": ENDLESS["messages"], "temperature": 0, "logit_bias": ENDLESS["logit_bias"]}
        got = c.post("/v1/llm/chat/completions", json=unbounded, headers=auth(token)).json()
        assert got["usage"]["completion_tokens"] == 512, got["usage"]  # LLM_DEFAULT_MAX_TOKENS
        assert_openai_error(
            c.post("/v1/llm/chat/completions", json={**ENDLESS, "max_tokens": 100_000}, headers=auth(token)),
            400,
            "max_tokens_too_large",
        )
        metrics = httpx.get(llm_fleet.url("llm") + "/metrics").text
        assert "mediafleet_llm_slots_busy 0.0" in metrics and "mediafleet_llm_requests_waiting 0.0" in metrics
    # 3. the gateway's own time-out (MEDIAFLEET_LLM_TIMEOUT_S) closes the upstream connection
    llm_fleet.stop("gateway")
    llm_fleet.start("gateway", env={"MEDIAFLEET_LLM_TIMEOUT_S": "2"})
    with httpx.Client(base_url=base, timeout=60) as c:
        token = login(c, ADMIN, NEW_PASSWORD)["access_token"]  # changed above
        timed_out = c.post("/v1/llm/chat/completions", json=ENDLESS, headers=auth(token))
        assert_openai_error(timed_out, 504, "upstream_timeout")
        print(f"gateway time-out: slot free after {_freed_within(llm_fleet, 10):.1f} s")
