# SPDX-License-Identifier: GPL-3.0-or-later
"""A real browser for the pages' tests: Debian's headless Chromium through Selenium.

``make test`` installs ``chromium`` and ``chromium-driver`` when they are missing (as
root, with apt-get); without them these tests fail with that advice, never skip.
Signing in is Radicale's own login (HTTP Basic): the browser sends the user's
credentials with every request of the test, as it does once a person typed them into
the browser's login prompt.  Screenshots go to ``test-artifacts/`` (git ignores it).
"""

from __future__ import annotations

import atexit
import base64
import contextlib
import os
import re
import shutil
from pathlib import Path
from typing import Any, Iterator

import pytest

ARTIFACTS = Path(__file__).parent.parent / "test-artifacts"
DESKTOP = (1280, 900)
PHONE = (390, 844)


def _binary(names: tuple[str, ...]) -> str:
    for name in names:
        found = shutil.which(name) or (name if os.path.exists(name) else None)
        if found:
            return found
    pytest.fail("no %s here: install Debian's chromium and chromium-driver packages "
                "(apt-get install chromium chromium-driver; `make test` does it as root)"
                % names[0], pytrace=False)


class Browser:
    """One headless Chromium window, signed in as nobody or as one user."""

    def __init__(self) -> None:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
        options = webdriver.ChromeOptions()
        options.binary_location = _binary(("chromium", "/usr/bin/chromium",
                                           "chromium-browser"))
        for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage",
                     "--disable-gpu", "--no-first-run", "--disable-extensions",
                     "--window-size=%d,%d" % DESKTOP):
            options.add_argument(flag)
        options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
        service = Service(_binary(("chromedriver", "/usr/bin/chromedriver")))
        self.driver = webdriver.Chrome(service=service, options=options)
        self.driver.set_page_load_timeout(30)
        self.driver.execute_cdp_cmd("Network.enable", {})
        self.user = ""

    def sign_in(self, user: str, password: str) -> None:
        """From now on every request carries ``user``'s login (as after the browser's prompt)."""
        token = base64.b64encode(("%s:%s" % (user, password)).encode()).decode()
        self.driver.execute_cdp_cmd("Network.setExtraHTTPHeaders",
                                    {"headers": {"Authorization": "Basic " + token}})
        self.user = user

    def sign_out(self) -> None:
        self.driver.execute_cdp_cmd("Network.setExtraHTTPHeaders", {"headers": {}})
        self.user = ""

    def open(self, url: str) -> None:
        self.driver.get(url)

    def css(self, selector: str) -> Any:
        from selenium.webdriver.common.by import By
        return self.driver.find_element(By.CSS_SELECTOR, selector)

    def all(self, selector: str) -> list[Any]:
        from selenium.webdriver.common.by import By
        return self.driver.find_elements(By.CSS_SELECTOR, selector)

    def text(self) -> str:
        return self.css("body").text

    def wait_for(self, selector: str, timeout: float = 15) -> Any:
        from selenium.webdriver.common.by import By
        from selenium.webdriver.support import expected_conditions
        from selenium.webdriver.support.ui import WebDriverWait
        return WebDriverWait(self.driver, timeout).until(
            expected_conditions.visibility_of_element_located((By.CSS_SELECTOR, selector)))

    def wait_for_text(self, text: str, timeout: float = 15) -> None:
        from selenium.common.exceptions import WebDriverException
        from selenium.webdriver.support.ui import WebDriverWait
        # the page may be between two documents (a form just sent): look again then.  Not
        # only a stale or missing body: Chromium may also answer "Node with given id does
        # not belong to the document" for the body of the document being replaced
        WebDriverWait(self.driver, timeout, ignored_exceptions=(WebDriverException,)).until(
            lambda d: text in self.text())

    def press_and_wait(self, press: Any, accept_confirm: bool = False) -> None:
        """Press a button of a form the page script sends; wait for the page that follows.

        The old page is marked, and the wait is for a loaded page without the mark (the
        staleness of an element of the old page can race Chromium's unloading of it)."""
        from selenium.common.exceptions import WebDriverException
        from selenium.webdriver.support import expected_conditions
        from selenium.webdriver.support.ui import WebDriverWait
        self.driver.execute_script("window.mecardOldPage = true")
        press.click()
        if accept_confirm:
            WebDriverWait(self.driver, 10).until(expected_conditions.alert_is_present())
            self.driver.switch_to.alert.accept()
        WebDriverWait(self.driver, 15, ignored_exceptions=(WebDriverException,)).until(
            lambda d: d.execute_script(
                "return !window.mecardOldPage && document.readyState === 'complete'"))
        self.wait_for("nav.mecard-nav")

    def console_errors(self) -> list[str]:
        """What the page's console said at SEVERE level (a CSP refusal, a script error)."""
        return [e["message"] for e in self.driver.get_log("browser") if e["level"] == "SEVERE"]

    def screenshot(self, name: str) -> list[Path]:
        """The page at desktop and at phone width, as PNGs in test-artifacts/."""
        ARTIFACTS.mkdir(exist_ok=True)
        safe = re.sub(r"[^A-Za-z0-9_.-]", "_", name)
        written = []
        for label, (width, height) in (("desktop", DESKTOP), ("phone", PHONE)):
            self.driver.set_window_size(width, height)
            path = ARTIFACTS / ("%s-%s.png" % (safe, label))
            self.driver.save_screenshot(str(path))
            written.append(path)
        self.driver.set_window_size(*DESKTOP)
        return written

    def quit(self) -> None:
        self.driver.quit()


    def reset(self) -> bool:
        """Back to a blank window that knows nothing of the last test: no dialog, no
        frame, nobody signed in, no cookie or cache, desktop size, the console read.
        False when the browser no longer answers (then a new one is started)."""
        from selenium.common.exceptions import NoAlertPresentException, WebDriverException
        try:
            try:
                self.driver.switch_to.alert.dismiss()
            except NoAlertPresentException:
                pass
            self.driver.switch_to.default_content()
            for handle in self.driver.window_handles[1:]:
                self.driver.switch_to.window(handle)
                self.driver.close()
            self.driver.switch_to.window(self.driver.window_handles[0])
            self.driver.get("about:blank")
            self.sign_out()
            self.driver.execute_cdp_cmd("Network.clearBrowserCookies", {})
            self.driver.execute_cdp_cmd("Network.clearBrowserCache", {})
            self.driver.set_window_size(*DESKTOP)
            self.driver.get_log("browser")
            return True
        except WebDriverException:
            return False


    def close_connections(self) -> bool:
        """Close the connections Chromium keeps open to the servers it visited (its
        "flush socket pools"): a server waits for its open connections when it stops."""
        from selenium.common.exceptions import WebDriverException
        try:
            self.driver.get("chrome://net-internals/#sockets")
            self.wait_for("#sockets-view-flush-button").click()
            self.driver.get("about:blank")
            return True
        except WebDriverException:
            return False


#: this test process's Chromium, started by the first test that needs one
_kept: Browser | None = None


def _quit_kept() -> None:
    if _kept is not None:
        _kept.quit()


@pytest.fixture
def browser() -> Iterator[Browser]:
    """A headless Chromium in a blank state (import this fixture into the test module).

    One Chromium per test process, reset between tests (:meth:`Browser.reset`): starting
    one costs about a CPU-second, and ~40 tests use one."""
    global _kept
    if _kept is None or not _kept.reset():
        if _kept is not None:
            with contextlib.suppress(Exception):
                _kept.quit()
        else:
            atexit.register(_quit_kept)
        _kept = Browser()
    yield _kept
    # leave no connection open: Radicale waits for its open connections when it stops
    if not (_kept.reset() and _kept.close_connections()):
        with contextlib.suppress(Exception):
            _kept.quit()
        _kept = None
