"""Contract of the llm_service capability (light: pydantic and mediafleet.common only).

Task ``summarize``: a summary of a job's other results (OCR text, transcript, faces and
people, NSFW label, pose), from :data:`PROMPT_TEMPLATE`, by a local GGUF model on llama.cpp.
The service also answers OpenAI-compatible requests (``/openai/v1/...``), which the gateway
exposes to signed-in users under ``/v1/llm/...``.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from mediafleet.common.capability import (
    Answer,
    ApiRoute,
    Capability,
    HttpApi,
    QuerySpec,
    QuestionQuery,
    TaskSpec,
    TextSegment,
    is_frames,
)
from mediafleet.llm_service import openai_schema as oa

#: Version of the prompt below: results record it, so a changed prompt is a changed result.
PROMPT_VERSION = "summarize-v1"

#: The prompt of ``summarize`` (system + user message; ``{facts}`` is :func:`facts_of`).
SYSTEM_PROMPT = (
    "You summarise what an automatic analysis found in one media file. Use only the facts "
    "given. Write two to four plain sentences. Do not invent names, numbers or events."
)
PROMPT_TEMPLATE = "Media: {kind}{duration}.\nFacts found by the analysis:\n{facts}\n\nSummary:"

#: The system prompt of ``answer`` (``POST /v1/ask``); the user message is
#: ``"Passages:\n[n] (source): text ...\n\nQuestion: ..."`` (:func:`question_prompt`).
ASK_SYSTEM = (
    "Answer the question using only the numbered passages from the user's own media. "
    "Cite the passages you use as [1], [2]. If the passages do not contain the answer, say so."
)

#: Characters of each fact kept in the prompt (small models have small contexts).
MAX_FACT_CHARS = 1500


class SummarizeOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    max_tokens: int | None = Field(default=None, ge=16, le=1024, description="length of the summary, tokens")
    temperature: float | None = Field(default=None, ge=0, le=2, description="0 (default): deterministic")


class SummaryResult(BaseModel):
    engine: str
    model: str
    model_version: str
    summary: str
    sources: list[str] = Field(description="tasks whose results were summarised")
    prompt_version: str
    prompt_tokens: int
    completion_tokens: int
    elapsed_ms: float


def _text_of(result: dict[str, Any]) -> str:
    """Flat text of an OCR/transcript-like result, or of its frames on a video."""
    if is_frames(result):
        parts = [f"[{f['t']:.0f} s] {_text_of(f['result'])}" for f in result["frames"]]
        return " ".join(p for p in parts if not p.endswith("] "))
    return " ".join(str(result.get("text") or "").split())


def facts_of(inputs: dict[str, Any]) -> list[str]:
    """One line per fact of the known task results in ``inputs`` (the prompt's ``{facts}``)."""
    facts: list[str] = []
    if "transcribe" in inputs:
        r = inputs["transcribe"]
        langs = ", ".join(x["language"] for x in r.get("languages", []))
        text = _text_of(r)
        facts.append(
            f"- Speech ({langs or 'no speech'}): {text[:MAX_FACT_CHARS]}" if text else "- No speech."
        )
    if "ocr" in inputs:
        text = _text_of(inputs["ocr"])
        facts.append(
            f"- Text visible in the image: {text[:MAX_FACT_CHARS]}" if text else "- No visible text."
        )
    if "faces" in inputs:
        r = inputs["faces"]
        frames = [f["result"] for f in r["frames"]] if is_frames(r) else [r]
        faces = [face for fr in frames for face in fr.get("faces", [])]
        people = [face.get("person") or {} for face in faces]
        names = sorted({p["name"] for p in people if isinstance(p.get("name"), str)})
        line = f"- Faces: {len(faces)}" + (f"; recognised people: {', '.join(names)}" if names else "")
        facts.append(line + ".")
    if "pose" in inputs:
        r = inputs["pose"]
        frames = [f["result"] for f in r["frames"]] if is_frames(r) else [r]
        facts.append(f"- People detected: {max((len(fr.get('people', [])) for fr in frames), default=0)}.")
    if "nsfw" in inputs:
        r = inputs["nsfw"]
        frames = [f["result"] for f in r["frames"]] if is_frames(r) else [r]
        labels = {(fr.get("nsfw") or {}).get("label") for fr in frames} - {None}
        if labels:
            facts.append(f"- Content rating: {'nsfw' if 'nsfw' in labels else 'safe'}.")
    return facts


def question_prompt(query: QuestionQuery) -> list[dict[str, str]]:
    """The chat messages of ``answer``: :data:`ASK_SYSTEM`, then the numbered passages and the question."""
    context = "\n".join(f"[{p.n}] ({p.source}): {p.text}" for p in query.passages)
    return [
        {"role": "system", "content": ASK_SYSTEM},
        {"role": "user", "content": f"Passages:\n{context}\n\nQuestion: {query.question}"},
    ]


def summary_segments(result: SummaryResult) -> list[TextSegment]:
    return [TextSegment(text=result.summary, ref="summary")] if result.summary.strip() else []


CAPABILITY = Capability(
    name="llm_service",
    title="Local LLM (llama.cpp): summaries of job results, OpenAI-compatible chat, completions, embeddings",
    http_port=8115,
    env_prefix="LLM_",
    runner="mediafleet.llm_service.runner:LlmRunner",
    settings="mediafleet.llm_service.settings:LlmSettings",
    queries=(
        QuerySpec(
            name="answer",
            purpose="answer_question",
            input=QuestionQuery,
            output=Answer,
            description="an answer citing the numbered passages (prompt: ASK_SYSTEM)",
        ),
    ),
    # the OpenAI-compatible API of the service (openai_api), for signed-in users at /v1/llm
    http_api=HttpApi(
        public_prefix="/v1/llm",
        service_prefix="/openai/v1",
        paths={
            "models": ApiRoute("GET", response=oa.ModelList, summary="OpenAI: the model served"),
            "models/{model}": ApiRoute(
                "GET", response=oa.ModelObject, summary="OpenAI: one model (404 for others)"
            ),
            "chat/completions": ApiRoute(
                "POST", oa.ChatCompletionRequest, oa.ChatCompletion, oa.ChatCompletionChunk, "OpenAI: chat"
            ),
            "completions": ApiRoute(
                "POST", oa.CompletionRequest, oa.Completion, oa.Completion, "OpenAI: text completion (legacy)"
            ),
            "embeddings": ApiRoute(
                "POST", oa.EmbeddingRequest, oa.EmbeddingList, summary="OpenAI: embeddings"
            ),
        },
        env_prefix="MEDIAFLEET_LLM_",
        error_style="openai",
        description="OpenAI-compatible (llama.cpp): models, models/{id}, chat/completions, completions, embeddings; "
        '"stream": true for Server-Sent Events; 503 llm_busy with Retry-After when the slots are full',
    ),
    tasks=(
        TaskSpec(
            name="summarize",
            options=SummarizeOptions,
            result=SummaryResult,
            summary=lambda r: r.summary,
            generated=True,  # /v1/ask answers from what was read or heard, not from earlier summaries
            media_kinds=("image", "audio", "video"),
            after=("transcribe", "ocr", "faces", "pose", "nsfw"),
            segments=summary_segments,
            description="a short summary of the job's other results (prompt: PROMPT_TEMPLATE)",
        ),
    ),
)
