"""The dashboard in real headless Chromium (Debian's, driven by Playwright) over a store with a
finished sweep: every page renders its charts and tables with the store's numbers, sorting and
filtering work, and screenshots land in test-output/screenshots/."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import expect, sync_playwright
from service_fixtures import LRS, WIDTHS, build_store, serving

import hpo
from db.models import TrialState

CHROMIUM = os.environ.get("HPO_TEST_CHROMIUM", "/usr/bin/chromium")
SHOTS = Path(__file__).resolve().parent.parent / "test-output" / "screenshots"
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


@pytest.fixture(scope="module")
def browser_page(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[object, str, str]]:
    if not Path(CHROMIUM).exists() and not shutil.which("chromium"):
        message = f"no Chromium at {CHROMIUM} (apt-get install chromium)"
        if IN_CI:
            pytest.fail(f"CI=true and {message}", pytrace=False)
        pytest.skip(message)
    url = build_store(tmp_path_factory.mktemp("dashboard") / "dashboard.db")
    SHOTS.mkdir(parents=True, exist_ok=True)
    with serving(url) as base, sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        yield page, base, url
        browser.close()


def _shot(page, name: str) -> None:  # type: ignore[no-untyped-def]
    page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)


def test_studies_page_lists_every_study_with_its_numbers(browser_page) -> None:  # type: ignore[no-untyped-def]
    page, base, url = browser_page
    page.goto(f"{base}/")
    rows = page.locator("#studies tbody tr")
    assert rows.count() == 4
    first = rows.nth(0)
    assert first.locator("td").nth(0).inner_text().startswith("branin-dehb")
    best = min(t.value for t in hpo.load_study("branin-dehb", url).trials)
    assert float(first.locator("td.best").inner_text()) == pytest.approx(best, rel=1e-5)
    assert "completed 60" in first.inner_text()
    assert page.locator("a[href='/sweeps/widths']").count() == 1
    _shot(page, "studies")


def test_study_page_has_its_charts_and_a_sortable_filterable_table(browser_page) -> None:  # type: ignore[no-untyped-def]
    page, base, url = browser_page
    study = hpo.load_study("branin-dehb", url)
    page.goto(f"{base}/studies/branin-dehb")
    for chart in ("best", "curves", "rungs", "importance", "scatter", "parallel"):
        assert page.locator(f"#chart-{chart} svg").count() == 1, chart
    assert "fANOVA" in page.locator("#chart-importance").inner_text()
    assert page.locator("#trials tbody tr").count() == 50  # first page of 60
    assert "page 1 of 2 (60 trials)" in page.inner_text(".pager")
    page.click("#trials th a:text('value')")  # sort by value, ascending
    page.wait_for_url("**sort=value**")
    values = [float(v) for v in page.locator("#trials td.value").all_inner_texts()]
    assert values == sorted(values) and values[0] == pytest.approx(min(t.value for t in study.trials), rel=1e-5)
    page.click(".filters a:text('pruned')")
    page.wait_for_url("**state=pruned**")
    expect(page.locator("#trials tbody")).to_have_text("no trials match")
    page.click(".filters a:text('completed')")
    page.wait_for_url("**state=completed**")
    expect(page.locator("#trials tbody tr[data-state=completed]")).to_have_count(50)
    page.goto(f"{base}/studies/branin-dehb")
    top = max(t.budget for t in study.trials)
    best = min(t.value for t in study.trials if t.budget == top)
    assert float(page.locator("#best-value").inner_text()) == pytest.approx(best, rel=1e-5)
    _shot(page, "study")


def test_study_page_updates_live_while_trials_finish(browser_page) -> None:  # type: ignore[no-untyped-def]
    page, base, url = browser_page
    page.goto(f"{base}/studies/w64")
    assert "completed 9" in page.inner_text("main")
    study = hpo.load_study("w64", url)
    study.enqueue({"learning_rate": 0.05})
    trial = study.claim("live")
    study.complete(trial, 9.9)  # worse than every other: the sweep page's optima stay put
    page.wait_for_function("document.querySelector('main').innerText.includes('completed 10')", timeout=20_000)


def test_sweep_page_draws_loss_against_learning_rate_by_width(browser_page) -> None:  # type: ignore[no-untyped-def]
    page, base, _ = browser_page
    page.goto(f"{base}/sweeps/widths")
    assert page.locator("#chart-mutransfer svg").count() == 1
    rows = page.locator("#sweep-optima tbody tr")
    assert rows.count() == len(WIDTHS)
    best_lr = min(LRS, key=lambda lr: abs(lr - 0.02))  # the fixture's bowl has its bottom at 0.02
    assert [float(x) for x in page.locator("#sweep-optima td.opt-lr").all_inner_texts()] == pytest.approx([best_lr] * 3, rel=1e-5)
    _shot(page, "sweep")


def test_scaling_page_shows_fits_and_recommends_from_the_form(browser_page) -> None:  # type: ignore[no-untyped-def]
    page, base, _ = browser_page
    page.goto(f"{base}/scaling")
    assert page.locator("#fit-grid svg").count() == 1 and "held-out error" in page.inner_text("#fit-grid")
    page.fill("input[name=params]", "1e9")
    page.fill("input[name=tokens]", "1e11")
    page.click("button:text('Recommend')")
    page.wait_for_url("**tokens=1e11**")
    page.wait_for_selector("#recommendations")
    rows = page.locator("#recommendations tbody tr")
    assert rows.count() == 3
    api = httpx.get(f"{base}/api/recommend", params={"params": 1e9, "tokens": 1e11}).json()
    shown = [float(x) for x in page.locator("#recommendations td.lr").all_inner_texts()]
    assert shown == pytest.approx([entry["learning_rate"] for entry in api], rel=1e-2)
    assert [int(x.replace(",", "")) for x in page.locator("#recommendations td.seqs").all_inner_texts()] == [
        entry["batch_size_sequences"] for entry in api
    ]
    assert "extrapolation" in page.inner_text("main")
    _shot(page, "scaling")
    page.fill("input[name=params]", "-3")
    page.click("button:text('Recommend')")
    expect(page.locator("#recommend-error")).to_contain_text("must be positive numbers")


def test_unknown_pages_are_a_404_page_not_a_crash(browser_page) -> None:  # type: ignore[no-untyped-def]
    page, base, _ = browser_page
    response = page.goto(f"{base}/studies/no-such-study")
    assert response.status == 404 and "unknown study 'no-such-study'" in page.inner_text("main")
    assert page.goto(f"{base}/sweeps/none").status == 404
    assert hpo.load_study("w128", browser_page[2]).counts()[TrialState.COMPLETED] == 9
