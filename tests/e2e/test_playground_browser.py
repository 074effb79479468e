"""The playground in a real browser: Playwright driving Debian's Chromium (installed by
`make test`; nothing is downloaded) against the real server, runtime, outbox and store."""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp.test_utils import TestServer
from playwright.async_api import Page, Route, async_playwright, expect
from pydantic import SecretStr

from bot.policy_loader import load_policy
from bot.server import build_app
from bot.service import build_service
from bot.settings import Settings
from storage.sqlite import SqliteStore

# The bot's greeting, in whichever wording the conversation id's hash picks.
BOT_GREETING = re.compile(
    "thanks for reaching out|good to hear from you|thanks for getting in touch"
)

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",  # these machines run as root
    "--disable-dev-shm-usage",
    "--disable-gpu",
    "--disable-background-networking",  # the network is closed: no background fetches
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


TOKEN = "browser-test-playground-token"


@pytest.fixture
def settings() -> Settings:
    """The server's settings; a test parametrizes this to serve with a token."""
    return Settings()


@pytest.fixture
def entry() -> str:
    """What the browser opens first, after the server's URL."""
    return ""


@pytest.fixture
async def server(tmp_path: Path, settings: Settings) -> AsyncIterator[str]:
    store = await SqliteStore.open(tmp_path / "playground.db")
    service = build_service(
        settings, load_policy("default"), store, clock=lambda: int(time.time() * 1000)
    )
    try:
        async with TestServer(build_app(service), host="127.0.0.1") as test_server:
            yield str(test_server.make_url("/"))
    finally:
        await store.close()


@pytest.fixture
async def page(server: str, entry: str, tmp_path: Path) -> AsyncIterator[Page]:
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        context = await browser.new_context(viewport={"width": 1400, "height": 900})
        page = await context.new_page()
        page.set_default_timeout(15_000)  # a limit on waiting for the page, not a timing assertion
        await page.goto(server + entry)
        await expect(page.get_by_test_id("connection")).to_have_attribute("data-state", "live")
        try:
            yield page
        finally:
            await page.screenshot(path=str(tmp_path / "playground.png"), full_page=True)
            await browser.close()


async def say(page: Page, text: str, role: str) -> None:
    await page.get_by_test_id(f"role-{role}").check()
    await page.get_by_test_id("composer-input").fill(text)
    await page.get_by_test_id("composer-input").press("Enter")


async def test_a_conversation_quote_acceptance_and_a_ticket_in_the_browser(
    page: Page, tmp_path: Path
) -> None:
    thread = page.get_by_test_id("thread-messages")
    await say(page, "Hi, we are evaluating CRMs", "prospect")
    await expect(thread).to_contain_text(BOT_GREETING)

    await say(page, "/quote 10 pro 10%", "rep")
    quote = thread.get_by_test_id("card").filter(has_text="Quote Q-")
    await expect(quote.get_by_test_id("card-lines")).to_contain_text(
        "subtotal = 10 × 199.00 = 1,990.00 USD"
    )
    await expect(quote.get_by_test_id("card-lines")).to_contain_text(
        "total = 1,791.00 + 0.00 = 1,791.00 USD"
    )
    await page.get_by_test_id("role-prospect").check()  # the prospect accepts
    await quote.locator("[data-action=accept_quote]").click()
    await expect(quote.get_by_test_id("card-status")).to_contain_text("Accepted by")

    # A new conversation whose contract question needs a human: the ticket flow.
    await page.get_by_test_id("new-conversation").click()
    await say(page, "Can we cancel the contract early and get a refund?", "prospect")
    handoff = page.get_by_test_id("handoff-pane")
    ticket = handoff.get_by_test_id("card").filter(has_text="Handoff")
    await expect(ticket).to_contain_text("refund")
    await ticket.locator("[data-action=claim_ticket]").click()
    await expect(ticket.get_by_test_id("card-status")).to_contain_text("Claimed by")
    shot = tmp_path / "ticket.png"
    await page.screenshot(path=str(shot), full_page=True)
    assert shot.stat().st_size > 10_000


async def test_a_second_quote_turns_the_first_card_into_superseded_in_the_browser(
    page: Page,
) -> None:
    thread = page.get_by_test_id("thread-messages")
    await say(page, "Hi, we are evaluating CRMs", "prospect")
    await expect(thread).to_contain_text(BOT_GREETING)
    await say(page, "/quote 10 pro 10%", "rep")
    cards = thread.get_by_test_id("card").filter(has_text="Quote Q-")
    await expect(cards).to_have_count(1)
    first = await cards.first.get_by_role("heading").text_content()
    await say(page, "/quote 12 pro 10%", "rep")
    await expect(cards).to_have_count(2)
    # The first card was replaced where it stood (no third card), and says by which quote.
    old = cards.first
    await expect(old.get_by_test_id("card-status")).to_contain_text("Superseded by Q-")
    assert first is not None
    await expect(old).to_contain_text(first)
    await expect(old.locator("[data-action=accept_quote]")).to_have_count(0)
    await expect(cards.last.get_by_test_id("card-status")).to_contain_text("Ready to accept")


async def test_a_line_typed_while_the_one_before_is_being_sent_goes_out_after_it(
    page: Page,
) -> None:
    held: list[Route] = []
    first_held = asyncio.Event()

    async def hold_the_first(route: Route) -> None:
        if held:
            await route.continue_()
            return
        held.append(route)  # answered below, once the second line has been typed
        first_held.set()

    await page.route("**/playground/send", hold_the_first)
    composer = page.get_by_test_id("composer-input")
    await say(page, "Hi, we are evaluating CRMs", "prospect")
    await asyncio.wait_for(first_held.wait(), timeout=15)  # a limit on waiting, not a timing
    await say(page, "/quote 10 pro 10%", "rep")
    await expect(composer).to_have_value("")  # taken: nothing typed waits to be wiped
    await held[0].continue_()

    thread = page.get_by_test_id("thread-messages")
    await expect(thread.get_by_test_id("card").filter(has_text="Quote Q-")).to_have_count(1)
    text = await thread.text_content() or ""
    assert BOT_GREETING.search(text)
    # One conversation, in the order typed: the prospect's line, then the rep's quote.
    assert text.index("Hi, we are evaluating CRMs") < text.index("Quote Q-")
    await expect(composer).to_have_value("")


async def test_a_line_the_server_refuses_comes_back_to_the_composer_with_why(page: Page) -> None:
    await say(page, "/frobnicate 3", "rep")
    await expect(page.get_by_test_id("composer-error")).to_contain_text("Unknown command")
    await expect(page.get_by_test_id("composer-input")).to_have_value("/frobnicate 3")


async def test_metrics_answer_with_their_card_and_the_chart_drawn_inline(page: Page) -> None:
    await say(page, "Hi, we are evaluating CRMs", "prospect")
    thread = page.get_by_test_id("thread-messages")
    await expect(thread).to_contain_text(BOT_GREETING)

    await say(page, "/metrics", "rep")

    # The first chart of a process imports matplotlib (seconds on a busy machine): a limit on
    # waiting, not a timing assertion.
    chart = thread.get_by_test_id("message-image")
    await expect(chart).to_have_count(1, timeout=60_000)
    await expect(thread.get_by_test_id("card").filter(has_text="Sales metrics")).to_have_count(1)
    await expect(chart).to_have_attribute(
        "alt", re.compile("^Sales metrics chart: 0 won of 1 engaged")
    )
    # Decoded and drawn by the browser (a broken image has no natural size).
    await expect(chart).to_have_js_property("complete", True)
    assert await chart.evaluate("img => img.naturalWidth") == 1000


async def test_user_text_is_shown_as_text_never_as_markup(page: Page) -> None:
    await say(page, "<img src=x onerror=alert(1)> {0.__class__}", "prospect")
    thread = page.get_by_test_id("thread-messages")
    await expect(thread).to_contain_text("<img src=x onerror=alert(1)> {0.__class__}")
    assert await thread.locator("img").count() == 0


async def test_the_manager_approves_the_reps_discount_request_in_the_browser(page: Page) -> None:
    thread = page.get_by_test_id("thread-messages")
    await say(page, "Hi, we are evaluating CRMs", "prospect")
    await expect(thread).to_contain_text(BOT_GREETING)
    await say(page, "/quote 10 pro 20%", "rep")
    quote = thread.get_by_test_id("card").filter(has_text="Quote Q-").first
    await quote.locator("[data-action=request_approval]").click()

    approval = (
        page.get_by_test_id("handoff-pane")
        .get_by_test_id("card")
        .filter(has_text="Discount approval")
    )
    await expect(approval.get_by_test_id("card-status")).to_contain_text("Waiting for an approver")
    await page.get_by_test_id("role-manager").check()  # the second local approver
    await approval.locator("[data-action=approve_quote]").click()
    await expect(approval.get_by_test_id("card-status")).to_contain_text(
        "Approved by You (manager)"
    )
    await expect(
        thread.get_by_test_id("card").filter(has_text=re.compile(r"Quote Q-[0-9a-f]{10} v2"))
    ).to_contain_text("Ready to accept")
    await expect(page.get_by_test_id("composer-error")).to_have_text("")


@pytest.mark.parametrize("settings", [Settings(salesbot_playground_token=SecretStr(TOKEN))])
@pytest.mark.parametrize("entry", [f"?token={TOKEN}"])
async def test_with_a_token_the_browser_enters_it_once_and_the_address_drops_it(
    page: Page, server: str
) -> None:
    assert page.url == server  # moved on to `/`: the token is no longer in the address
    cookies = await page.context.cookies()
    assert [(c["name"], c["httpOnly"], c["sameSite"]) for c in cookies] == [
        ("salesbot_playground", True, "Strict")
    ]
    assert TOKEN not in cookies[0]["value"]
    await say(page, "Hello from behind the token", "prospect")
    await expect(page.get_by_test_id("thread-messages")).to_contain_text(BOT_GREETING)
    await page.reload()  # the cookie carries on: no token needed again
    await expect(page.get_by_test_id("connection")).to_have_attribute("data-state", "live")
    await expect(page.get_by_test_id("thread-list")).to_contain_text("Hello from behind")
