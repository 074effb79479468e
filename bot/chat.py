"""`salesbot chat`: a whole conversation in the terminal, on the real runtime and outbox.

Each stdin line is a message from the current speaker (the prospect, until `/as rep` or
`/as manager`). Lines starting with `/` are commands from the one command list (`/quote …`,
`/audit …`, `/metrics`, `/lead …`, `/help`), run by the rep or the manager speaking (by the
rep while the prospect speaks): the only people at this terminal, trusted as auditors and
approvers. They are two approvers with different ids, so the rep's discount request can be
approved by the manager (four eyes) from one keyboard. `/click N` presses button N of the
last card as the current speaker; `/quit` leaves. It reads line by line, so it works from a
pipe and without a TTY. A line the domain cannot take (over 40,000 characters, bytes that
are not text) gets a `!` line and the session goes on.
"""

from __future__ import annotations

import random
import unicodedata
from collections.abc import Callable, Iterable

from pydantic import ValidationError

from adapters.terminal.sender import CHANNEL, TerminalRouter, TerminalSender
from bot.outbox_worker import OutboxWorker
from bot.queries import query_answerer
from bot.runtime import Runtime
from domain.commands import COMMANDS, CommandSpec, command_spec
from domain.errors import CommandError
from domain.inbound import Actor, ButtonClicked, CommandInvoked, Inbound, MessagePosted
from domain.policy import Policy
from storage.ports import Store

LOCAL_REP = Actor(id="local-rep", name="You (rep)", role="rep", approver=True, auditor=True)
LOCAL_MANAGER = Actor(
    id="local-manager", name="You (manager)", role="rep", approver=True, auditor=True
)
LOCAL_PROSPECT = Actor(id="local-prospect", name="", role="prospect")
SPEAKERS = {"prospect": LOCAL_PROSPECT, "rep": LOCAL_REP, "manager": LOCAL_MANAGER}
SPEAKER_USAGE = "/as prospect | /as rep | /as manager"

CHAT_HELP = (
    "Type a message as the current speaker (now: {speaker}).",
    f"{SPEAKER_USAGE}  switch who is speaking and clicking;",
    f"{'':37}rep and manager are two approvers and auditors:",
    f"{'':37}the manager approves the rep's discount requests",
    f"{'':37}(four eyes); the prospect's commands run as the rep",
    f"{'/click N':37}press button N of the last card, as the speaker",
    f"{'/quit':37}leave (end of input works too)",
    *(f"/{spec.usage}" for spec in COMMANDS),
)


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
    ) -> None:
        """`outbox_identity`: this process's boot slot on the database (`bot.boot_slot`)."""
        self._write = write
        self._conversation_id = conversation_id
        self._session = session
        self._speaker = LOCAL_PROSPECT
        self._count = 0
        self._sender = TerminalSender(write)
        self._runtime = Runtime(
            store, policy, TerminalRouter(), clock=clock, answer_query=query_answerer(policy)
        )
        self._worker = OutboxWorker(
            store,
            lambda channel: self._sender if channel == CHANNEL else None,
            clock=clock,
            sleep=_no_wait,
            rng=random.Random(0),
            pacing_ms=lambda _channel: 0,
            on_dead_letter=self._runtime.report_dead_letter,
            identity=outbox_identity,
            # Only the terminal's own items: on a live server's database the server's
            # replies are the server's to send, and the terminal's are never the server's.
            prefixes=(CHANNEL,),
        )
        self._store = store

    async def start(self) -> None:
        await self._runtime.start()
        self._write(
            f"salesbot chat — conversation {self._conversation_id}. You speak as the prospect "
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
            self._write("! Not sent: the line is not valid text (bytes that are not UTF-8)")
            return True
        try:
            inbound = self._inbound(text.strip())
        except ValidationError as exc:
            self._write(f"! Not sent: {_reason(exc)}")
            return True
        if inbound is not None:
            await self._runtime.handle(inbound)
            await self._runtime.settled()  # audits and metrics are answered after the commit
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

    def _next_id(self) -> str:
        self._count += 1
        return f"chat:{self._session}:{self._count}"

    def _inbound(self, text: str) -> Inbound | None:
        delivery_id, conversation_id = self._next_id(), self._conversation_id
        if not text.startswith("/"):
            return MessagePosted(
                delivery_id=delivery_id,
                conversation_id=conversation_id,
                text=text,
                actor=self._speaker,
            )
        head, _, rest = text[1:].partition(" ")
        head = head.lower()
        if head == "as":
            self._switch(rest.strip().lower())
            return None
        if head == "click":
            return self._click(rest.strip(), delivery_id)
        if head == "help":
            for line in CHAT_HELP:
                self._write(line.format(speaker=self._speaker_name))
            return None
        try:
            spec: CommandSpec = command_spec(head)
        except CommandError as exc:
            self._write(f"! {exc}")
            return None
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

    def _switch(self, role: str) -> None:
        speaker = SPEAKERS.get(role)
        if speaker is None:
            self._write(f"! Usage: {SPEAKER_USAGE}")
            return
        self._speaker = speaker
        self._write(f"(you are now speaking as the {role})")

    def _click(self, number: str, delivery_id: str) -> Inbound | None:
        buttons = self._sender.last_buttons
        if not number.isdigit() or not 1 <= int(number) <= len(buttons):
            self._write(
                f"! Usage: /click N, with N from 1 to {len(buttons)} (the last card's buttons)"
            )
            return None
        button = buttons[int(number) - 1]
        return ButtonClicked(
            delivery_id=delivery_id,
            conversation_id=self._conversation_id,
            action=button.action,
            target=button.target,
            actor=self._speaker,
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
