"""Runner of the test-only ``echo`` capability."""

from __future__ import annotations

import hashlib
import time
from pathlib import Path
from typing import Any

from pydantic_settings import SettingsConfigDict

from mediafleet.common.capability import ProgressFn
from mediafleet.common.errors import BadRequest
from mediafleet.common.settings import ServiceSettings
from tests.echo_capability.contract import EchoOptions, EchoResult, UpperResult


class EchoSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="ECHO_")

    http_port: int = 8199
    #: Changing it is what a new model version looks like to the result cache.
    model_version: str = "1"


class EchoRunner:
    def __init__(self, settings: EchoSettings):
        self.settings = settings
        self.loaded = False

    def preload(self) -> None:
        self.loaded = True

    def ready(self) -> str | None:
        return None if self.loaded else "not loaded"

    def models(self) -> dict[str, Any]:
        return {
            "data": [{"engine": "echo", "loaded": self.loaded, "model_version": self.settings.model_version}]
        }

    def advertise(self, task: str) -> dict[str, Any]:
        return {"default_options": {}, "model_versions": {"echo": self.settings.model_version}}

    def run(
        self, task: str, media: Path, options: dict[str, Any], inputs: dict[str, Any], progress: ProgressFn
    ) -> EchoResult | UpperResult:
        start = time.perf_counter()
        common = {"engine": "echo", "model": "echo", "model_version": self.settings.model_version}
        if task == "echo_upper":
            return UpperResult(
                text=inputs["echo"]["text"].upper(), elapsed_ms=(time.perf_counter() - start) * 1000, **common
            )
        opts = EchoOptions.model_construct(**options)  # valid: checked by the pipeline
        if opts.reject:
            raise BadRequest("echo was asked to reject this", code="echo_rejected")
        if opts.crash:
            raise RuntimeError("echo was asked to crash")
        progress(0.5, "hashing")
        data = Path(media).read_bytes()
        time.sleep(opts.sleep_s)
        histogram = None
        if opts.embed:
            counts = [0] * 16
            for byte in data:
                counts[byte >> 4] += 1
            norm = sum(c * c for c in counts) ** 0.5 or 1.0
            histogram = [c / norm for c in counts]
        return EchoResult(
            histogram=histogram,
            media_sha256=hashlib.sha256(data).hexdigest(),
            size_bytes=len(data),
            text=opts.text or "",
            elapsed_ms=(time.perf_counter() - start) * 1000,
            **common,
        )
