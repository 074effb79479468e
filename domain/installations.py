"""Which installation a conversation belongs to, and who may see it.

One salesbot can serve several installations: chat workspaces that added the app, tenants
that installed it, and the first installation configured from the environment
(with the playground, the terminal and the lead feed). Each actor acts through one of them
(`Actor.installation`), and each conversation belongs to the one it was started through
(`ConversationStarted.installation`). Its audit and its share of the metrics are that
installation's only: an auditor of one workspace asking for another's conversation is told
it does not exist, exactly as for an id that was never used, so not even its existence
leaks; `/metrics` counts the asker's installation's conversations.

"" names the first installation. Everything stored before installations were told apart
carries no installation and so stays the first installation's, as it was.
"""

from __future__ import annotations

from collections.abc import Iterable

from domain.decision import Recorder
from domain.events import ConversationStarted, EventEnvelope, InstallationNoted
from domain.inbound import Actor

FIRST = ""
"""The first installation: the one configured from the environment."""


def conversation_installation(events: Iterable[EventEnvelope]) -> str:
    """The installation a conversation was started through (its first `ConversationStarted`,
    or the `InstallationNoted` of a stream that started none); the first installation's for
    a stream with neither."""
    for envelope in events:
        if isinstance(envelope.event, ConversationStarted | InstallationNoted):
            return envelope.event.installation
    return FIRST


def visible_to(installation: str, events: Iterable[EventEnvelope]) -> bool:
    """Whether someone acting through `installation` may see this conversation."""
    return conversation_installation(events) == installation


def note_installation(rec: Recorder, actor: Actor) -> None:
    """A new stream whose first decision started no conversation records the installation
    it came through, unless that is the first one (whose streams say nothing, as before)."""
    if actor.installation != FIRST:
        rec.record(InstallationNoted(installation=actor.installation))
