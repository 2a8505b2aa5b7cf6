"""The README's quick start, run literally: a new user's first hour, in CI.

The lines between ``<!-- quickstart:begin`` and ``<!-- quickstart:end -->`` in README.md are run
in order, each with ``bash -c``, in a clean copy of the working tree (what ``git ls-files`` lists:
no ``.venv``, ``var``, ``build`` or ``.env``). If the README changes, this runs the new text. The
only overrides are the two the README documents for a host without a registry or a package
index (``OFFLINE=1``, ``MODELS_SOURCE=package``), taken when ``MEDIAFLEET_README_OFFLINE=1``
(CI sets it). Then, as that user would, in Chromium: sign in with the password ``make env``
printed, choose one's own, upload an image and an audio file with the upload view's default
ticks, and expect succeeded jobs with their results shown.
"""

from __future__ import annotations

import gzip
import json
import os
import re
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Page, expect

from tests.browser import browser, page, shot  # noqa: F401 - fixtures
from tests.conftest import sample, working_tree_copy

pytestmark = [pytest.mark.compose, pytest.mark.timeout(5400)]
BEGIN, END = "<!-- quickstart:begin", "<!-- quickstart:end -->"
#: The tasks a default image and audio upload must run once the fleet is up (CLIP has no weights
#: anywhere reachable here: it must be offered as not available, not ticked).
IMAGE_DEFAULTS = {"ocr", "pose", "faces", "nsfw", "metadata", "fingerprint"}


def quickstart_lines(readme: str) -> list[str]:
    """The commands of the README's quick start, in order, without their trailing comments."""
    start, end = readme.index(BEGIN), readme.index(END)
    block = readme[start:end]
    lines: list[str] = []
    for fence in re.findall(r"```(?:bash|sh)?\n(.*?)```", block, re.S):
        for line in fence.splitlines():
            command = re.sub(r"\s+#\s.*$", "", line).strip()
            if command and not command.startswith("#"):
                lines.append(command)
    return lines


@dataclass
class QuickStart:
    where: Path
    outputs: dict[str, str]
    started: float
    env: dict[str, str]

    @property
    def admin_first_password(self) -> str:
        found = re.search(r"password (\S+)", self.outputs["make env"])
        assert found, self.outputs["make env"]
        return found.group(1)

    def compose(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["make", "-s", "--no-print-directory", "compose", f"ARGS={' '.join(args)}"],
            cwd=self.where, env=self.env, capture_output=True, text=True, timeout=600,
        )  # fmt: skip


@pytest.fixture(scope="module")
def quickstart(tmp_path_factory: pytest.TempPathFactory) -> Iterator[QuickStart]:
    started = time.monotonic()
    where = working_tree_copy(tmp_path_factory.mktemp("readme") / "mediafleet-readme")
    keep = {"PATH", "HOME", "LANG", "TERM", "USER", "XDG_CACHE_HOME", "CI", "DOCKER_HOST", "UV_CACHE_DIR"}
    env = {k: v for k, v in os.environ.items() if k in keep}
    if os.environ.get("MEDIAFLEET_README_OFFLINE") == "1":
        env.update(OFFLINE="1", MODELS_SOURCE="package")  # the README's own two overrides
    qs = QuickStart(where, {}, started, env)
    try:
        for line in quickstart_lines((where / "README.md").read_text()):
            t0 = time.monotonic()
            out = subprocess.run(["bash", "-c", line], cwd=where, env=env, capture_output=True, text=True,
                                 timeout=4500)  # fmt: skip
            took = time.monotonic() - t0
            print(f"\n[readme] $ {line}   ({took:.0f} s, exit {out.returncode})\n{out.stdout[-1500:]}")
            assert out.returncode == 0, (
                f"`{line}` failed ({out.returncode}):\n{out.stdout[-3000:]}\n{out.stderr[-3000:]}"
            )
            qs.outputs[line] = out.stdout
        yield qs
    finally:
        down = qs.compose("--profile", "ai", "--profile", "tools", "down", "-v", "--remove-orphans")
        print(f"[readme] fleet removed (exit {down.returncode})")


def wait_ready(base: str, tasks: set[str], timeout_s: float = 600) -> dict[str, str]:
    """/readyz until every task of ``tasks`` says ready (the AI services load their models)."""
    deadline = time.monotonic() + timeout_s
    report: dict[str, str] = {}
    while time.monotonic() < deadline:
        try:
            body = httpx.get(base + "/api/readyz", verify=False, timeout=10).json()
            report = body.get("capabilities") or {}
            if body.get("status") == "ready" and all(report.get(t, "").startswith("ready") for t in tasks):
                return report
        except (httpx.HTTPError, ValueError):
            pass
        time.sleep(2)
    raise TimeoutError(f"not ready after {timeout_s} s: {report}")


def test_readme_quickstart_reaches_a_working_fleet(
    quickstart: QuickStart,
    page: Page,  # noqa: F811
    tmp_path: Path,
) -> None:
    readyz = next(out for line, out in quickstart.outputs.items() if line.startswith("curl "))
    assert json.loads(readyz)["status"] == "ready", readyz
    base = "https://localhost"
    report = wait_ready(base, IMAGE_DEFAULTS | {"transcribe"})
    assert report["clip"].startswith("models_missing:") and "docs/models.md" in report["clip"], report
    print(f"\n[readme] every default task ready {time.monotonic() - quickstart.started:.0f} s after the copy")

    # sign in as the first admin with the password `make env` printed; choose one's own
    page.goto(base + "/login")
    page.get_by_label("Username").fill("admin")
    page.get_by_label("Password").fill(quickstart.admin_first_password)
    page.get_by_role("button", name="Sign in").click()
    own = "readme-user-password-1"
    page.get_by_label("Current password").fill(quickstart.admin_first_password)
    page.get_by_label("New password (at least 10 characters)").fill(own)
    page.get_by_label("New password again").fill(own)
    page.get_by_role("button", name="Change password").click()
    expect(page).to_have_url(re.compile(r"/library$"))

    # the upload view: ticked = the ready defaults; CLIP offered as not available, with the reason
    page.get_by_role("navigation").get_by_role("link", name="Upload").click()
    images = page.locator("fieldset[data-kind=image]")
    expect(images).to_be_visible()
    ticked = {
        label.get_attribute("data-task")
        for label in images.locator("label[data-task]").all()
        if label.get_by_role("checkbox").is_checked()
    }
    assert ticked == IMAGE_DEFAULTS, ticked
    expect(images.locator("label[data-task=clip] input")).to_be_disabled()
    expect(page.get_by_test_id("unavailable")).to_contain_text("weights are not installed")

    # an image with the default ticks: a succeeded job, its results drawn
    page.locator("#files").set_input_files(str(sample("bus.jpg")))
    item = page.locator("li[data-state]", has_text="bus.jpg")
    expect(item).to_have_attribute("data-state", "started", timeout=60_000)
    item.get_by_role("link", name="Open results").click()
    expect(page.get_by_test_id("job-status")).to_have_attribute("data-status", "succeeded", timeout=300_000)
    print(f"[readme] first job succeeded {time.monotonic() - quickstart.started:.0f} s after the copy")
    expect(page.get_by_test_id("result-canvas")).to_be_visible()
    expect(page.get_by_test_id("nsfw-badge")).to_contain_text("safe")
    expect(page.get_by_test_id("ocr-text")).to_contain_text(re.compile("EMT|emisiones|SOL", re.I))
    for layer in ("Text (OCR)", "Pose", "Faces"):  # a toggle per result drawn on the image
        expect(page.get_by_role("checkbox", name=layer)).to_be_checked()
    # where and when: bus.jpg's own EXIF (an iPhone in Madrid, MANIFEST.md), named offline
    expect(page.get_by_test_id("metadata-place")).to_contain_text("Madrid, ES")
    expect(page.get_by_test_id("metadata-camera")).to_contain_text("Apple iPhone XS")
    shot(page, "readme-image-results")
    # the library, filtered by the place and the day the photo records
    page.get_by_role("navigation").get_by_role("link", name="Library").click()
    expect(page.get_by_test_id("library")).to_contain_text("bus.jpg")
    page.get_by_label("Place").fill("madrid")
    page.get_by_label("Place").press("Enter")
    expect(page.get_by_test_id("tile-facts")).to_have_text("Madrid, ES · 2019-03-01")
    shot(page, "readme-library-place")
    page.get_by_label("Taken from").fill("2019-03-02")
    page.get_by_label("Taken from").press("Enter")
    expect(page.get_by_test_id("library-count")).to_have_text("0 files")
    expect(page.get_by_test_id("library-none")).to_have_text("No file matches these filters.")
    shot(page, "readme-library-filtered")

    # near-duplicates: a smaller, re-encoded copy of the photo, uploaded with the default ticks
    from PIL import Image

    copy = tmp_path / "bus-small.jpg"
    with Image.open(sample("bus.jpg")) as img:  # 3/4 size: its two faces are still found
        img.resize((img.width * 3 // 4, img.height * 3 // 4)).save(copy, "JPEG", quality=60)
    page.get_by_role("navigation").get_by_role("link", name="Upload").click()
    page.locator("#files").set_input_files(str(copy))
    item = page.locator("li[data-state]", has_text="bus-small.jpg")
    expect(item).to_have_attribute("data-state", "started", timeout=60_000)
    item.get_by_role("link", name="Open results").click()
    expect(page.get_by_test_id("job-status")).to_have_attribute("data-status", "succeeded", timeout=300_000)
    expect(page.get_by_test_id("duplicates")).to_contain_text("bus.jpg")
    page.get_by_role("navigation").get_by_role("link", name="Duplicates").click()
    group = page.get_by_test_id("duplicate-group")
    expect(group).to_have_count(1)
    expect(group).to_contain_text("2 files")
    expect(group.locator("img")).to_have_count(2)  # both thumbnails drawn
    expect(group).to_contain_text(re.compile(r"bus\.jpg ~ bus-small\.jpg|bus-small\.jpg ~ bus\.jpg"))
    shot(page, "readme-duplicates")

    # people from the two photos' faces (2 people, 2 faces each), corrected by hand
    page.get_by_role("navigation").get_by_role("link", name="People").click()
    people = page.get_by_test_id("person")
    expect(people).to_have_count(2)
    expect(people.nth(0)).to_contain_text("2 faces in 2 files")
    people.nth(0).get_by_role("button", name="Show files").click()
    faces = people.nth(0).get_by_test_id("person-faces").locator("li")
    expect(faces).to_have_count(2)
    expect(faces.locator("img")).to_have_count(2)  # each face's crop
    faces.nth(1).get_by_role("button", name=re.compile(r"^Not ")).click()  # "this is not them"
    expect(page.get_by_role("status")).to_contain_text("it will not be put back")
    expect(people).to_have_count(3)
    two = people.filter(has_text="2 faces in 2 files")
    expect(two).to_have_count(1)
    two.get_by_role("button", name="Show files").click()
    two.get_by_test_id("person-faces").get_by_role("checkbox").first.check()
    two.get_by_role("button", name="Split off the ticked faces (1)").click()
    expect(page.get_by_role("status")).to_have_text("1 face split off into a new person.")
    expect(people).to_have_count(4)
    shot(page, "readme-people-corrected")

    # audio with its default tick (transcribe), speakers told apart
    page.get_by_role("navigation").get_by_role("link", name="Upload").click()
    page.get_by_test_id("diarize").check()
    page.locator("#files").set_input_files(str(sample("jfk.flac")))
    item = page.locator("li[data-state]", has_text="jfk.flac")
    expect(item).to_have_attribute("data-state", "started", timeout=60_000)
    item.get_by_role("link", name="Open results").click()
    expect(page.get_by_test_id("job-status")).to_have_attribute("data-status", "succeeded", timeout=300_000)
    expect(page.locator("body")).to_contain_text("ask not what your country can do for you")
    expect(page.get_by_test_id("metadata-empty")).to_be_visible()  # jfk.flac records no date or place
    # one speaker, named by the user: the transcript says the name
    speakers = page.get_by_test_id("speakers")
    expect(speakers.locator("li[data-speaker]")).to_have_count(1)
    expect(page.locator(".speaker").first).to_have_text("Speaker 1:")
    speakers.get_by_label("Speaker 1").fill("John F. Kennedy")
    speakers.get_by_role("button", name="Save names").click()
    expect(speakers.get_by_role("status")).to_have_text("Saved.")
    expect(page.locator(".speaker").first).to_have_text("John F. Kennedy:")
    shot(page, "readme-audio-results")
    assert page.console.errors == []  # type: ignore[attr-defined]

    # `make upgrade` (docs/operations.md) as the user types it after `git pull`: a database dump
    # first, the images rebuilt (nothing changed here, so none is recreated), the fleet up;
    # what the user made above is in the dump and still shown
    t0 = time.monotonic()
    up = subprocess.run(["bash", "-c", "make upgrade"], cwd=quickstart.where, env=quickstart.env,
                        capture_output=True, text=True, timeout=1800)  # fmt: skip
    assert up.returncode == 0, up.stdout[-3000:] + up.stderr[-3000:]
    found = re.search(r"database dump: (var/backups/pre-upgrade-\S+\.sql\.gz)", up.stdout)
    assert found, up.stdout[-3000:]
    dump = gzip.decompress((quickstart.where / found.group(1)).read_bytes()).decode()
    assert "COPY public.jobs" in dump and "John F. Kennedy" in dump and "bus-small.jpg" in dump
    print(f"[readme] make upgrade: {time.monotonic() - t0:.0f} s, dump {len(dump) >> 10} KiB of SQL")
    wait_ready(base, IMAGE_DEFAULTS | {"transcribe"})
    page.reload()
    expect(page.locator(".speaker").first).to_have_text("John F. Kennedy:")
