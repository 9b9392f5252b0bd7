"""The demo page end to end in headless Chromium (test level 2): Debian's `chromium`, driven by Selenium
through Debian's `chromium-driver`, against the gateway and the stand-in started as in `make local`.

Files are dropped the way a browser delivers a drop: a drag-and-drop event whose DataTransfer holds real
File objects (read from disk through a file input, as a user's files are); "choose" uses the page's own file
input. Every page load collects Content-Security-Policy violations; none may occur. A screenshot of the
results is saved to build/screenshots/demo-page.png (and the phone layout to demo-page-phone.png).

Skipped with the reason when Chromium or its driver is absent (`make test` installs them with apt-get when
run as root).
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from model import spec
from tests.support.gateway import GatewayProcess, start_gateway
from tests.support.standin import free_port, start_standin

pytestmark = pytest.mark.process

REPO = Path(__file__).resolve().parents[2]
SCREENSHOTS = REPO / "build" / "screenshots"
CHROMIUM = shutil.which("chromium")
CHROMEDRIVER = shutil.which("chromedriver")
# Flags for Chromium in a container as root, with no network but 127.0.0.1: no sandbox (root), no GPU, and
# none of the background fetches (component updates, sync, QUIC probes) a first run would start.
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
)
DESKTOP = (1100, 900)
PHONE = (390, 844)
WAIT_S = 60
# Runs before the page's own script on every load: records each CSP violation the page causes.
CSP_RECORDER = """
window.__cspViolations = [];
document.addEventListener("securitypolicyviolation", (event) => {
  window.__cspViolations.push(event.violatedDirective + " " + event.blockedURI);
});
"""
# Turns the files of a temporary input into a drop on the page's drop zone.
DROP = """
const source = document.getElementById("__drop_source");
const data = new DataTransfer();
for (const file of source.files) data.items.add(file);
source.remove();
const zone = document.getElementById("drop");
for (const type of ["dragenter", "dragover", "drop"]) {
  zone.dispatchEvent(new DragEvent(type, { bubbles: true, cancelable: true, dataTransfer: data }));
}
"""

webdriver = pytest.importorskip("selenium.webdriver", reason="selenium missing: run `make venv`")
from selenium.webdriver.common.action_chains import ActionChains  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.common.keys import Keys  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402

if CHROMIUM is None or CHROMEDRIVER is None:
    pytest.skip(
        "Debian's chromium and chromium-driver are missing (make test installs them with apt-get, as root)",
        allow_module_level=True,
    )


@dataclass
class Gateways:
    working: GatewayProcess
    without_tf_serving: GatewayProcess


@pytest.fixture(scope="module")
def gateways(
    tmp_path_factory: pytest.TempPathFactory, demo_model_base: Path, gateway_python: Path
) -> Iterator[Gateways]:
    tmp = tmp_path_factory.mktemp("demo-page")
    standin = start_standin(demo_model_base, log_dir=tmp)
    started: list[GatewayProcess] = []
    try:
        standin.wait_until_serving()
        for tf_serving in (standin.address, f"127.0.0.1:{free_port()}"):
            gateway = start_gateway({"TF_SERVING_HOST": tf_serving}, python=gateway_python, log_dir=tmp)
            started.append(gateway)
            gateway.wait_until_healthy()
        yield Gateways(*started)
    finally:
        for gateway in started:
            gateway.stop()
        standin.stop()


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory, gateways: Gateways) -> Iterator[Any]:
    # Asks for the gateways so that it quits first: a gateway stopped while the browser still holds its
    # keep-alive connections waits up to 6 s for them (measured: the module's teardown took 14 s).
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in CHROMIUM_FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={tmp_path_factory.mktemp('chromium-profile')}")
    options.add_argument(f"--window-size={DESKTOP[0]},{DESKTOP[1]}")
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    # An explicit driver path: Selenium Manager (which would download drivers) is never run.
    service = webdriver.ChromeService(executable_path=CHROMEDRIVER)
    driver = webdriver.Chrome(options=options, service=service)
    driver.execute_cdp_cmd("Page.addScriptToEvaluateOnNewDocument", {"source": CSP_RECORDER})
    try:
        yield driver
    finally:
        driver.quit()


@pytest.fixture
def page(browser: Any, gateways: Gateways) -> Iterator[Any]:
    browser.set_window_size(*DESKTOP)
    browser.get(f"{gateways.working.base_url}/")
    browser.get_log("browser")  # start each test with an empty console
    yield browser
    violations = browser.execute_script("return window.__cspViolations")
    console = [e["message"] for e in browser.get_log("browser") if "Content Security Policy" in e["message"]]
    assert not violations, f"CSP violations: {violations}"
    assert not console, f"CSP messages on the console: {console}"


@pytest.fixture
def broken_file(tmp_path: Path) -> Path:
    path = tmp_path / "broken.jpg"
    path.write_bytes(b"\xff\xd8\xff\xe0 this is not really a JPEG")
    return path


def drop(driver: Any, *paths: Path) -> None:
    driver.execute_script(
        "const input = document.createElement('input'); input.type = 'file'; input.multiple = true;"
        "input.id = '__drop_source'; document.body.append(input);"
    )
    driver.find_element(By.ID, "__drop_source").send_keys("\n".join(str(p) for p in paths))
    driver.execute_script(DROP)


def choose(driver: Any, *paths: Path) -> None:
    driver.find_element(By.ID, "files").send_keys("\n".join(str(p) for p in paths))


def finished_cards(driver: Any, count: int) -> list[Any]:
    """Waits until `count` result cards are done or failed; returns them in page order."""

    def settled(d: Any) -> list[Any] | bool:
        cards = d.find_elements(By.CSS_SELECTOR, "#results .card")
        states = [card.get_attribute("data-state") for card in cards]
        return cards if len(cards) == count and all(s in {"done", "error"} for s in states) else False

    cards: list[Any] = WebDriverWait(driver, WAIT_S).until(settled)
    return cards


def top_labels(card: Any) -> list[str]:
    return [row.get_attribute("data-label") for row in card.find_elements(By.CSS_SELECTOR, ".labels .label")]


def save_screenshot(driver: Any, name: str) -> None:
    """The whole page, not just the viewport: the window is made as tall as the page first."""
    frame = driver.execute_script("return window.outerHeight - window.innerHeight")
    height = driver.execute_script("return document.documentElement.scrollHeight")
    driver.set_window_size(driver.get_window_size()["width"], height + frame)
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    driver.save_screenshot(str(SCREENSHOTS / name))


def error_text(card: Any) -> str:
    return str(card.find_element(By.CSS_SELECTOR, ".error").text)


# --- the tests ---------------------------------------------------------------------------------------------


def test_a_dropped_golden_image_shows_its_label_first_with_the_model_name_and_version(
    page: Any, golden_dir: Path
) -> None:
    drop(page, golden_dir / "leopard.jpg")
    (card,) = finished_cards(page, 1)
    assert card.get_attribute("data-state") == "done"
    assert top_labels(card)[0] == "leopard"
    assert len(top_labels(card)) == 3
    first = card.find_element(By.CSS_SELECTOR, ".labels .label")
    assert first.find_element(By.CSS_SELECTOR, ".label-score").text.endswith("%")
    bar = first.find_element(By.CSS_SELECTOR, ".fill")
    assert bar.size["width"] > 0
    assert page.find_element(By.ID, "model").text == f"Model: {spec.MODEL_NAME}, version 1"
    assert card.find_element(By.CSS_SELECTOR, ".name").text == "leopard.jpg"


def test_a_dropped_broken_file_shows_the_api_error_in_plain_words(page: Any, broken_file: Path) -> None:
    drop(page, broken_file)
    (card,) = finished_cards(page, 1)
    assert card.get_attribute("data-state") == "error"
    assert card.find_element(By.CSS_SELECTOR, ".error").is_displayed()
    assert error_text(card).startswith("This file is not an image the classifier can read.")
    assert not top_labels(card)


def test_several_chosen_images_each_get_their_label_and_a_broken_one_its_error(
    page: Any, golden_dir: Path, broken_file: Path
) -> None:
    files = [golden_dir / f"{label}.jpg" for label in spec.LABELS]
    files.insert(3, broken_file)
    choose(page, *files)
    cards = finished_cards(page, len(files))
    for path, card in zip(files, cards, strict=True):
        if path == broken_file:
            assert card.get_attribute("data-state") == "error"
            # The API's message for the batch names images[3]; on the card that index would only confuse.
            assert error_text(card).startswith("This file is not an image the classifier can read. (")
            assert "images[" not in error_text(card)
        else:
            assert top_labels(card)[0] == path.stem, path.name
    assert page.find_element(By.ID, "status").text == f"Done: {len(spec.LABELS)} classified, 1 not."
    save_screenshot(page, "demo-page.png")


def test_tf_serving_down_is_explained_with_when_to_retry(
    browser: Any, gateways: Gateways, golden_dir: Path
) -> None:
    browser.get(f"{gateways.without_tf_serving.base_url}/")
    drop(browser, golden_dir / "bird.jpg")
    (card,) = finished_cards(browser, 1)
    assert error_text(card).startswith("The model server is not available right now. Try again in 1 second.")
    assert browser.execute_script("return window.__cspViolations") == []


def test_the_page_works_from_the_keyboard(page: Any, golden_dir: Path) -> None:
    # Keys go to whatever has focus, as a user's do (send_keys on a file input would upload a path instead).
    ActionChains(page).send_keys(Keys.TAB).perform()
    assert page.switch_to.active_element.get_attribute("id") == "files"
    outline = page.execute_script("return getComputedStyle(document.getElementById('drop')).outlineStyle")
    assert outline != "none", "the drop zone shows no focus ring while its file input has focus"
    choose(page, golden_dir / "hog.jpg")
    finished_cards(page, 1)
    ActionChains(page).send_keys(Keys.TAB).perform()
    assert page.switch_to.active_element.get_attribute("id") == "clear"
    ActionChains(page).send_keys(Keys.ENTER).perform()
    assert page.find_elements(By.CSS_SELECTOR, "#results .card") == []
    assert page.switch_to.active_element.get_attribute("id") == "files"


def test_the_page_fits_a_phone_screen_without_sideways_scrolling(page: Any, golden_dir: Path) -> None:
    page.set_window_size(*PHONE)
    choose(page, golden_dir / "civet_genet.jpg", golden_dir / "monkey_prosimian.jpg")
    cards = finished_cards(page, 2)
    assert [top_labels(card)[0] for card in cards] == ["civet_genet", "monkey_prosimian"]
    width = page.execute_script("return window.innerWidth")
    assert page.execute_script("return document.documentElement.scrollWidth") <= width
    assert all(card.rect["x"] >= 0 and card.rect["x"] + card.rect["width"] <= width for card in cards)
    font_px = page.execute_script("return parseFloat(getComputedStyle(document.body).fontSize)")
    assert font_px >= 16
    save_screenshot(page, "demo-page-phone.png")
