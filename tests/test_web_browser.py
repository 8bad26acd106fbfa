"""`derivanim serve` in a real browser: the server as a user starts it (its own process, a free port, a temporary data
folder), driven by Debian's headless Chromium through Playwright (setup.sh installs chromium; nothing is downloaded).

DERIVANIM_SCREENSHOTS=DIR keeps the screenshots (empty, error, in progress, done; desktop and phone) and the times
measured in DIR/timings.json; otherwise they go to a temporary folder.
"""

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import sync_playwright

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
VIEWPORTS = {"desktop": {"width": 1280, "height": 900}, "phone": {"width": 390, "height": 844}}


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """(url, data folder) of `derivanim serve` in its own process; stopped with SIGTERM at the end, which must
    leave no half-written file behind."""
    data = tmp_path_factory.mktemp("serve-data")
    port = free_port()
    process = subprocess.Popen([sys.executable, "-m", "derivanim.cli", "serve", "--data", str(data), "--port",
                                str(port)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            if httpx.get(url, timeout=1).status_code == 200:
                break
        except httpx.TransportError:
            pass
        assert process.poll() is None and time.monotonic() < deadline, process.stdout.read()
        time.sleep(0.2)
    yield url, data
    process.send_signal(signal.SIGTERM)
    output = process.communicate(timeout=60)[0]
    assert process.returncode in (0, -signal.SIGTERM), output  # uvicorn shuts down, then dies of the signal
    assert "Traceback" not in output
    assert not [path for path in data.rglob("*") if path.name.endswith(".part")]


@pytest.fixture(scope="module")
def browser():
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture(scope="module")
def shots(tmp_path_factory) -> Path:
    folder = Path(os.environ.get("DERIVANIM_SCREENSHOTS") or tmp_path_factory.mktemp("screenshots"))
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def open_page(browser, url: str, viewport: str):
    page = browser.new_page(viewport=VIEWPORTS[viewport])
    dialogs = []
    page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
    page.on("requestfailed", lambda request: request.resource_type == "media"  # Chromium aborts and resumes these
            or dialogs.append(f"request failed: {request.url}"))
    page.goto(url)
    page.wait_for_function("typeof katex !== 'undefined'")  # the vendored KaTeX, from the server itself
    return page, dialogs


@pytest.mark.parametrize("viewport", VIEWPORTS)
def test_script_injection_shows_as_text(server, browser, shots, viewport):
    url, _ = server
    page, dialogs = open_page(browser, url, viewport)
    page.screenshot(path=shots / f"{viewport}-empty.png", full_page=True)
    scripts = page.locator("script").count()
    page.click("summary:has-text('Advanced')")
    page.select_option("select[name=filler]", "rules")  # the grammar answers at once (the model would refuse it)
    page.fill("#request", "<script>alert(1)</script>")
    page.click("#make")
    page.wait_for_selector("#error:not([hidden])")
    assert page.inner_text("#error") == ("unknown function 'alert' at column 9; supported: abs, acos, acosh, asin, "
                                         "asinh, atan, atanh, cos, cosh, cot, csc, exp, ln, log, log10, log2, sec, "
                                         "sin, sinh, sqrt, tan, tanh")
    assert page.input_value("#request") == "<script>alert(1)</script>"
    page.fill("#search", "<img src=x onerror=alert(2)>")
    page.wait_for_timeout(600)
    page.screenshot(path=shots / f"{viewport}-error.png", full_page=True)
    assert page.locator("script").count() == scripts and page.locator("#entries img").count() == 0
    assert dialogs == []


@pytest.mark.slow
def test_a_function_typed_in_the_page_plays_then_comes_from_the_gallery(server, browser, shots):
    url, data = server
    page, dialogs = open_page(browser, url, "desktop")
    page.fill("#request", "sin(x^2)")
    page.check("input[name=quality][value=l]")  # 480p
    clicked = time.monotonic()
    page.click("#make")

    # Slots, f and f' typeset, and the derivation: before any video exists.
    page.wait_for_selector("#df .katex")
    typeset = time.monotonic() - clicked
    assert page.locator("#player video").count() == 0
    assert page.locator("#df annotation").text_content() == r"f'(x) = 2 x \cos{\left(x^{2} \right)}"
    assert page.locator("#derivation li").count() == 2
    assert "sin(x^2)" in page.locator("#slots").text_content()  # in the closed "Slots" details
    page.wait_for_function("document.querySelector('#bar').value > 0.3", timeout=300_000)
    assert page.inner_text("#phase").startswith("rendering phase ")
    page.screenshot(path=shots / "desktop-rendering.png", full_page=True)

    # Then the video, playing inline, with its downloads and the command that makes it.
    page.wait_for_function("(() => { const v = document.querySelector('#player video');"
                           " return v && v.readyState >= 3 && !v.paused && v.currentTime > 0.5; })()",
                           timeout=600_000)
    playable = time.monotonic() - clicked
    assert page.get_attribute("#scene-link", "href").endswith("/scene")
    assert page.inner_text("#command") == "derivanim make 'sin(x^2)' --quality l --format mp4"
    page.wait_for_selector("#entries li:has-text('sin(x^2)')")
    page.evaluate("""() => new Promise((seeked) => {  // the tangent's sweep, for the screenshot
        const video = document.querySelector('#player video');
        video.pause();
        video.addEventListener('seeked', seeked, { once: true });
        video.currentTime = video.duration * 0.9;
    })""")
    page.screenshot(path=shots / "desktop-done.png", full_page=True)

    # The same request again: from the gallery at once, nothing rendered again.
    phone, _ = open_page(browser, url, "phone")
    phone.fill("#request", "sin(x^2)")
    again = time.monotonic()
    phone.click("#make")
    phone.wait_for_selector("#from-gallery:not([hidden])", timeout=10_000)
    from_gallery = time.monotonic() - again
    phone.wait_for_function("document.querySelector('#player video').readyState >= 3")
    phone.wait_for_timeout(1500)
    phone.screenshot(path=shots / "phone-done.png", full_page=True)
    assert len(list((data / "gallery").iterdir())) == 1
    assert dialogs == []
    (shots / "timings.json").write_text(json.dumps(
        {"click_to_typeset_s": round(typeset, 2), "click_to_playing_video_480p_s": round(playable, 1),
         "again_from_gallery_s": round(from_gallery, 2), "load": os.getloadavg()}, indent=2))
