"""llm_service on real weights (SmolLM2-135M-Instruct, GGUF Q4_1, catalogue
``smollm2-135m-instruct``) through llama-cpp-python: summaries of real task results, the
OpenAI-compatible routes of the service app, and the slot gate. A 135M model answers
poorly: these tests assert the API contract, determinism at temperature 0 and what reaches
the prompt, not the wisdom."""

from __future__ import annotations

import asyncio
import base64
import json
import socket
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient
from prometheus_client import REGISTRY, generate_latest

from mediafleet.common.errors import BadRequest
from mediafleet.common.service_app import create_service_app
from mediafleet.llm_service import openai_schema as oa
from mediafleet.llm_service.contract import CAPABILITY, PROMPT_VERSION, facts_of
from mediafleet.llm_service.openai_api import Busy, SlotGate
from mediafleet.llm_service.runner import LlmRunner
from mediafleet.llm_service.settings import LlmSettings
from tests.api_helpers import assert_openai_error
from tests.conftest import sample

TTFT = "gen_ai_server_time_to_first_token_seconds"
TPOT = "gen_ai_server_time_per_output_token_seconds"


@pytest.fixture(scope="module")
def runner(real_models_dir: Path) -> LlmRunner:
    r = LlmRunner(LlmSettings(core={"models_dir": real_models_dir}))
    r.preload()
    assert r.ready() is None
    return r


@pytest.fixture(scope="module")
def client(runner: LlmRunner) -> Iterator[TestClient]:
    with TestClient(create_service_app(CAPABILITY, runner)) as c:  # one event loop, as uvicorn's
        yield c


@pytest.fixture(scope="module")
def jfk_transcript(real_models_dir: Path) -> dict:
    from mediafleet.whisper_transcriber.runner import WhisperRunner
    from mediafleet.whisper_transcriber.settings import WhisperSettings

    whisper = WhisperRunner(WhisperSettings(core={"models_dir": real_models_dir}))
    return whisper.run("transcribe", sample("jfk.flac"), {}, {}, lambda *_: None).model_dump(mode="json")


def test_summary_of_a_real_transcript_is_deterministic(runner: LlmRunner, jfk_transcript: dict) -> None:
    first = runner.run("summarize", sample("jfk.flac"), {}, {"transcribe": jfk_transcript}, lambda *_: None)
    again = runner.run("summarize", sample("jfk.flac"), {}, {"transcribe": jfk_transcript}, lambda *_: None)
    assert first.summary and first.summary == again.summary  # temperature 0, fixed seed
    assert (first.engine, first.model, first.sources, first.prompt_version) == (
        "llama-cpp", "smollm2-135m-instruct", ["transcribe"], PROMPT_VERSION,
    )  # fmt: skip
    assert first.model_version.startswith("b179c9523d0e")  # the catalogue's sha256 of the GGUF
    # the transcript reached the prompt: its tokens are counted, the facts name the speech
    facts = facts_of({"transcribe": jfk_transcript})
    assert facts == [f"- Speech (en): {jfk_transcript['text']}"]
    assert (
        first.prompt_tokens > runner.engine.tokens(jfk_transcript["text"])
        and 0 < first.completion_tokens <= 160
    )
    short = runner.run(
        "summarize", sample("jfk.flac"), {"max_tokens": 16}, {"transcribe": jfk_transcript}, lambda *_: None
    )
    assert short.completion_tokens <= 16


def test_summary_facts_of_frames_faces_and_nsfw() -> None:
    ocr_frames = {
        "kind": "video_frames", "sampling": {}, "elapsed_ms": 1.0,
        "frames": [{"t": 0.0, "result": {"text": "LUSH MYER"}}, {"t": 2.0, "result": {"text": ""}}],
    }  # fmt: skip
    faces = {"faces": [{"person": {"name": "Barack Obama"}}, {"person": None}]}
    nsfw = {"nsfw": {"label": "safe"}}
    assert facts_of({"ocr": ocr_frames, "faces": faces, "nsfw": nsfw}) == [
        "- Text visible in the image: [0 s] LUSH MYER",
        "- Faces: 2; recognised people: Barack Obama.",
        "- Content rating: safe.",
    ]


def test_nothing_to_summarise_is_a_clear_error(runner: LlmRunner) -> None:
    with pytest.raises(BadRequest) as err:
        runner.run("summarize", sample("jfk.flac"), {}, {}, lambda *_: None)
    assert err.value.code == "nothing_to_summarize"


def test_openai_routes_chat_stream_completion_embeddings(client: TestClient) -> None:
    models = client.get("/openai/v1/models").json()
    assert models["object"] == "list" and models["data"][0]["id"] == "mediafleet-llm"
    assert models["data"][0]["chat_template"] is True and models["data"][0]["context_tokens"] >= 2048
    body = {"messages": [{"role": "user", "content": "Name a colour."}], "temperature": 0, "max_tokens": 24}
    one = client.post("/openai/v1/chat/completions", json=body).json()
    two = client.post("/openai/v1/chat/completions", json=body).json()
    text = one["choices"][0]["message"]["content"]
    assert text and text == two["choices"][0]["message"]["content"]
    assert one["object"] == "chat.completion" and one["usage"]["completion_tokens"] <= 24
    oa.ChatCompletion.model_validate(one)  # the shape the gateway's OpenAPI document gives
    oa.ModelList.model_validate(models)
    oa.ModelObject.model_validate(client.get("/openai/v1/models/mediafleet-llm").json())

    with client.stream("POST", "/openai/v1/chat/completions", json={**body, "stream": True}) as resp:
        assert resp.headers["content-type"].startswith("text/event-stream")
        events = [line[len("data: ") :] for line in resp.iter_lines() if line.startswith("data: ")]
    assert events[-1] == "[DONE]"
    chunks = [json.loads(e) for e in events[:-1]]
    assert all(c["object"] == "chat.completion.chunk" for c in chunks)
    for c in chunks:
        oa.ChatCompletionChunk.model_validate(c)
    assert "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks) == text
    # stream_options.include_usage (OpenAI): "usage": null on every chunk, then one chunk with
    # no choices and the usage llama.cpp counts for the same answer unstreamed
    with_usage = {**body, "stream": True, "stream_options": {"include_usage": True}}
    with client.stream("POST", "/openai/v1/chat/completions", json=with_usage) as resp:
        events = [line[len("data: ") :] for line in resp.iter_lines() if line.startswith("data: ")]
    *chunks, last = [json.loads(e) for e in events[:-1]]
    assert events[-1] == "[DONE]" and all(c["usage"] is None for c in chunks)
    assert "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks) == text
    assert last["choices"] == [] and last["usage"] == one["usage"], (last, one["usage"])
    assert last["id"] == chunks[0]["id"] and last["model"] == "mediafleet-llm"
    oa.ChatCompletionChunk.model_validate(last)
    with client.stream(
        "POST",
        "/openai/v1/completions",
        json={"prompt": "One,", "max_tokens": 3, "stream": True, "stream_options": {"include_usage": True}},
    ) as resp:
        events = [line[len("data: ") :] for line in resp.iter_lines() if line.startswith("data: ")]
    streamed_completion = [oa.Completion.model_validate_json(e) for e in events[:-1]]
    assert streamed_completion[-1].choices == [] and streamed_completion[-1].usage is not None
    refused = client.post(
        "/openai/v1/chat/completions", json={**body, "stream_options": {"include_usage": True}}
    )
    assert_openai_error(refused, 400, "invalid_request", param="stream_options")
    # log-probabilities are refused up front (llama.cpp keeps no logits for them here)
    for asked in ({"logprobs": True}, {"logprobs": True, "top_logprobs": 2}):
        no = client.post("/openai/v1/chat/completions", json={**body, **asked})
        assert_openai_error(no, 400, "logprobs_not_supported", param="logprobs")
    no = client.post("/openai/v1/completions", json={"prompt": "One,", "max_tokens": 2, "logprobs": 0})
    assert_openai_error(no, 400, "logprobs_not_supported", param="logprobs")
    assert client.post("/openai/v1/chat/completions", json={**body, "logprobs": False}).status_code == 200

    done = client.post(
        "/openai/v1/completions", json={"prompt": "One, two, three,", "max_tokens": 8, "temperature": 0}
    )
    assert done.status_code == 200 and done.json()["choices"][0]["text"]
    oa.Completion.model_validate(done.json())
    emb = client.post("/openai/v1/embeddings", json={"input": ["a cat", "a dog"]}).json()
    oa.EmbeddingList.model_validate(emb)
    vectors = [np.array(d["embedding"]) for d in emb["data"]]
    assert [v.shape for v in vectors] == [(576,), (576,)]  # SmolLM2-135M's hidden size
    assert not np.allclose(vectors[0], vectors[1])
    # OpenAI's base64 encoding: little-endian float32 bytes (its clients ask for it by default)
    packed = client.post(
        "/openai/v1/embeddings", json={"input": ["a cat", "a dog"], "encoding_format": "base64"}
    )
    oa.EmbeddingList.model_validate(packed.json())
    decoded = [np.frombuffer(base64.b64decode(d["embedding"]), dtype="<f4") for d in packed.json()["data"]]
    assert all(np.allclose(a, b, rtol=1e-6, atol=1e-6) for a, b in zip(vectors, decoded, strict=True))
    wrong = client.post("/openai/v1/embeddings", json={"input": "a cat", "encoding_format": "int8"})
    assert_openai_error(wrong, 400, "invalid_request_error", param="encoding_format")
    # OpenAI's answers to a bad body: 400 invalid_request_error naming the field, not 422
    bad = client.post("/openai/v1/chat/completions", json={"messages": "not a list"})
    assert_openai_error(bad, 400, "invalid_request_error", param="messages")
    missing = client.post("/openai/v1/chat/completions", json={"max_tokens": 4})
    error = assert_openai_error(missing, 400, "invalid_request_error", param="messages")
    assert error["message"] == "messages: Field required"
    assert_openai_error(client.get("/openai/v1/models/gpt-4o"), 404, "model_not_found")
    # the service's own routes keep the fleet's envelope
    assert set(client.get("/v1/nope").json()["error"]) == {"code", "message", "details"}


def test_every_documented_request_field_is_one_the_service_reads() -> None:
    """The gateway documents the OpenAI routes with ``openai_schema``; the service validates
    with llama-cpp-python's types (and reads max_completion_tokens and stream_options from the
    body itself): no documented field may be one the service drops."""
    from llama_cpp.server.types import CreateCompletionRequest

    from mediafleet.llm_service.openai_api import ChatCompletionRequest, EmbeddingRequest

    read_from_the_body = {"max_completion_tokens", "stream_options"}
    for documented, served in (
        (oa.ChatCompletionRequest, ChatCompletionRequest),
        (oa.CompletionRequest, CreateCompletionRequest),
        (oa.EmbeddingRequest, EmbeddingRequest),
    ):
        assert set(documented.model_fields) - read_from_the_body <= set(served.model_fields), documented


def test_slot_gate_queues_then_refuses_with_retry_after() -> None:
    async def scenario() -> list[str]:
        seen = []
        gate = SlotGate(slots=1, max_queue=1, timeout_s=0.3)
        await gate.acquire()  # the running request
        try:
            await gate.acquire()  # queued, then times out
        except Busy as exc:
            seen.append(f"timeout {exc.details['retry_after_s']}")
        waiter = asyncio.create_task(gate.acquire())  # fills the one queue place
        await asyncio.sleep(0.05)
        try:
            await gate.acquire()
        except Busy as exc:
            seen.append(f"full: {exc.message}")
        gate.release()
        await waiter  # the queued one gets the slot
        seen.append(f"running {gate.running}")
        gate.release()
        return seen

    assert asyncio.run(scenario()) == [
        "timeout 1",
        "full: all 1 LLM slot(s) busy and 1 request(s) waiting",
        "running 1",
    ]


def test_loading_opens_no_socket(real_models_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args, **kwargs):
        raise AssertionError(f"a socket was opened: {args}")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    r = LlmRunner(LlmSettings(core={"models_dir": real_models_dir}))
    r.preload()
    assert r.ready() is None


def test_missing_weights_name_the_pull_command(tmp_path: Path) -> None:
    r = LlmRunner(LlmSettings(core={"models_dir": tmp_path}))
    r.preload()
    assert "mediafleet models pull smollm2-135m-instruct" in (r.ready() or "")


def test_a_gguf_outside_the_catalogue(real_models_dir: Path, tmp_path: Path) -> None:
    """LLM_MODEL as an absolute path: a GGUF file the operator provides."""
    gguf = real_models_dir / "llm/SmolLM2-135M-Instruct.Q4_1.gguf"
    r = LlmRunner(LlmSettings(core={"models_dir": tmp_path}, model=str(gguf)))
    r.preload()
    assert r.ready() is None and r.engine.has_chat_template
    missing = LlmRunner(LlmSettings(core={"models_dir": tmp_path}, model=str(tmp_path / "x.gguf")))
    missing.preload()
    assert "x.gguf not found" in (missing.ready() or "")


def test_answers_do_not_depend_on_the_previous_request(client: TestClient) -> None:
    """The compose run found the same chat answered two ways when llama-cpp-python reused the
    previous request's prompt prefix; every request is now evaluated whole."""
    body = {"messages": [{"role": "user", "content": "Say hello."}], "temperature": 0, "max_tokens": 24}
    first = client.post("/openai/v1/chat/completions", json=body).json()["choices"][0]["message"]["content"]
    other = {
        "messages": [{"role": "user", "content": "Say hello to the fleet."}],
        "temperature": 0,
        "max_tokens": 8,
    }
    client.post("/openai/v1/chat/completions", json=other)
    again = client.post("/openai/v1/chat/completions", json=body).json()["choices"][0]["message"]["content"]
    with client.stream("POST", "/openai/v1/chat/completions", json={**body, "stream": True}) as resp:
        events = [
            line[6:] for line in resp.iter_lines() if line.startswith("data: ") and line != "data: [DONE]"
        ]
    streamed = "".join(json.loads(e)["choices"][0]["delta"].get("content") or "" for e in events)
    assert first == again == streamed


def test_answer_query_cites_the_passages_it_is_given(runner: LlmRunner) -> None:
    """The ``answer_question`` query behind POST /v1/ask: the prompt is the contract's, the answer
    a function of the question and passages (temperature 0)."""
    from mediafleet.common.capability import Passage, QuestionQuery
    from mediafleet.llm_service.contract import ASK_SYSTEM, question_prompt

    query = QuestionQuery(
        question="What should I clean my hands with?",
        passages=[Passage(n=1, source="english.png, ocr", text="Clean hands with soap and water")],
        max_tokens=48,
    )
    messages = question_prompt(query)
    assert messages[0] == {"role": "system", "content": ASK_SYSTEM}
    assert "[1] (english.png, ocr): Clean hands with soap and water" in messages[1]["content"]
    one, two = runner.query("answer", query), runner.query("answer", query)
    assert (
        one.answer and one == two and one.model == "mediafleet-llm" and one.usage["completion_tokens"] <= 48
    )
    with pytest.raises(BadRequest):
        runner.query("summarize", query)


def test_latency_metrics_follow_opentelemetry_genai(client: TestClient, runner: LlmRunner) -> None:
    """One completion of 8 tokens: one time-to-first-token and one time-per-output-token
    observation (gen_ai.server.* of the OpenTelemetry GenAI conventions), under the model's name."""
    labels = {"model": runner.engine.model}

    def value(name: str) -> float:
        return REGISTRY.get_sample_value(name, labels) or 0.0

    before = {n: value(n) for n in (TTFT + "_count", TTFT + "_sum", TPOT + "_count", TPOT + "_sum")}
    body = {"prompt": "One, two, three,", "temperature": 0, "max_tokens": 8}
    done = client.post("/openai/v1/completions", json=body).json()
    assert done["usage"]["completion_tokens"] >= 2
    assert value(TTFT + "_count") == before[TTFT + "_count"] + 1
    assert value(TPOT + "_count") == before[TPOT + "_count"] + 1
    ttft = value(TTFT + "_sum") - before[TTFT + "_sum"]
    tpot = value(TPOT + "_sum") - before[TPOT + "_sum"]
    assert 0 < ttft < 60 and 0 < tpot < 10
    exposition = generate_latest(REGISTRY).decode()
    assert "gen_ai_server_time_to_first_token_seconds_bucket{le=" in exposition
    assert "_created" not in exposition
