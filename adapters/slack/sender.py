"""Delivery to Slack through the Web API: the outbox's `Sender` for Slack channels.

One send is one request (an update in place adds one look-up before it), never retried here:
the client is built with `retry_handlers=[]` and the outbox owns retries, pacing and
`Retry-After` (adapters/ports.py). What this module adds is the classification of Slack's
answers, and the tag that makes "look before you resend" possible (RELIABILITY.md, rule 5):
Slack's Web API has no idempotency key, so every post carries message metadata

    {"event_type": "salesbot_outbox", "event_payload": {"key": <outbox key>, "ref": <card ref>}}

and `find_sent` looks for the key in the channel's (or thread's) recent history. The card's
`ref` lets a later reply find the card again and edit it with `chat.update`.

Ephemeral messages are the exception: they carry no metadata and no history shows them, so
`find_sent` cannot see them and returns None. The outbox then sends them again, which at
worst shows the person who acted the same private notice twice: harmless.

Replies to a slash command may go through the command's `response_url` (`response_url.py`;
the route names its key): a private reply first through it, a new channel message through
it when Slack says the bot is not in the channel (`not_in_channel`, `channel_not_found`,
so nothing was posted and the second request cannot duplicate the first). Messages posted
that way carry no metadata (a response URL takes none), so `find_sent` cannot see them
either.

Every card's buttons are signed for the installing workspace (`ids.ButtonSigner`, with the
service's `ActionKey` and the team id from `auth.test`), so clicks can be bound to them.

Nothing here logs message text, blocks or tokens: log lines carry the outbox key, the
channel id, the card ref and Slack's error code.
"""

from __future__ import annotations

import hashlib
import logging
import re
from collections import deque
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import aiohttp
from slack_sdk.errors import SlackApiError, SlackRequestError
from slack_sdk.web.async_client import AsyncWebClient

from adapters.action_binding import ActionKey
from adapters.ports import Delivery, Rejected, RetryLater, SendOutcome, Sent, TimedOut
from adapters.retry_after import retry_after_ms
from adapters.slack.ids import ButtonSigner
from adapters.slack.response_url import ResponseUrls, rejected_for_membership
from domain.cards import Person, Reply

log = logging.getLogger(__name__)

METADATA_EVENT = "salesbot_outbox"

PERMANENT_ERRORS = frozenset(
    {
        "channel_not_found",
        "not_in_channel",
        "is_archived",
        "invalid_auth",
        "not_authed",
        "account_inactive",
        "token_revoked",
        "token_expired",
        "missing_scope",
        "msg_too_long",
        "no_text",
        "invalid_blocks",
        "invalid_blocks_format",
        "invalid_metadata_format",
        "invalid_metadata_schema",
        "metadata_too_large",
        "no_permission",
        "restricted_action",
        "ekm_access_denied",
        "user_not_in_channel",
        "message_not_found",
        "cant_update_message",
        "edit_window_closed",
        "thread_not_found",
    }
)
"""`ok: false` answers that will be the same however often the message is sent."""

UNCERTAIN_ERRORS = frozenset({"fatal_error", "internal_error"})
"""Slack documents for these that "some aspect of the operation" may have succeeded: the
message may be posted, so the outbox must look before it resends."""

RATE_LIMITED_ERRORS = frozenset({"ratelimited", "rate_limited"})

_MAX_REPLY_PAGES = 25
"""conversations.replies lists a thread oldest first: the newest messages (the ones an
uncertain send would have added) are on its last page. Threads longer than this many pages
(200 messages each) are only searched in their first part."""

Render = Callable[..., dict[str, Any]]
WorkspaceOf = Callable[[Delivery], Awaitable[tuple[AsyncWebClient, str] | None]]
"""The Web API client (the workspace's bot token) and the team id a delivery goes out with
and its buttons are signed for, None when no bot serves its workspace
(`workspaces.Workspaces.for_delivery`)."""
NOT_INSTALLED = "no Slack installation serves this delivery's workspace"


def make_client(token: str, base_url: str, timeout_s: float = 10.0) -> AsyncWebClient:
    """The Web API client for the sender. `retry_handlers=[]`: the SDK's default handlers
    would retry connection errors (and 429s when added) inside one send, under the outbox's
    feet; `base_url` is `SLACK_API_URL` (tests point it at a local fake)."""
    if not base_url.endswith("/"):
        raise ValueError(f"SLACK_API_URL must end with '/' (got {base_url!r}).")
    return AsyncWebClient(
        token=token,
        base_url=base_url,
        # aiohttp takes fractional seconds; the SDK's annotation says int.
        timeout=timeout_s,  # type: ignore[arg-type]
        retry_handlers=[],
    )


CONNECTIONS = 16
"""The most Web API connections one client keeps open (`SharedSession`)."""


class SharedSession:
    """One aiohttp session, i.e. one pool of kept-alive connections, for every Web API call
    a client makes.

    A client built without a session has slack_sdk open and close one per call: a new TCP
    connection — against slack.com also a TLS handshake and a new SSL context — for every
    `chat.postMessage` (14 % of the server's CPU in the Slack ingest benchmark). The session
    is opened inside the running loop (`open`, from the surface's start) and takes the
    client's own timeout as its default, because slack_sdk passes no per-request timeout to
    a running session; a client that already has a session keeps it.

    The pool holds at most `CONNECTIONS`. Idle connections are handed out oldest first, so
    none idles long enough to be closed: a pool keeps every connection a burst of sends
    opened. aiohttp's default bound (100) let a latency spike leave dozens of connections
    (descriptors) open for good; 16 is several times what a workspace's sends need (Slack
    allows about one message per second per channel, and a call takes a fraction of a
    second), and a send that must wait for a connection waits inside its own timeout.
    """

    def __init__(self, client: AsyncWebClient) -> None:
        self._client = client
        self._own: aiohttp.ClientSession | None = None

    def open(self) -> None:
        current = self._client.session
        if current is not None and not current.closed:
            return
        self._own = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=CONNECTIONS),
            timeout=aiohttp.ClientTimeout(total=self._client.timeout),
            trust_env=self._client.trust_env_in_session,
        )
        self._client.session = self._own

    async def close(self) -> None:
        if self._own is None:
            return
        if self._client.session is self._own:
            self._client.session = None
        await self._own.close()
        self._own = None


_NO_THREAD_YET = "\x00no-thread-yet"
"""A thread that does not exist yet (its card is still in the outbox): retry later."""
THREAD_CACHE = 10_000


class SlackSender:
    """Implements `adapters.ports.Sender` for Slack.

    `delivery.target` (from `SlackRouter`) is `{"channel", "thread_ts", "ephemeral_user"}`,
    optionally with `thread_of_ref`: post in the thread of the card with that `ref`, and
    `response_key`: the command's response URL kept in `responses`.
    `render(reply, *, conversation, nonce_seed, signer)` turns the neutral reply into
    `{"text": fallback, "blocks": [...]}` (default: `adapters.slack.blocks.message`);
    buttons are signed with `action_key` for the team `team_id()` names.
    `history_limit` bounds how many recent messages a look-up reads.
    """

    def __init__(
        self,
        client: AsyncWebClient,
        *,
        action_key: ActionKey,
        team_id: Callable[[], Awaitable[str]],
        responses: ResponseUrls | None = None,
        render: Render | None = None,
        history_limit: int = 200,
        workspace: WorkspaceOf | None = None,
    ) -> None:
        if history_limit < 1:
            raise ValueError("history_limit must be at least 1.")
        if render is None:
            # Imported here so the renderer's module is loaded only by who sends.
            from adapters.slack.blocks import message

            render = message
        self._client = client
        self._action_key = action_key
        self._team_id = team_id
        self._workspace = workspace
        self._responses = responses
        self._render = render
        self._history_limit = history_limit
        self._threads: dict[str, str] = {}

    async def send(self, delivery: Delivery) -> SendOutcome:
        target = delivery.target
        channel = target.get("channel")
        if not isinstance(channel, str) or not channel:
            return Rejected(reason="the delivery names no Slack channel")
        try:
            speaker = await self._speaker(delivery)
            if speaker is None:
                return Rejected(reason=NOT_INSTALLED)
            api, team = speaker
            thread_ts = await self._thread(api, channel, target)
            signer = ButtonSigner(self._action_key, team)
        except Exception as exc:
            outcome = _classify(exc, posted_maybe=False)
            if outcome is None:
                raise
            return outcome
        if thread_ts is _NO_THREAD_YET:
            return RetryLater(reason="the lead's card is not in the channel yet")
        ephemeral_user = _str_or_none(target.get("ephemeral_user"))
        response_key = _str_or_none(target.get("response_key"))
        reply = delivery.reply
        if reply.image is not None:
            return await self._send_image(api, delivery, channel, thread_ts, ephemeral_user)
        rendered = self._render(
            reply, conversation=delivery.conversation_id, nonce_seed=delivery.key, signer=signer
        )
        text = str(rendered["text"])
        blocks = rendered.get("blocks") or []
        mentions = [
            markup
            for markup in (
                mention_markup(_str_or_none(target.get("mention"))),
                None if reply.replaces else person_markup(reply.notify),
            )
            if markup is not None
        ]
        if mentions:
            # The group and the owner are notified by the message's text and see their
            # mention on top (an update in place notifies nobody, so it mentions nobody).
            mention = " ".join(mentions)
            text = f"{mention} {text}"
            blocks = [{"type": "section", "text": {"type": "mrkdwn", "text": mention}}, *blocks]

        if ephemeral_user is not None:
            if response_key is not None and self._responses is not None:
                answered = await self._responses.post(
                    response_key, ephemeral=True, text=text, blocks=blocks
                )
                if answered is not None:
                    return answered
            return await self._call(
                delivery,
                lambda: api.chat_postEphemeral(
                    channel=channel,
                    user=ephemeral_user,
                    thread_ts=thread_ts,
                    text=text,
                    blocks=blocks,
                ),
                remote_id="message_ts",
            )

        metadata = _metadata(delivery.key, _ref(reply))
        if reply.replaces:
            try:
                ts = await self._find(api, channel, thread_ts, "ref", reply.replaces)
            except Exception as exc:
                # Nothing was sent yet: whatever went wrong, trying again is safe.
                outcome = _classify(exc, posted_maybe=False)
                if outcome is None:
                    raise
                return outcome
            if ts is not None:
                return await self._call(
                    delivery,
                    lambda: api.chat_update(
                        channel=channel, ts=ts, text=text, blocks=blocks, metadata=metadata
                    ),
                    remote_id="ts",
                )
            log.info(
                "slack card %s not found in %s; posting outbox item %s as a new message",
                reply.replaces,
                channel,
                delivery.key,
            )

        posted = await self._call(
            delivery,
            lambda: api.chat_postMessage(
                channel=channel,
                thread_ts=thread_ts,
                text=text,
                blocks=blocks,
                metadata=metadata,
                unfurl_links=False,
                unfurl_media=False,
            ),
            remote_id="ts",
            fallback=response_key is not None and self._responses is not None,
        )
        if (
            rejected_for_membership(posted)
            and response_key is not None
            and self._responses is not None
        ):
            answered = await self._responses.post(
                response_key, ephemeral=False, text=text, blocks=blocks
            )
            if answered is not None:
                return answered
        return posted

    async def _send_image(
        self,
        api: AsyncWebClient,
        delivery: Delivery,
        channel: str,
        thread_ts: str | None,
        ephemeral_user: str | None,
    ) -> SendOutcome:
        """A reply's image as a Slack file, with `files_upload_v2`: files.getUploadURLExternal,
        the bytes POSTed to the URL it returns, files.completeUploadExternal sharing it.

        Slack cannot upload a file ephemerally, and a file shared in a channel is seen by
        everyone there (a prospect in a Slack Connect channel, too). So an image for one
        person (`ephemeral_user`: the `/metrics` chart answers its requester) is shared with
        that person's user id (`channels`: Slack puts it in their DM with the bot), never in
        the channel the command was typed in. Needs `files:write`; an install without it
        answers `missing_scope` (Rejected: the outbox dead-letters it and alerts).

        The file's name carries a tag of the outbox key (`_image_name`): Slack keeps no
        metadata on a file share, so `find_sent` recognises an uncertain upload in a channel
        by it. In a DM it cannot look (reading the DM needs its id, conversations.open,
        im:write), as for ephemeral messages: at worst the requester gets the chart twice."""
        image = delivery.reply.image
        assert image is not None
        private = ephemeral_user is not None
        try:
            response = await api.files_upload_v2(
                filename=_image_name(image.filename, delivery.key),
                file=image.png,
                title=delivery.reply.text,
                alt_txt=image.alt,
                channel=None if private else channel,
                channels=[ephemeral_user] if ephemeral_user is not None else None,
                thread_ts=None if private else thread_ts,
            )
        except SlackRequestError as exc:
            # The SDK raises this when the upload URL refused the bytes: the file was never
            # completed, so nothing was shared.
            log.warning("slack upload of outbox item %s failed: %s", delivery.key, exc)
            return RetryLater(reason="Slack's upload URL refused the file")
        except Exception as exc:
            # Only the last step (files.completeUploadExternal) can have shared the file.
            outcome = _classify(exc, posted_maybe=_may_have_shared(exc))
            if outcome is None:
                raise
            level = logging.ERROR if isinstance(outcome, Rejected) else logging.WARNING
            log.log(level, "slack upload of outbox item %s: %s", delivery.key, outcome)
            return outcome
        shared = response.get("file")
        file_id = shared.get("id") if isinstance(shared, Mapping) else None
        return Sent(remote_id=str(file_id) if file_id is not None else None)

    async def find_sent(self, delivery: Delivery) -> str | None:
        """The ts of the message tagged with `delivery.key` in the delivery's channel (its
        thread, if any), else None. Always None for ephemeral messages (see the module
        docstring). Errors propagate: the outbox counts a failed look-up as "unknown".
        An image is found by its file's name in the channel it was shared in."""
        target = delivery.target
        channel = target.get("channel")
        if not isinstance(channel, str) or not channel:
            return None
        speaker = await self._speaker(delivery)
        if speaker is None:
            return None
        api, _ = speaker
        image = delivery.reply.image
        if image is not None:
            return await self._find_image(api, delivery, channel, image.filename)
        if _str_or_none(target.get("ephemeral_user")) is not None:
            return None
        thread_ts = await self._thread(api, channel, target)
        if thread_ts is _NO_THREAD_YET:
            return None
        return await self._find(api, channel, thread_ts, "key", delivery.key)

    async def _speaker(self, delivery: Delivery) -> tuple[AsyncWebClient, str] | None:
        """Which workspace's bot speaks for this delivery, and the team its buttons are
        signed for: the configured token's, unless `workspace` says otherwise."""
        if self._workspace is not None:
            return await self._workspace(delivery)
        return self._client, await self._team_id()

    async def _find_image(
        self, api: AsyncWebClient, delivery: Delivery, channel: str, filename: str
    ) -> str | None:
        """The ts of the message sharing this delivery's file in its channel (or thread);
        None for a DM share (`_send_image`)."""
        target = delivery.target
        if _str_or_none(target.get("ephemeral_user")) is not None:
            return None
        thread_ts = await self._thread(api, channel, target)
        if thread_ts is _NO_THREAD_YET:
            return None
        name = _image_name(filename, delivery.key)
        for message in await self._recent(api, channel, thread_ts):
            files = message.get("files")
            if isinstance(files, list) and any(
                isinstance(f, Mapping) and f.get("name") == name for f in files
            ):
                ts = message.get("ts")
                return str(ts) if ts is not None else None
        return None

    async def _thread(
        self, api: AsyncWebClient, channel: str, target: Mapping[str, Any]
    ) -> str | None:
        """The thread to post in: given, or the thread started by the card whose `ref` is
        `thread_of_ref` (a lead's card in the leads channel), looked up once and cached."""
        ref = _str_or_none(target.get("thread_of_ref"))
        if ref is None:
            return _str_or_none(target.get("thread_ts"))
        cached = self._threads.get(ref)
        if cached is None:
            cached = await self._find(api, channel, None, "ref", ref)
            if cached is None:
                return _NO_THREAD_YET
            self._threads[ref] = cached
            while len(self._threads) > THREAD_CACHE:
                self._threads.pop(next(iter(self._threads)))
        return cached

    async def _call(
        self,
        delivery: Delivery,
        request: Callable[[], Any],
        *,
        remote_id: str,
        fallback: bool = False,
    ) -> SendOutcome:
        """One request and its outcome; `fallback`: a membership refusal is not an error
        yet (the caller has another way to post)."""
        try:
            response = await request()
        except Exception as exc:
            outcome = _classify(exc, posted_maybe=True)
            if outcome is None:
                raise
            level = logging.ERROR if isinstance(outcome, Rejected) else logging.WARNING
            if fallback and rejected_for_membership(outcome):
                level = logging.INFO
            log.log(
                level,
                "slack send of outbox item %s to %s: %s",
                delivery.key,
                delivery.target.get("channel"),
                outcome,
            )
            return outcome
        value = response.get(remote_id)
        return Sent(remote_id=str(value) if value is not None else None)

    async def _find(
        self, api: AsyncWebClient, channel: str, thread_ts: str | None, field: str, value: str
    ) -> str | None:
        """The ts of the newest message of ours whose metadata payload has `field == value`."""
        for message in await self._recent(api, channel, thread_ts):
            metadata = message.get("metadata")
            if not isinstance(metadata, Mapping) or metadata.get("event_type") != METADATA_EVENT:
                continue
            payload = metadata.get("event_payload")
            if isinstance(payload, Mapping) and payload.get(field) == value:
                ts = message.get("ts")
                return str(ts) if ts is not None else None
        return None

    async def _recent(
        self, api: AsyncWebClient, channel: str, thread_ts: str | None
    ) -> list[Mapping[str, Any]]:
        """Up to `history_limit` of the channel's (or thread's) newest messages, newest first."""
        limit = self._history_limit
        if thread_ts is None:
            newest_first: list[Mapping[str, Any]] = []
            cursor: str | None = None
            while len(newest_first) < limit:
                response = await api.conversations_history(
                    channel=channel,
                    limit=min(200, limit - len(newest_first)),
                    include_all_metadata=True,
                    cursor=cursor,
                )
                newest_first.extend(_messages(response))
                cursor = _next_cursor(response)
                if cursor is None:
                    break
            return newest_first[:limit]

        window: deque[Mapping[str, Any]] = deque(maxlen=limit)
        cursor = None
        for _ in range(_MAX_REPLY_PAGES):
            response = await api.conversations_replies(
                channel=channel,
                ts=thread_ts,
                limit=200,
                include_all_metadata=True,
                cursor=cursor,
            )
            window.extend(_messages(response))
            cursor = _next_cursor(response)
            if cursor is None:
                break
        return list(reversed(window))


def _classify(exc: Exception, *, posted_maybe: bool) -> SendOutcome | None:
    """Slack's answer (or its absence) as an outbox outcome; None for an exception that is
    not about talking to Slack (a bug), which the caller re-raises.

    `posted_maybe` is False while only looking up (nothing can have been posted), which
    turns every "uncertain" answer into a plain retry."""
    if isinstance(exc, SlackApiError):
        return _classify_api_error(exc, posted_maybe=posted_maybe)
    # Before isinstance(TimeoutError): a connect timeout is a TimeoutError too, but the
    # request never left.
    if isinstance(exc, aiohttp.ClientConnectorError | aiohttp.ConnectionTimeoutError):
        return RetryLater(reason=f"could not connect to Slack ({type(exc).__name__})")
    if isinstance(exc, TimeoutError | aiohttp.ClientConnectionError | aiohttp.ClientPayloadError):
        # A read timeout, a reset or a cut-off answer: the request may have been posted.
        if not posted_maybe:
            return RetryLater(reason=f"look-up failed ({type(exc).__name__}); nothing was sent")
        return TimedOut(reason=f"no complete answer from Slack ({type(exc).__name__})")
    return None


def _classify_api_error(exc: SlackApiError, *, posted_maybe: bool) -> SendOutcome:
    # `response` is an AsyncSlackResponse, or a raw aiohttp response when the body was not
    # JSON: read it defensively.
    response = exc.response
    status = getattr(response, "status_code", None) or getattr(response, "status", None)
    headers = getattr(response, "headers", None) or {}
    data = getattr(response, "data", None)
    error = data.get("error") if isinstance(data, dict) else None

    if status == 429 or error in RATE_LIMITED_ERRORS:
        return RetryLater(
            reason=f"rate limited by Slack ({error or 'HTTP 429'})",
            retry_after_ms=_retry_after_ms(headers),
        )
    if isinstance(status, int) and status >= 500:
        return RetryLater(reason=f"Slack answered HTTP {status}")
    if isinstance(error, str):
        if error in PERMANENT_ERRORS:
            return Rejected(reason=error)
        if error in UNCERTAIN_ERRORS and posted_maybe:
            return TimedOut(reason=f"Slack answered {error}: the message may have been posted")
        return RetryLater(
            reason=f"Slack answered {error}, not known to be permanent: retrying in case it is transient"
        )
    if status == 200 and posted_maybe:
        # Accepted but unreadable: as unknown as a timeout.
        return TimedOut(reason="Slack's answer could not be read")
    return RetryLater(reason=f"Slack answered HTTP {status} without an error code")


def _retry_after_ms(headers: Any) -> int | None:
    try:
        value = headers.get("Retry-After")
    except AttributeError:
        return None
    return retry_after_ms(value if isinstance(value, str) else None)


def _image_name(filename: str, key: str) -> str:
    """The uploaded file's name: the image's own, tagged with a digest of the outbox key, so
    an uncertain upload can be recognised in the channel (`find_sent`) and a second chart
    with the same picture is not mistaken for it."""
    stem = filename.removesuffix(".png")
    return f"{stem}-{hashlib.sha256(key.encode()).hexdigest()[:10]}.png"


def _may_have_shared(exc: Exception) -> bool:
    """Whether the failed files_upload_v2 may have shared the file: an API error names its
    method (only files.completeUploadExternal shares), a lost answer could be any step."""
    if isinstance(exc, SlackApiError):
        api_url = str(getattr(exc.response, "api_url", ""))
        return api_url.endswith("files.completeUploadExternal")
    return True


def _metadata(key: str, ref: str | None) -> dict[str, Any]:
    payload: dict[str, str] = {"key": key}
    if ref:
        payload["ref"] = ref
    return {"event_type": METADATA_EVENT, "event_payload": payload}


def _ref(reply: Reply) -> str | None:
    """The card's ref, kept on the message so a later reply can update it; an update in
    place keeps the ref it replaces."""
    if reply.card is not None and reply.card.ref:
        return reply.card.ref
    return reply.replaces or None


def _str_or_none(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _messages(response: Any) -> list[Mapping[str, Any]]:
    messages = response.get("messages")
    if not isinstance(messages, list):
        return []
    return [m for m in messages if isinstance(m, Mapping)]


def _next_cursor(response: Any) -> str | None:
    meta = response.get("response_metadata")
    cursor = meta.get("next_cursor") if isinstance(meta, Mapping) else None
    return cursor if isinstance(cursor, str) and cursor else None


_SLACK_ID = re.compile(r"^[A-Z][A-Z0-9]{1,30}$")


_SLACK_USER = re.compile(r"^[UW][A-Z0-9]{1,30}$")


def person_markup(person: Person | None) -> str | None:
    """A person a reply notifies (the conversation's owner) as Slack mentions them: a user id
    (`U…`, `W…`) as `<@U…>`; None for any other id (never markup from a free string)."""
    if person is None or not _SLACK_USER.match(person.id):
        return None
    return f"<@{person.id}>"


def mention_markup(group: str | None) -> str | None:
    """The policy's `[handoff.on_call] slack` as Slack mentions it: a user group id (`S…`) as
    `<!subteam^S…>`, a user id (`U…`, `W…`) as `<@U…>`, `here` or `channel` as `<!here>` /
    `<!channel>`; None for anything else (never markup from a free string)."""
    if group is None:
        return None
    if group in ("here", "channel"):
        return f"<!{group}>"
    if not _SLACK_ID.match(group):
        return None
    return f"<!subteam^{group}>" if group.startswith("S") else f"<@{group}>"
