"""`salesbot chat`: a whole conversation in the terminal, on the real runtime and outbox.

Each stdin line is a message from the current speaker (the prospect, until `/as rep` or
`/as manager`). A plain line from the rep or the manager is said in the prospect's
conversation, as a rep writes in a shared thread: the prospect sees it (the transcript
shows it as `rep> …` / `manager> …`) and the bot records it. Lines starting with `/` are
commands from the one command list (`/quote …`, `/audit …`, `/metrics`, `/lead …`,
`/help`), run by the rep or the manager speaking (by the rep while the prospect speaks):
the only people at this terminal, trusted as auditors and approvers. They are two
approvers with different ids, so the rep's discount request can be approved by the manager
(four eyes) from one keyboard; the manager also has a manager's rights (a routed ticket
still its owner's alone may be claimed by them). `/click N` presses button N of the last card as the current
speaker; `/quit` leaves. It reads line by line, so it works from a pipe and without a TTY.
A line the domain cannot take (over 40,000 characters, bytes that are not text) gets a
private notice and the session goes on.

What it prints follows the transcript grammar in `adapters/terminal/render.py` (text) or
`adapters/terminal/transcript.py` (`--json`: one JSON object per output); an input that
gets no answer prints nothing.
"""

from __future__ import annotations

import random
import unicodedata
from collections.abc import Callable, Iterable

from pydantic import ValidationError

from adapters.terminal.ids import SCHEME
from adapters.terminal.render import render_output
from adapters.terminal.sender import TerminalSender
from adapters.terminal.transcript import Author, Output, notice, output_json
from bot.chart_files import ChartFolder
from bot.crm_outbox import crm_items
from bot.outbox_worker import OutboxWorker
from bot.queries import query_answerer
from bot.runtime import Runtime
from bot.surfaces import terminal
from bot.surfaces.base import Dispatch
from domain.cards import Card, CardField
from domain.commands import COMMANDS, CommandSpec, command_spec
from domain.decide import new_conversation
from domain.errors import CommandError
from domain.inbound import Actor, ButtonClicked, CommandInvoked, Inbound, MessagePosted
from domain.policy import Policy
from domain.state import ConversationState
from storage.ports import Store

LOCAL_REP = Actor(id="local-rep", name="You (rep)", role="rep", approver=True, auditor=True)
LOCAL_MANAGER = Actor(
    id="local-manager",
    name="You (manager)",
    role="rep",
    approver=True,
    auditor=True,
    manager=True,
)
LOCAL_PROSPECT = Actor(id="local-prospect", name="", role="prospect")
SPEAKERS: dict[str, Actor] = {
    "prospect": LOCAL_PROSPECT,
    "rep": LOCAL_REP,
    "manager": LOCAL_MANAGER,
}
PERSON_AUTHORS: dict[str, Author] = {LOCAL_REP.id: "rep", LOCAL_MANAGER.id: "manager"}
"""The label of a local person's line in the conversation (`rep> …`, `manager> …`)."""
SPEAKER_USAGE = "/as prospect | /as rep | /as manager"


def chat_help_card() -> Card:
    """The terminal's own commands, then the one command list."""
    own = (
        CardField(
            label=SPEAKER_USAGE,
            value="switch who is speaking and clicking. A plain line from the rep or the "
            "manager is said in the conversation: the prospect sees it. Rep and manager are "
            "two approvers and auditors: the manager approves the rep's discount requests "
            "(four eyes); the prospect's commands run as the rep",
        ),
        CardField(
            label="/click N [words]",
            value="press button N of the last card with buttons, as the speaker; words after "
            "the number fill the card's text box (a lost deal's note)",
        ),
        CardField(label="/quit", value="leave (end of input works too)"),
    )
    listed = tuple(CardField(label=f"/{spec.usage}", value=spec.summary) for spec in COMMANDS)
    return Card(kind="help", title="salesbot chat", fields=own + listed)


class ChatSession:
    def __init__(
        self,
        store: Store,
        policy: Policy,
        write: Callable[[str], None],
        *,
        conversation_id: str,
        session: str,
        clock: Callable[[], int],
        outbox_identity: str | None = None,
        json_lines: bool = False,
    ) -> None:
        """`write` prints one line; `json_lines` prints each output as one JSON object
        instead of transcript text. `outbox_identity`: this process's boot slot on the
        database (`bot.boot_slot`)."""
        self._write = write
        self._json_lines = json_lines
        self._policy = policy
        self._conversation_id = conversation_id
        self._session = session
        self._speaker = LOCAL_PROSPECT
        self._count = 0
        self._sender = TerminalSender(self._show, ChartFolder().save)
        surface = terminal.surface(self._sender)
        assert surface.router is not None
        self._runtime = Runtime(
            store,
            policy,
            surface.router,
            clock=clock,
            answer_query=query_answerer(policy),
            effects=crm_items,  # parked on the CRM's channel for the server to send
        )
        dispatch = Dispatch([surface])
        self._worker = OutboxWorker(
            store,
            dispatch.sender_for,
            clock=clock,
            sleep=_no_wait,
            rng=random.Random(0),
            pacing_ms=dispatch.pacing_ms,
            on_dead_letter=self._runtime.report_dead_letter,
            identity=outbox_identity,
            # Only the terminal's own items: on a live server's database the server's
            # replies are the server's to send, and the terminal's are never the server's.
            prefixes=dispatch.prefixes,
        )
        self._store = store

    async def start(self) -> None:
        await self._runtime.start()
        await self._tell(
            f"salesbot chat, conversation {self._conversation_id}: you speak as the prospect "
            "(/as rep or /as manager to switch); /help for commands."
        )

    async def feed(self, line: str) -> bool:
        """Handle one typed line; False when the session should end."""
        text = line.rstrip("\n")
        if not text.strip():
            return True
        if text.strip() == "/quit":
            return False
        if any(unicodedata.category(char) == "Cs" for char in text):
            await self._tell("Not sent: the line is not valid text (bytes that are not UTF-8).")
            return True
        try:
            inbound = self._inbound(text.strip())
        except ValidationError as exc:
            await self._tell(f"Not sent: {_reason(exc)}")
            return True
        if isinstance(inbound, Output):
            await self._show(inbound, self._conversation_id)
            return True
        await self._runtime.handle(inbound)
        await self._runtime.settled()  # audits and metrics are answered after the commit
        author = PERSON_AUTHORS.get(inbound.actor.id)
        if isinstance(inbound, MessagePosted) and author is not None:
            # The person's own words, as the prospect reads them in the conversation.
            said = Output(audience="conversation", author=author, text=inbound.text)
            await self._show(said, inbound.conversation_id)
        await self._flush()
        return True

    async def run(self, lines: Iterable[str]) -> None:
        await self.start()
        for line in lines:
            if not await self.feed(line):
                break

    async def close(self) -> None:
        """Give back whatever the outbox still holds, for the next session."""
        await self._worker.release()

    async def _show(self, output: Output, conversation_id: str) -> None:
        """Print one output: transcript lines, or one JSON object with the state of its
        conversation now (after the input that caused it was decided)."""
        if not self._json_lines:
            for line in render_output(output):
                self._write(line)
            return
        self._write(output_json(output, await self._state_of(conversation_id)))

    async def _tell(self, text: str, card: Card | None = None) -> None:
        await self._show(notice(text, card), self._conversation_id)

    async def _state_of(self, conversation_id: str) -> ConversationState:
        state = await self._runtime.conversation(conversation_id)
        return state if state is not None else new_conversation(conversation_id, self._policy)

    def _next_id(self) -> str:
        self._count += 1
        return SCHEME.delivery_id(f"{self._session}:{self._count}")

    def _inbound(self, text: str) -> Inbound | Output:
        """The inbound a typed line makes, or the notice that answers it at the terminal."""
        delivery_id, conversation_id = self._next_id(), self._conversation_id
        if not text.startswith("/"):
            return MessagePosted(
                delivery_id=delivery_id,
                conversation_id=conversation_id,
                text=text,
                actor=self._speaker,
                # The rep and the manager speak in the prospect's conversation (a shared
                # thread), not to the bot: their commands start with "/".
                addressed=self._speaker.role != "rep",
            )
        head, _, rest = text[1:].partition(" ")
        head = head.lower()
        if head == "as":
            return self._switch(rest.strip().lower())
        if head == "click":
            return self._click(rest.strip(), delivery_id)
        if head == "help":
            return notice(
                f"You speak as the {self._speaker_name}. Type a message, or a command:",
                chat_help_card(),
            )
        try:
            spec: CommandSpec = command_spec(head)
        except CommandError as exc:
            return notice(str(exc))
        return CommandInvoked(
            delivery_id=delivery_id,
            conversation_id=conversation_id,
            command=spec.name,
            args=rest.strip(),
            actor=self._speaker if self._speaker.role == "rep" else LOCAL_REP,
        )

    @property
    def _speaker_name(self) -> str:
        return next(name for name, actor in SPEAKERS.items() if actor == self._speaker)

    def _switch(self, role: str) -> Output:
        speaker = SPEAKERS.get(role)
        if speaker is None:
            return notice(f"Usage: {SPEAKER_USAGE}")
        self._speaker = speaker
        if speaker.role == "rep":
            return notice(
                f"You speak as the {role} now: a plain line is said in the conversation "
                "(the prospect sees it); commands run as you."
            )
        return notice(f"You speak as the {role} now.")

    def _click(self, args: str, delivery_id: str) -> Inbound | Output:
        """`/click N`, or `/click N your words`: the words are what the card's text box
        would hold (a lost deal's note), sent with button N."""
        buttons = self._sender.last_buttons
        if not buttons:
            return notice("There is no card with buttons to click yet.")
        number, _, note = args.partition(" ")
        if not number.isdigit() or not 1 <= int(number) <= len(buttons):
            return notice(
                f"Usage: /click N, with N from 1 to {len(buttons)} (the last card's buttons)"
            )
        button = buttons[int(number) - 1]
        return ButtonClicked(
            delivery_id=delivery_id,
            conversation_id=self._conversation_id,
            action=button.action,
            target=button.target,
            actor=self._speaker,
            note=note.strip(),
        )

    async def _flush(self) -> None:
        for _ in range(100):  # bounded: each round settles at least one item or stops
            if await self._store.pending_count() == 0 or await self._worker.drain_once() == 0:
                return


def _reason(exc: ValidationError) -> str:
    """One line naming what the domain refused, never the text itself."""
    error = exc.errors(include_url=False)[0]
    field = ".".join(str(part) for part in error["loc"]) or "line"
    return f"{field}: {error['msg']}"


async def _no_wait(_seconds: float) -> None:
    """The terminal has no rate limit: pacing never waits."""
