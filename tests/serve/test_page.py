"""The page in a real browser (headless Chromium through Selenium): strokes drawn on the
canvases, the prediction read from the page, and the same prediction from the Python API for
the very images the page sent.

Needs Debian's ``chromium`` and ``chromium-driver`` (``make test`` installs them where it can);
skipped with that reason where they are absent."""

from __future__ import annotations

import base64
import io
import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

webdriver = pytest.importorskip("selenium.webdriver", reason="needs selenium (hypermaml[dev])")
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
DRIVER = shutil.which("chromedriver")
pytestmark = pytest.mark.skipif(
    not (CHROMIUM and DRIVER),
    reason="no browser: install Debian's chromium and chromium-driver (apt-get install chromium "
    "chromium-driver) for the page's browser test",
)
SHAPES = {  # per class: strokes as lists of (x, y) points on a 112 x 112 canvas
    0: [[(20, 56), (92, 56)]],
    1: [[(56, 15), (56, 97)]],
    2: [[(25, 25), (87, 87)], [(87, 25), (25, 87)]],
    3: [[(30, 30), (82, 30), (82, 82), (30, 82), (30, 30)]],
    4: [[(56, 15), (20, 95), (92, 95), (56, 15)]],
}


@pytest.fixture(scope="module")
def browser():
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    options = Options()
    options.binary_location = CHROMIUM
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--window-size=1000,1400",
                 "--disable-dev-shm-usage"):  # fmt: skip
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(DRIVER), options=options)
    yield driver
    driver.quit()


def draw(driver, canvas_id: str, strokes: list[list[tuple[int, int]]], jitter: int = 0) -> None:
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By

    canvas = driver.find_element(By.ID, canvas_id)
    size = canvas.size
    for stroke in strokes:
        actions = ActionChains(driver, duration=10)
        x0, y0 = stroke[0]
        actions.move_to_element_with_offset(canvas, x0 + jitter - size["width"] // 2,
                                            y0 + jitter - size["height"] // 2)  # fmt: skip
        actions.click_and_hold()
        for (xa, ya), (xb, yb) in zip(stroke, stroke[1:]):
            for _ in range(5):  # several moves make a continuous line
                actions.move_by_offset(int(round((xb - xa) / 5)), int(round((yb - ya) / 5)))
        actions.release().perform()


def canvas_image(driver, canvas_id: str) -> Image.Image:
    url = driver.execute_script(f"return document.getElementById('{canvas_id}').toDataURL()")
    return Image.open(io.BytesIO(base64.b64decode(url.split(",", 1)[1]))).convert("RGB")


def test_drawn_examples_adapt_the_model_and_the_page_agrees_with_the_api(browser, server, model):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    browser.get(server)
    WebDriverWait(browser, 30).until(lambda d: d.find_element(By.TAG_NAME, "body")
                                     .get_attribute("data-ready") == "1")  # fmt: skip
    assert "HyperMAML" in browser.find_element(By.ID, "info").text
    names = ["line", "bar", "cross", "box", "tri"]
    for c, strokes in SHAPES.items():
        field = browser.find_element(By.ID, f"name{c}")
        field.clear()
        field.send_keys(names[c])
        draw(browser, f"c{c}s0", strokes)
    draw(browser, "query", SHAPES[2], jitter=4)  # a cross, drawn a little lower and right
    browser.find_element(By.ID, "go").click()
    result = WebDriverWait(browser, 60).until(
        lambda d: (
            d.find_element(By.ID, "result").get_attribute("data-answer")
            or d.find_element(By.ID, "error").text
        )
    )
    assert not browser.find_element(By.ID, "error").text, result
    answer = json.loads(result)
    shown = browser.find_element(By.ID, "prediction").text
    support = [canvas_image(browser, f"c{c}s0") for c in SHAPES]
    query = canvas_image(browser, "query")
    task = model.adapt(support, names)
    expected = task.predict_proba([query])[0]
    assert shown == answer["predictions"][0]["label"] == task.predict([query])[0]
    assert np.allclose(answer["predictions"][0]["probs"], expected.numpy(), atol=1e-4)
    assert shown == "cross"  # the drawn query is a cross
    if os.environ.get("HYPERMAML_SCREENSHOTS"):  # the README's pictures
        out = Path(os.environ["HYPERMAML_SCREENSHOTS"])
        out.mkdir(parents=True, exist_ok=True)
        browser.save_screenshot(str(out / "serve_drawn.png"))


def test_the_page_shows_the_servers_error_and_keeps_working(browser, server):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    browser.get(server)
    WebDriverWait(browser, 30).until(lambda d: d.find_element(By.TAG_NAME, "body")
                                     .get_attribute("data-ready") == "1")  # fmt: skip
    browser.find_element(By.ID, "go").click()  # nothing drawn yet
    message = WebDriverWait(browser, 10).until(lambda d: d.find_element(By.ID, "error").text)
    assert "has no drawing yet" in message
