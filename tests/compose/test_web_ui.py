"""The web UI in a real browser (Playwright + Debian's Chromium) against the fleet behind nginx
over HTTPS: a new user signs in with the keyboard and changes the first password, uploads
english.png, watches the job finish, reads the OCR text and its boxes and finds a word of it;
the pose overlay on bus.jpg, the transcript of jfk.flac that follows playback and seeks,
naming a face cluster and finding the face everywhere, a phone-sized screen and German;
the admin view of users, API keys and the fleet.

Each test saves screenshots (``var/ui-e2e``; the README shows two of them); a failure also
saves the page's HTML and console log. Every test ends with no console error.

Runs in ``make test-compose`` on the compose fleet; ``MEDIAFLEET_UI_URL`` (with
``MEDIAFLEET_UI_ADMIN_PASSWORD``, the admin's first password) points it at a fleet you started.
"""

from __future__ import annotations

import os
import re
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass

import httpx
import pytest
from playwright.sync_api import Page, expect

from tests.api_helpers import NEW_PASSWORD, auth
from tests.browser import browser, page, shot  # noqa: F401 - fixtures
from tests.compose.conftest import ADMIN_PASSWORD
from tests.conftest import sample

pytestmark = [pytest.mark.compose, pytest.mark.timeout(600)]
JOB_TIMEOUT_MS = 300_000


@dataclass
class Site:
    base: str
    api: Callable[[], httpx.Client]
    admin_first_password: str
    #: the admin's password after the forced change (made here unless another test did)
    admin_password: str


@pytest.fixture(scope="module")
def site(request: pytest.FixtureRequest) -> Site:
    url = os.environ.get("MEDIAFLEET_UI_URL")
    if url:
        return Site(
            url.rstrip("/"),
            lambda: httpx.Client(base_url=url.rstrip("/") + "/api", verify=False, timeout=60),
            os.environ["MEDIAFLEET_UI_ADMIN_PASSWORD"],
            NEW_PASSWORD,
        )
    fleet = request.getfixturevalue("fleet")
    return Site(fleet.base, fleet.client, fleet.admin_password, ADMIN_PASSWORD)


def _admin(site: Site, c: httpx.Client) -> str:
    """The admin's token; its forced password change done when no other test did it yet."""
    resp = c.post("/v1/auth/token", data={"username": "admin", "password": site.admin_password})
    if resp.status_code == 200:
        return resp.json()["access_token"]
    first = c.post("/v1/auth/token", data={"username": "admin", "password": site.admin_first_password})
    assert first.status_code == 200, first.text
    changed = c.post("/v1/auth/password", headers=auth(first.json()["access_token"]),
                     json={"current_password": site.admin_first_password, "new_password": site.admin_password})  # fmt: skip
    assert changed.status_code == 200, changed.text
    return changed.json()["access_token"]


def new_user(site: Site, change_password: bool) -> tuple[str, str]:
    """A fresh account created by the admin: (username, password). Its first sign-in must
    change the password unless ``change_password`` did it here already."""
    name, first = f"ui-{secrets.token_hex(4)}", f"first-{secrets.token_hex(6)}"
    with site.api() as c:
        resp = c.post("/v1/users", json={"username": name, "password": first}, headers=auth(_admin(site, c)))
        assert resp.status_code == 201, resp.text
        if not change_password:
            return name, first
        token = c.post("/v1/auth/token", data={"username": name, "password": first}).json()["access_token"]
        resp = c.post("/v1/auth/password", headers=auth(token),
                      json={"current_password": first, "new_password": NEW_PASSWORD})  # fmt: skip
        assert resp.status_code == 200, resp.text
    return name, NEW_PASSWORD


def sign_in(page: Page, site: Site) -> str:  # noqa: F811
    name, password = new_user(site, change_password=True)
    page.goto(site.base + "/login")
    page.get_by_label("Username").fill(name)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Sign in").click()
    expect(page).to_have_url(re.compile(r"/library$"))
    return name


def upload(page: Page, file: str, kind: str, tasks: set[str]) -> None:  # noqa: F811
    """Upload ``file`` from the upload page with only ``tasks`` (labels) checked for ``kind``,
    then open its results."""
    page.get_by_role("navigation").get_by_role("link", name="Upload").click()
    group = page.locator("fieldset", has=page.locator("legend", has_text=kind))
    expect(group).to_be_visible()  # the view's code is loaded on first use
    assert unlabelled(page) == []
    for box in group.get_by_role("checkbox").all():
        label = box.locator("xpath=..").inner_text().strip()
        box.set_checked(label in tasks)
    page.locator("#files").set_input_files(str(sample(file)))
    assert {
        b.locator("xpath=..").inner_text().strip()
        for b in group.get_by_role("checkbox").all()
        if b.is_checked()
    } == tasks
    item = page.locator("li[data-state]", has_text=file)
    expect(item).to_have_attribute("data-state", "started", timeout=60_000)
    item.get_by_role("link", name="Open results").click()
    expect(page.get_by_test_id("job-status")).to_have_attribute(
        "data-status", "succeeded", timeout=JOB_TIMEOUT_MS
    )


def colored_pixels(page: Page, rgb: tuple[int, int, int], tolerance: int = 12) -> int:  # noqa: F811
    """Canvas pixels within ``tolerance`` of ``rgb``: how much of an overlay is drawn."""
    return page.get_by_test_id("result-canvas").evaluate(
        """(c, [r, g, b, tol]) => {
             const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data
             let n = 0
             for (let i = 0; i < d.length; i += 4)
               if (Math.abs(d[i] - r) <= tol && Math.abs(d[i + 1] - g) <= tol && Math.abs(d[i + 2] - b) <= tol) n++
             return n
           }""",
        [*rgb, tolerance],
    )


def wait_drawn(page: Page, rgb: tuple[int, int, int], more_than: int, timeout_s: float = 15) -> bool:  # noqa: F811
    """Whether more than ``more_than`` canvas pixels of ``rgb`` appear within ``timeout_s``
    (the overlay is drawn when the image has loaded, which may be after the result arrived)."""
    deadline = time.monotonic() + timeout_s
    while colored_pixels(page, rgb) <= more_than:
        if time.monotonic() > deadline:
            return False
        time.sleep(0.2)
    return True


def unlabelled(page: Page) -> list[str]:  # noqa: F811
    """Form controls on the page with no accessible name (no label, aria-label or text)."""
    return page.evaluate(
        """() => [...document.querySelectorAll('input, select, textarea, button')]
             .filter((e) => e.type !== 'hidden')
             .filter((e) => !(e.labels?.length || e.getAttribute('aria-label') ||
                              e.getAttribute('aria-labelledby') || (e.tagName === 'BUTTON' && e.textContent.trim())))
             .map((e) => e.outerHTML.slice(0, 160))"""
    )


OCR_BLUE, LIMB_YELLOW = (0x1F, 0x5F, 0xBF), (0xFF, 0xD4, 0x3B)


def test_main_job_sign_in_upload_ocr_boxes_and_search(page: Page, site: Site) -> None:  # noqa: F811
    name, first = new_user(site, change_password=False)
    page.goto(site.base + "/")
    expect(page).to_have_url(re.compile(r"/login\?next="))
    # the keyboard alone: type, Tab to the password, Enter submits
    page.get_by_label("Username").focus()
    page.keyboard.type(name)
    page.keyboard.press("Tab")
    page.keyboard.type(first)
    page.keyboard.press("Enter")
    expect(page).to_have_url(re.compile(r"/password$"))
    expect(page.get_by_text("This is your first sign-in")).to_be_visible()
    assert unlabelled(page) == []
    shot(page, "password-change")
    page.get_by_label("Current password").fill(first)
    own = "my-own-" + secrets.token_hex(6)
    page.get_by_label("New password (at least 10 characters)").fill(own)
    page.get_by_label("New password again").fill(own)
    page.get_by_role("button", name="Change password").click()
    expect(page).to_have_url(re.compile(r"/library$"))
    expect(page.get_by_text("Nothing here yet.")).to_be_visible()

    upload(page, "english.png", "Images", {"Text (OCR)"})
    text = page.get_by_test_id("ocr-text")
    expect(text).to_contain_text(re.compile(r"soap and water", re.I))
    # the line boxes are drawn once the image has loaded (the text can come first: a cached result)
    assert wait_drawn(page, OCR_BLUE, more_than=2000)
    assert unlabelled(page) == []

    # hovering a line's box shows its text: the first line of the job's result, from the API
    media_id = page.url.split("/media/")[1].split("?")[0]
    with site.api() as c:  # a sign-in of its own (refreshing the page's token would revoke it)
        access = c.post("/v1/auth/token", data={"username": name, "password": own}).json()["access_token"]
        jobs = c.get(f"/v1/jobs?media_id={media_id}", headers=auth(access)).json()["data"]
    line = jobs[0]["results"]["ocr"]["lines"][0]
    canvas = page.get_by_test_id("result-canvas")
    box = canvas.bounding_box()
    scale = box["width"] / 905  # english.png is 905 px wide
    x1, y1, x2, y2 = line["box"]
    page.mouse.move(box["x"] + (x1 + x2) / 2 * scale, box["y"] + (y1 + y2) / 2 * scale)
    expect(page.get_by_test_id("overlay-tip")).to_have_text(line["text"])
    shot(page, "results-ocr")
    page.get_by_label("Text (OCR)").uncheck()
    assert colored_pixels(page, OCR_BLUE) < 50  # the layer is off

    page.get_by_role("navigation").get_by_role("link", name="Search").click()
    page.get_by_label("Search for").fill("soap")
    page.keyboard.press("Enter")
    results = page.get_by_test_id("search-results")
    expect(results).to_contain_text("english.png")
    expect(results.locator("mark").first).to_have_text(re.compile("soap", re.I))
    shot(page, "search")
    assert unlabelled(page) == []
    results.get_by_role("link", name="english.png").click()
    expect(page.get_by_test_id("ocr-text")).to_contain_text(re.compile("soap", re.I))

    page.reload()  # the refresh token signs in again: the page is kept
    expect(page.get_by_test_id("ocr-text")).to_contain_text(re.compile("soap", re.I))
    page.get_by_role("button", name="Sign out").click()
    expect(page).to_have_url(re.compile(r"/login$"))
    assert page.console.errors == []


def test_pose_overlay_and_nsfw_badge_on_bus(page: Page, site: Site) -> None:  # noqa: F811
    sign_in(page, site)
    upload(page, "bus.jpg", "Images", {"Pose", "NSFW"})
    assert wait_drawn(page, LIMB_YELLOW, more_than=500)  # 4 people's limbs
    drawn = colored_pixels(page, LIMB_YELLOW)
    expect(page.get_by_test_id("nsfw-badge")).to_contain_text("safe")
    shot(page, "results-pose")
    page.get_by_label("Pose").uncheck()
    assert colored_pixels(page, LIMB_YELLOW) < drawn / 10
    assert page.console.errors == []


def test_transcript_follows_playback_and_seeks(page: Page, site: Site) -> None:  # noqa: F811
    sign_in(page, site)
    upload(page, "jfk.flac", "Audio", {"Transcript"})
    transcript = page.get_by_test_id("transcript")
    expect(transcript).to_contain_text(re.compile("ask not what your country can do for you", re.I))
    # the word being heard is marked: play from the middle of the first "country"
    word = transcript.locator("span.word", has_text="country").first
    start, end = float(word.get_attribute("data-start")), float(word.get_attribute("data-end"))
    assert 2.0 < start < end < 11.0
    audio = page.locator("audio")
    audio.evaluate("(a, t) => { a.currentTime = t }", (start + end) / 2)
    expect(word).to_have_class(re.compile(r"\bnow\b"))
    expect(transcript.locator("span.word.now")).to_have_count(1)
    shot(page, "results-transcript")
    # a click on a segment's time seeks there
    first = transcript.locator("li").first
    first.get_by_role("button").click()
    assert audio.evaluate("a => a.currentTime") < 1.0
    expect(first).to_have_class(re.compile("current"))
    assert page.console.errors == []


def test_admin_sees_services_and_manages_users(page: Page, site: Site) -> None:  # noqa: F811
    with site.api() as c:
        _admin(site, c)
    page.goto(site.base + "/login")
    page.get_by_label("Username").fill("admin")
    page.get_by_label("Password").fill(site.admin_password)
    page.get_by_role("button", name="Sign in").click()
    page.get_by_role("navigation").get_by_role("link", name="Admin").click()
    services = page.get_by_test_id("services")
    expect(services).to_contain_text("ready")
    ocr = services.locator("tr[data-capability=ocr_detection]")
    expect(ocr.get_by_test_id("workers")).to_have_text("1")  # one live worker
    expect(ocr.get_by_test_id("devices")).to_have_text("cpu: 1")  # on the CPU
    expect(ocr.locator("td").nth(2)).to_contain_text("ready")  # per task: "Text (OCR): ready"
    expect(ocr.locator("td").nth(3)).to_have_text(
        re.compile(r"^\d+ / \d+ / \d+$")
    )  # waiting: high / normal / low
    expect(ocr.get_by_test_id("oldest-wait")).to_have_text(
        re.compile(r"^(–|\d+ s)$")
    )  # the oldest waiting task
    expect(ocr.get_by_test_id("failed-hour")).to_have_text(re.compile(r"^\d+$"))  # failures in the last hour
    expect(ocr.locator("td").nth(6)).to_contain_text(re.compile(r"[0-9a-f]{12}"))  # a loaded model's version
    name = f"ui-new-{secrets.token_hex(3)}"
    page.get_by_label("Username").fill(name)
    page.get_by_label("First password (they change it)").fill("first-" + secrets.token_hex(6))
    page.get_by_role("button", name="Create user").click()
    row = page.locator("tr", has_text=name)
    expect(row).to_contain_text("active")
    row.get_by_role("button", name="Disable").click()
    expect(row).to_contain_text("disabled")
    page.get_by_label("Name", exact=True).fill("ci key")
    page.get_by_role("button", name="Create key").click()
    expect(page.get_by_test_id("new-key")).to_have_text(re.compile(r"^mfk_"))
    shot(page, "admin")
    assert unlabelled(page) == []
    assert page.console.errors == []


def test_video_timeline_of_frame_results_seeks(page: Page, site: Site) -> None:  # noqa: F811
    """mmpose_demo.mp4 (1 s, 5 frames, pedestrians): pose on its sampled frames, one timeline
    mark per sampled frame with its people count (as the API's timeline has them); a mark
    seeks the player back to its frame."""
    name = sign_in(page, site)
    upload(page, "mmpose_demo.mp4", "Video", {"Pose"})
    marks = page.get_by_role("button", name=re.compile(r"^0:00 · \d+ people$"))
    expect(marks.first).to_be_visible()
    media_id = page.url.split("/media/")[1].split("?")[0]
    with site.api() as c:
        access = c.post("/v1/auth/token", data={"username": name, "password": NEW_PASSWORD}).json()[
            "access_token"
        ]
        job = c.get(f"/v1/jobs?media_id={media_id}", headers=auth(access)).json()["data"][0]
        frames = c.get(f"/v1/jobs/{job['job_id']}/timeline", headers=auth(access)).json()["frames"]
    assert frames  # sampled at the default rate: a 1-s video gives its first frame
    expected = [f"0:00 · {len(f['results']['pose']['people'])} people" for f in frames]
    assert [m.strip() for m in marks.all_inner_texts()] == expected
    assert int(expected[0].split(" · ")[1].split()[0]) >= 3  # a street of pedestrians
    video = page.locator("video")
    video.evaluate(
        "v => new Promise(done => {"
        " v.addEventListener('seeked', () => done(), { once: true }); v.currentTime = 0.8 })"
    )
    # The mark seeks, then plays: the position is read at the `seeking` event, before playback
    # moves it on (how far it moves before a later read depends on the machine's load).
    video.evaluate(
        "v => { window.seekedTo = null;"
        " v.addEventListener('seeking', () => { window.seekedTo = v.currentTime }, { once: true }) }"
    )
    marks.nth(len(frames) - 1).click()
    page.wait_for_function("() => window.seekedTo !== null")
    assert abs(page.evaluate("() => window.seekedTo") - frames[-1]["t"]) < 0.01
    shot(page, "results-video")
    assert page.console.errors == []


def test_name_a_face_cluster_on_a_phone_in_german(page: Page, site: Site) -> None:  # noqa: F811
    sign_in(page, site)
    upload(page, "obama.jpg", "Images", {"Faces"})
    upload(page, "obama2.jpg", "Images", {"Faces"})
    page.set_viewport_size({"width": 390, "height": 844})
    page.get_by_label("Language").select_option("de")
    page.get_by_role("navigation").get_by_role("link", name="Personen").click()
    person = page.get_by_test_id("person").filter(has_text="2 Gesichter in 2 Dateien")
    expect(person).to_have_count(1)
    person.get_by_label("Name").fill("Barack Obama")
    person.get_by_role("button", name="Speichern").click()
    expect(page.get_by_role("status")).to_have_text("Gespeichert: Barack Obama")
    shot(page, "people-phone-de")
    assert unlabelled(page) == []
    # the name shows on the face in the results, and nothing scrolls sideways on a phone
    page.get_by_role("navigation").get_by_role("link", name="Mediathek").click()
    page.get_by_role("link", name="obama.jpg").click()
    expect(page.locator("aside")).to_contain_text("Barack Obama")
    page.locator("aside").get_by_role("button", name="Dieses Gesicht überall finden").click()
    expect(page.get_by_test_id("face-matches").get_by_role("link")).to_have_text(["obama2.jpg"])
    assert page.evaluate("document.scrollingElement.scrollWidth <= window.innerWidth")
    shot(page, "results-faces-phone-de")
    assert page.console.errors == []
