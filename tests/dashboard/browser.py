"""Run the dashboard with `streamlit run` on a free port and drive Debian's Chromium with Selenium (no downloads)."""

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support.ui import WebDriverWait

APP = Path(__file__).resolve().parents[2] / "movierec_dagster" / "dashboard" / "app.py"
CHROMIUM = shutil.which("chromium")
CHROMEDRIVER = shutil.which("chromedriver")
# The network is closed on the build machines: nothing may reach out (no GPU, no QUIC, no updates, no sync).
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
RECOMMENDATION_ROWS = ".st-key-recommendations tbody tr"


def missing_browser() -> str | None:
    """Why the browser cannot run here, or None."""
    if not CHROMIUM or not CHROMEDRIVER:
        return "Debian's chromium and chromium-driver are not installed (apt-get install -y chromium chromium-driver)"
    return None


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@contextmanager
def running_dashboard(lake: Path | str, log: Path, startup_timeout: float = 60.0) -> Iterator[str]:
    """`streamlit run` the app on a free localhost port, reading `lake`; yields its URL once it answers."""
    port = free_port()
    command = [
        sys.executable, "-m", "streamlit", "run", str(APP),
        "--server.port", str(port),
        "--server.address", "127.0.0.1",
        "--server.headless", "true",
        "--server.fileWatcherType", "none",
        "--browser.gatherUsageStats", "false",
    ]  # fmt: skip
    environ = {**os.environ, "MOVIEREC_LAKE": str(lake)}
    with open(log, "wb") as output:
        process = subprocess.Popen(command, env=environ, stdout=output, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + startup_timeout
        while not _healthy(url):
            if process.poll() is not None:
                raise RuntimeError(f"streamlit exited with {process.returncode}:\n{log.read_text()}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"streamlit did not answer on {url} in {startup_timeout:.0f} s:\n{log.read_text()}")
            time.sleep(0.2)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/_stcore/health", timeout=1) as response:
            return response.status == 200
    except OSError:
        return False


@contextmanager
def chromium(width: int = 1600, height: int = 1200) -> Iterator[webdriver.Chrome]:
    """Headless Chromium with a new empty profile, driven through Debian's chromedriver."""
    with tempfile.TemporaryDirectory(prefix="movierec-chromium-") as profile:
        options = webdriver.ChromeOptions()
        options.binary_location = CHROMIUM
        for flag in CHROMIUM_FLAGS:
            options.add_argument(flag)
        options.add_argument(f"--user-data-dir={profile}")
        options.add_argument(f"--window-size={width},{height}")
        driver = webdriver.Chrome(options=options, service=Service(executable_path=CHROMEDRIVER))
        try:
            yield driver
        finally:
            driver.quit()


def select_user(driver: webdriver.Chrome, user_id: int, timeout: float = 30.0) -> None:
    """Type `user_id` into the user selector and confirm it, as a person would."""
    box = WebDriverWait(driver, timeout).until(
        lambda d: d.find_element(By.CSS_SELECTOR, '[data-testid="stSelectbox"] input')
    )
    box.click()
    box.send_keys(str(user_id))
    box.send_keys(Keys.ENTER)


def wait_for_user_view(driver: webdriver.Chrome, user_id: int, timeout: float = 30.0) -> list:
    """Wait until the page shows `user_id`'s recommendation table; returns its rows."""

    def shown(d: webdriver.Chrome) -> list | bool:
        headings = d.find_elements(By.XPATH, f"//h3[contains(., 'for user {user_id}')]")
        rows = d.find_elements(By.CSS_SELECTOR, RECOMMENDATION_ROWS)
        return rows if headings and rows else False

    return WebDriverWait(driver, timeout, poll_frequency=0.02).until(shown)
