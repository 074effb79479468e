"""`python -m bot.report_screenshot [--out docs/report.png]`: the screenshot kept in docs/.

Seeds a throw-away store with `salesbot demo` (five realistic leads), writes its report
(`salesbot report`), opens it in Debian's Chromium through Playwright (a dev dependency;
`make test` installs the browser) and saves a full-page screenshot. Run by hand when the
report's look changes; the test suite never writes into docs/. The page is long: the PNG
is reduced to 256 colours (Pillow, installed with matplotlib) to keep the repository light.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
from pathlib import Path

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu", "--no-first-run"]


async def screenshot(page_path: Path, target: Path, width: int = 1280) -> None:
    """A full-page PNG of the report at `page_path` (a local file; nothing else loads)."""
    from playwright.async_api import async_playwright

    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = await browser.new_page(viewport={"width": width, "height": 900})
            await page.goto(page_path.resolve().as_uri())
            png = await page.screenshot(full_page=True)
        finally:
            await browser.close()
    _save_small(png, target)


def _save_small(png: bytes, target: Path) -> None:
    import io

    from PIL import Image

    with Image.open(io.BytesIO(png)) as image:
        reduced = image.convert("RGB").quantize(
            colors=256, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE
        )
        reduced.save(target, optimize=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bot.report_screenshot")
    parser.add_argument("--out", default="docs/report.png", help="where to save the PNG")
    args = parser.parse_args(argv)
    from bot.cli import main as salesbot

    with tempfile.TemporaryDirectory(prefix="salesbot-report-") as work:
        os.environ["SALESBOT_DB"] = str(Path(work) / "demo.db")
        os.environ.pop("SALESBOT_POLICY", None)
        for command in (["demo"], ["report", "--out", work]):
            code = salesbot(command)
            if code != 0:
                return code
        asyncio.run(screenshot(Path(work) / "report.html", Path(args.out)))
    sys.stdout.write(f"wrote {args.out}\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
