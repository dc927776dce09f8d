"""First paint of a user's dashboard view in headless Chromium, on the lake `make demo` built.

    .venv/bin/python -m bench.dashboard_first_paint [--users 20] [--screenshot docs/dashboard.png]

Reads the lake from MOVIEREC_LAKE or $MOVIEREC_HOME/lake (default ./.movierec/lake). "First paint" is
the time from asking the browser for `/?user=N` until that user's ten recommendation rows are in the page.
With --screenshot, it then saves a whole view of a user the model scored (docs/dashboard.md's picture).
"""

import argparse
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

from movierec_dagster.dashboard.data import Lake, LakeError
from movierec_dagster.tables import lake_location
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

from tests.dashboard.browser import chromium, missing_browser, running_dashboard, select_user, wait_for_user_view


def _paint(browser, url: str, user: int) -> float:
    started = time.perf_counter()
    browser.get(f"{url}/?user={user}")
    wait_for_user_view(browser, user)
    return time.perf_counter() - started


def save_view(browser, url: str, user: int, path: Path) -> None:
    """A screenshot of `user`'s whole view once both charts are drawn."""
    browser.set_window_size(1440, 1700)
    browser.get(f"{url}/?user={user}")
    wait_for_user_view(browser, user)
    WebDriverWait(browser, 30).until(
        lambda d: len(d.find_elements(By.CSS_SELECTOR, '[data-testid="stVegaLiteChart"] svg')) >= 2
    )
    time.sleep(1)  # let the charts' entry transitions finish
    path.parent.mkdir(parents=True, exist_ok=True)
    browser.save_screenshot(str(path))
    print(f"screenshot of user {user} in {path}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=20, help="users to open after the first (default 20)")
    parser.add_argument("--screenshot", type=Path, help="save a picture of a model-scored user's view here")
    args = parser.parse_args()
    if reason := missing_browser():
        sys.exit(f"Cannot benchmark in a browser: {reason}.")
    location = lake_location()
    try:
        lake = Lake(location)
        lake.check_exists()
        date = lake.newest_recommendation_date()
        users = lake.recommended_users(date)
    except LakeError as problem:
        sys.exit(f"{problem} Run `make demo` first.")
    ratings = ", ".join(lake.own_ratings_tables())
    print(f"lake {location}: {len(users):,} users with recommendations on {date}; own ratings from {ratings}")
    sample = random.Random(7).sample(users, min(len(users), args.users + 2))

    with tempfile.TemporaryDirectory(prefix="movierec-bench-") as scratch:
        started = time.perf_counter()
        with running_dashboard(location, Path(scratch) / "streamlit.log") as url:
            print(f"streamlit run answers after        {time.perf_counter() - started:6.2f} s")
            with chromium() as browser:
                browser.get(f"{url}/_stcore/health")  # the browser is up before the clock starts
                cold = _paint(browser, url, sample[0])
                print(f"first paint, first visit (cold)    {cold:6.2f} s   user {sample[0]}")
                warm = [_paint(browser, url, user) for user in sample[2:]]
                print(
                    f"first paint, page load, {len(warm)} users   median {statistics.median(warm):.2f} s"
                    f"   max {max(warm):.2f} s"
                )
                started = time.perf_counter()
                select_user(browser, sample[1])
                wait_for_user_view(browser, sample[1])
                print(f"switch user in the selector        {time.perf_counter() - started:6.2f} s")
                if args.screenshot:
                    scored = next((u for u in sample if not lake.recommendations(date, u).cold_start), sample[0])
                    save_view(browser, url, scored, args.screenshot)


if __name__ == "__main__":
    main()
