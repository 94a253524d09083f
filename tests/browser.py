"""Debian's headless Chromium under Playwright, as the console's tests and benchmark drive it."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # a dev dependency: importing this module must not need it
    from playwright.sync_api import Browser, Page, Playwright

CHROMIUM = Path("/usr/bin/chromium")
# what the machine's closed network needs: no background calls home, no sandbox as root, no GPU
FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage"]


def launch(playwright: Playwright) -> Browser:
    return playwright.chromium.launch(executable_path=str(CHROMIUM), args=FLAGS)


def use_key(page: Page, key: str, expect: str) -> None:
    """Type an API key into the console's header and wait until the page names its role (``expect``)."""
    page.fill("#api-key", key)
    page.press("#api-key", "Enter")
    page.wait_for_function("([e]) => document.querySelector('#key-state').textContent.includes(e)", arg=[expect])
