"""The playground as a desk, in a real browser (Playwright driving Debian's Chromium, as in
`test_playground_browser`): after a restart the page shows every thread newest first, the
unread badges count what you have not opened, the handoff pane lists the open tickets with
their age and holder; and every card fits the pane at 1400 and 390 px wide."""

from __future__ import annotations

import re
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from playwright.async_api import Locator, Page, async_playwright, expect

from tests.e2e.desk import MINUTE, Clock, seed_desk, serving
from tests.e2e.test_playground_browser import CHROMIUM, CHROMIUM_ARGS, say

HOUR = 60 * MINUTE


def wall_ms() -> int:
    return int(time.time() * 1000)


@asynccontextmanager
async def browsing(url: str, width: int = 1400) -> AsyncIterator[Page]:
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            context = await browser.new_context(viewport={"width": width, "height": 900})
            page = await context.new_page()
            page.set_default_timeout(15_000)  # a limit on waiting, not a timing assertion
            # The same limit for `expect` (5 s by default: a /help card once took longer to
            # appear while the 2-core machine ran four test suites at once).
            expect.set_options(timeout=15_000)
            await page.goto(url)
            await expect(page.get_by_test_id("connection")).to_have_attribute("data-state", "live")
            yield page
        finally:
            await browser.close()


def thread_link(page: Page, title: str) -> Locator:
    return page.get_by_test_id("thread-link").filter(has_text=title)


async def test_after_a_restart_the_page_is_a_desk_newest_first_with_unread_counts_and_open_tickets(
    tmp_path: Path,
) -> None:
    db = tmp_path / "salesbot.db"
    clock = Clock(wall_ms() - 2 * HOUR)  # the work was done two hours ago
    async with serving(db, clock) as client:
        await seed_desk(client, clock)

    live = Clock(wall_ms())
    async with serving(db, live) as client, browsing(str(client.make_url("/"))) as page:
        live.now_ms = wall_ms()
        links = page.get_by_test_id("thread-link")
        # Newest work on top: the person-please thread, the refund, then the deal.
        await expect(links).to_have_count(3)
        await expect(links.nth(0)).to_contain_text("I want to talk to a human please")
        await expect(links.nth(1)).to_contain_text("Can we cancel the contract early")
        await expect(links.nth(2)).to_contain_text("Hi, we are evaluating CRMs")
        # Unread: the bot's messages in threads not opened in this browser. The deal has
        # the greeting and two quote cards (what you typed yourself never counts).
        deal = thread_link(page, "Hi, we are evaluating CRMs")
        await expect(deal.get_by_test_id("unread-badge")).to_have_text("3 unread")
        # The person-please thread: the bot's handoff reply, and — its ticket unclaimed for two
        # hours, so the restarted sweeper's SLA ladder re-pinged it — the one notice that a
        # person will answer.
        await expect(
            thread_link(page, "I want to talk").get_by_test_id("unread-badge")
        ).to_have_text("2 unread")

        # The handoff pane: both tickets, newest first, with their age and holder.
        desk = page.get_by_test_id("open-tickets")
        await expect(desk.get_by_test_id("open-tickets-count")).to_have_text("2")
        open_tickets = desk.get_by_test_id("open-ticket")
        await expect(open_tickets.nth(0)).to_contain_text(
            "Handoff: the prospect asked for a person"
        )
        await expect(open_tickets.nth(0).get_by_test_id("ticket-holder")).to_have_text("Unclaimed")
        await expect(open_tickets.nth(0).get_by_test_id("ticket-age")).to_have_text(
            re.compile(r"^opened 1 h 5\d min ago$")
        )
        await expect(open_tickets.nth(1)).to_contain_text("billing, a refund or a cancellation")
        await expect(open_tickets.nth(1).get_by_test_id("ticket-holder")).to_have_text(
            "Claimed by You (rep)"
        )
        await expect(open_tickets.nth(1).get_by_test_id("ticket-age")).to_have_text(
            re.compile(r"^opened 1 h 5\d min ago$")
        )

        # Cards in their current state: the first quote superseded where it stood.
        await deal.click()
        await expect(deal.get_by_test_id("unread-badge")).to_have_count(0)
        quotes = page.get_by_test_id("thread-messages").get_by_test_id("card")
        await expect(quotes).to_have_count(2)
        await expect(quotes.first.get_by_test_id("card-status")).to_contain_text("Superseded by Q-")
        await expect(quotes.last.get_by_test_id("card-status")).to_have_text("Ready to accept")

        # Live: the rep hands the refund back to the bot from the pane while the deal is
        # open. The ticket leaves the open list, and the refund thread, where the bot
        # spoke, goes to the top with one more unread message.
        refund_card = (
            page.get_by_test_id("handoff-messages")
            .get_by_test_id("card")
            .filter(has_text="billing, a refund")
        )
        await refund_card.locator("[data-action=return_to_bot]").click()
        await expect(desk.get_by_test_id("open-tickets-count")).to_have_text("1")
        await expect(open_tickets).to_have_count(1)
        await expect(links.nth(0)).to_contain_text("Can we cancel the contract early")
        await expect(links.nth(0).get_by_test_id("unread-badge")).to_have_text("2 unread")

        # Read marks survive a reload (this browser's localStorage): the deal stays read.
        await page.reload()
        await expect(page.get_by_test_id("connection")).to_have_attribute("data-state", "live")
        await expect(links).to_have_count(3)
        await expect(
            thread_link(page, "I want to talk").get_by_test_id("unread-badge")
        ).to_have_text("2 unread")
        await expect(deal.get_by_test_id("unread-badge")).to_have_count(0)

        # The ticket's title opens its thread.
        await open_tickets.first.get_by_test_id("open-ticket-thread").click()
        await expect(page.get_by_test_id("thread-title")).to_have_text(
            "I want to talk to a human please"
        )


MEASURE = """card => {
  const box = card.getBoundingClientRect();
  const outside = [...card.querySelectorAll("*")]
    .filter(node => {
      const r = node.getBoundingClientRect();
      return r.width > 0 && (r.right > box.right + 1 || r.left < box.left - 1);
    })
    .map(node => node.tagName + " " + (node.textContent || "").slice(0, 30));
  // Text squeezed into a sliver: a value, a paragraph or the lines narrower than 40 %
  // of the card (the /help defect: one character per line).
  const squeezed = [...card.querySelectorAll("dd, .card-text, .lines")]
    .filter(node => node.getBoundingClientRect().width < 0.4 * box.width)
    .map(node => node.tagName + " " + (node.textContent || "").slice(0, 30));
  return {
    height: box.height,
    scroll: card.scrollWidth - card.clientWidth,
    outside,
    squeezed,
    page: document.documentElement.scrollWidth - window.innerWidth,
  };
}"""

TALLEST = {
    1400: {"help": 900, "quote": 700, "ticket": 900},
    390: {"help": 1300, "quote": 1200, "ticket": 1200},
}
"""The tallest each card may be: /help was 5,343 px at both widths before."""


async def test_help_a_quote_and_a_ticket_fit_the_pane_at_1400_and_390_px(tmp_path: Path) -> None:
    clock = Clock(wall_ms())
    async with (
        serving(tmp_path / "salesbot.db", clock) as client,
        browsing(str(client.make_url("/"))) as page,
    ):
        thread = page.get_by_test_id("thread-messages")
        await say(page, "Can we cancel the contract early and get a refund?", "prospect")
        await expect(thread).to_contain_text("colleague")
        await say(page, "/quote 10 pro 10%", "rep")
        await say(page, "/help", "rep")
        cards = {
            "help": thread.get_by_test_id("card").filter(has_text="What salesbot can do"),
            "quote": thread.get_by_test_id("card").filter(has_text="Quote Q-"),
            "ticket": page.get_by_test_id("handoff-messages").get_by_test_id("card"),
        }
        for card in cards.values():
            await expect(card).to_have_count(1)

        measured: dict[int, dict[str, Any]] = {}
        for width in (1400, 390):
            await page.set_viewport_size({"width": width, "height": 900})
            for kind, card in cards.items():
                await card.scroll_into_view_if_needed()
                measured.setdefault(width, {})[kind] = await card.evaluate(MEASURE)
            await page.screenshot(path=str(tmp_path / f"cards-{width}.png"), full_page=True)

        for width, kinds in measured.items():
            for kind, found in kinds.items():
                where = f"{kind} card at {width} px: {found}"
                assert found["height"] < TALLEST[width][kind], where
                assert found["scroll"] <= 0, where
                assert found["outside"] == [], where
                assert found["squeezed"] == [], where
                assert found["page"] <= 0, where  # the page never scrolls sideways
