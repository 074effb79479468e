"""The report in a real browser: `salesbot report` on the demo store, opened from disk in
Debian's Chromium through Playwright (installed by `make test`; nothing is downloaded).
Every picture must have loaded (a broken data: URI decodes to nothing and has no width),
every section must be there, and the page must fetch nothing beyond itself."""

from __future__ import annotations

from pathlib import Path

import pytest
from playwright.async_api import Request, async_playwright

from bot.report_html import SECTIONS
from tests.e2e.test_playground_browser import CHROMIUM, CHROMIUM_ARGS
from tests.support.cli import run


@pytest.fixture
def report_page(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("SALESBOT_DB", str(tmp_path / "demo.db"))
    monkeypatch.delenv("SALESBOT_POLICY", raising=False)
    assert run("demo")[0] == 0
    code, _, stderr = run("report", "--out", str(tmp_path / "out"))
    assert (code, stderr) == (0, "")
    return tmp_path / "out" / "report.html"


async def test_every_image_of_the_report_loads_and_every_section_is_there(
    report_page: Path, tmp_path: Path
) -> None:
    requested: list[str] = []
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = await browser.new_page(viewport={"width": 1280, "height": 900})
            page.set_default_timeout(15_000)  # a limit on waiting, not a timing assertion

            def record(request: Request) -> None:
                requested.append(request.url)

            page.on("request", record)
            await page.goto(report_page.resolve().as_uri(), wait_until="load")
            images = await page.eval_on_selector_all(
                "img",
                "imgs => imgs.map(i => ({alt: i.alt, complete: i.complete,"
                " width: i.naturalWidth, height: i.naturalHeight,"
                " section: i.closest('section') ? i.closest('section').id : null}))",
            )
            sections = await page.eval_on_selector_all("section", "s => s.map(x => x.id)")
            headings = await page.eval_on_selector_all(
                "section > h2", "h => h.map(x => x.textContent)"
            )
            await page.screenshot(path=str(tmp_path / "report.png"), full_page=True)
        finally:
            await browser.close()

    assert sections == [section for section, _ in SECTIONS]
    assert headings == [title for _, title in SECTIONS]
    assert {image["section"] for image in images} >= {
        "metrics",
        "scores",
        "drivers",
        "objections",
        "narrative",
        "fairness",
        "flow",
    }
    for image in images:
        assert image["complete"], image["section"]
        assert image["width"] > 0, image["section"]
        assert image["height"] > 0, image["section"]
        assert len(image["alt"]) > 20, image["section"]
    # The page and its data: URIs only: no stylesheet, font or script from anywhere.
    assert all(url.startswith(("file:", "data:")) for url in requested), requested
