"""The dashboard in a real headless Chromium: `streamlit run` on a free port, pick a user, see ten recommendations."""

from pathlib import Path
from urllib.parse import parse_qs, urlparse

import pytest

from tests.dashboard.browser import (
    chromium,
    missing_browser,
    running_dashboard,
    select_user,
    wait_for_user_view,
)
from tests.dashboard.lakes import TinyLake

pytestmark = pytest.mark.skipif(missing_browser() is not None, reason=missing_browser() or "")


def test_a_person_picks_a_user_and_sees_ten_recommendations(folder_lake: TinyLake, tmp_path: Path):
    with running_dashboard(folder_lake.location, tmp_path / "streamlit.log") as url, chromium() as browser:
        browser.get(url)
        wait_for_user_view(browser, folder_lake.users[0])  # the first user until someone picks another

        select_user(browser, 3)
        rows = wait_for_user_view(browser, 3)
        assert len(rows) == 10
        assert folder_lake.movies[folder_lake.recommended[3][0]]["title"] in rows[0].text
        assert parse_qs(urlparse(browser.current_url).query)["user"] == ["3"]
        browser.save_screenshot(str(tmp_path / "dashboard.png"))

        browser.get(browser.current_url)  # the shared link opens the same view
        assert len(wait_for_user_view(browser, 3)) == 10
    assert (tmp_path / "dashboard.png").stat().st_size > 0
