"""Playwright driving Debian's Chromium (``/usr/bin/chromium``, no browser download) for the
web UI's end-to-end tests.

Each test gets a fresh browser context (no stored session) and a page whose console errors
and uncaught exceptions are collected; :func:`shot` saves a screenshot, and a failing test
leaves the page's HTML and its console log beside the screenshots (``var/ui-e2e`` or
``$MEDIAFLEET_UI_ARTIFACTS``).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
ARTIFACTS = Path(os.environ.get("MEDIAFLEET_UI_ARTIFACTS", ROOT / "var" / "ui-e2e"))
CHROMIUM = os.environ.get("MEDIAFLEET_CHROMIUM", "/usr/bin/chromium")
#: Flags for a closed network: no sandbox as root, no GPU, and none of Chromium's own traffic.
CHROMIUM_FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-quic",
    "--no-first-run",
]


@dataclass
class Console:
    """What the page printed: ``errors`` are console errors and uncaught exceptions."""

    lines: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


def shot(page, name: str, full_page: bool = True) -> Path:
    """Save a PNG of the page as ``<artifacts>/<name>.png``."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=full_page)
    return path


@pytest.fixture(scope="session")
def browser() -> Iterator[object]:
    if not Path(CHROMIUM).is_file():
        pytest.fail(f"{CHROMIUM} is missing: run `bash scripts/ui.sh browser` (Debian's chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS, headless=True)
        yield b
        b.close()


@pytest.fixture
def page(browser, request: pytest.FixtureRequest) -> Iterator[object]:
    """A page in a fresh context (1280 x 900, English, the fleet's self-signed certificate
    accepted); on failure its HTML and console log are saved."""
    context = browser.new_context(
        ignore_https_errors=True, viewport={"width": 1280, "height": 900}, locale="en-US"
    )
    context.set_default_timeout(30_000)
    pg = context.new_page()
    console = Console()
    pg.on("console", lambda m: (console.lines.append(f"{m.type}: {m.text}"),
                                m.type == "error" and console.errors.append(m.text)))  # fmt: skip
    pg.on("pageerror", lambda e: (console.lines.append(f"pageerror: {e}"), console.errors.append(str(e))))
    pg.console = console  # type: ignore[attr-defined]
    yield pg
    failed = getattr(request.node, "rep_call", None)
    if failed is not None and failed.failed:
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        name = request.node.name
        try:
            (ARTIFACTS / f"FAILED-{name}.html").write_text(pg.content())
            pg.screenshot(path=str(ARTIFACTS / f"FAILED-{name}.png"), full_page=True)
        except Exception as exc:  # the page may be gone; the log still helps
            console.lines.append(f"(no HTML: {exc})")
        (ARTIFACTS / f"FAILED-{name}.console.log").write_text("\n".join(console.lines) + "\n")
    context.close()
