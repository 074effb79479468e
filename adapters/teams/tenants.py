"""The Teams tenants the app is installed in, each with its own team and conversations.

One deployment (one Entra app registration, one bot id) can be installed by several
Microsoft 365 tenants. Each installation is a tenant whose members (not guests) are that
tenant's reps, with its own handoff and leads conversations; people of a tenant with no
installation stay prospects. Kept in the store's adapter state, one record per tenant:

    teams:tenant:{tenant id, lower-cased}   (`RECORD_SCHEMA`, `generator`, times `…_ms`)
      tenant_id, service_url, bot          the tenant's connector and the bot's account there
      places {key: {scope, team, conversation, at_ms}}
                                           where the app is installed: a team (`team:{id}`,
                                           the channel chosen at install) or a person's
                                           personal scope (`personal:{user}`)
      handoff, leads {conversation, team, by, at_ms}
                                           set with `setup handoff` / `setup leads`
      at_ms                                the latest change

How a record changes (`record_update`, `set_destination`):
- Bot Framework's `installationUpdate` with action `add` (or `add-upgrade`) adds a place,
  `remove` (or `remove-upgrade`) takes it away; a team's removal also clears a handoff or
  leads conversation set in that team (the bot can no longer post there). A tenant with no
  place left is not installed (its record stays, so a later install finds its settings).
- `setup handoff` / `setup leads`, said to the bot in a channel by one of the tenant's admins,
  sets the conversation explicitly: the endpoint hands it to the domain as the `setup`
  command of the installation `teams:{tenant}` (`ids.installation_id`), which records
  `channel_set` (or refuses); the committed choice is then applied here (`chose`), newer
  choices winning over older ones whatever order they arrive in.

The *home* tenant (`TEAMS_APP_TENANT_ID`) is the first installation, seeded from the
environment rather than written: it is always installed, and its conversations are
`setup` ▸ `TEAMS_HANDOFF_CONVERSATION` / `TEAMS_LEADS_CONVERSATION` ▸ the channel of its
first team install ▸ the channel the bot was last added to (`book.INSTALL_KEY`), so a
one-tenant deployment behaves exactly as before installations existed. For any other tenant
both are `setup` ▸ the channel chosen when the app was added to its first team still
installed; none: its handoffs wait (never borrowed from another tenant).

Which tenants may be installed at all is configuration (`TEAMS_TENANTS`): the home tenant
always; others when listed, or any with `*`. An installation from a tenant not allowed is
recorded but not active: its people stay prospects and its tokens are refused until the
tenant is listed.

Which installation a conversation belongs to (`for_reference`): the installation of the
tenant its stored conversation reference states (`conversation.tenantId`) when that tenant
is installed; otherwise (a prospect's personal chat from their own tenant, a lead from the
lead feed, a conversation not heard from) the home installation. Bot Framework gives every
tenant the same bot, so nothing else tells which installation a stranger meant to reach.

Look-ups are cached per tenant for `CACHE_MS` (by the injected clock) and dropped at once
when this process changes that tenant's record; another replica's change is seen within
`CACHE_MS`. Losing a record costs an installation (people become prospects, handoffs wait
until the app is added again or `setup` is said again), never a decision already made.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal, NamedTuple

from adapters.teams.book import INSTALL_KEY, StateBook, base_conversation, setup_place_key
from adapters.teams.ids import tenant_of
from domain import GENERATOR
from domain.events import ChannelSet

log = logging.getLogger(__name__)

RECORD_SCHEMA = 1
KEY_PREFIX = "teams:tenant:"
CACHE_MS = 60_000
MAX_CACHED = 10_000
MAX_PLACES = 1_000
"""Places kept per tenant (each person who installs the app personally is one): the oldest
personal ones are dropped first, so a record stays well under the store's value limit."""
ANY_TENANT = "*"

Destination = Literal["handoff", "leads"]
INSTALL_ACTIONS: dict[str, Literal["add", "remove"]] = {
    "add": "add",
    "add-upgrade": "add",
    "remove": "remove",
    "remove-upgrade": "remove",
}
"""Teams' `installationUpdate` actions; the `-upgrade` ones come with an app upgrade."""


def tenant_key(tenant: str) -> str:
    return f"{KEY_PREFIX}{tenant.lower()}"


@dataclass(frozen=True, slots=True)
class Installation:
    """One tenant's installation as the adapter uses it."""

    tenant_id: str
    home: bool
    """The configured tenant (`TEAMS_APP_TENANT_ID`)."""
    service_url: str | None
    bot: Mapping[str, Any] | None
    handoff: str | None
    """Where tickets and approvals go; None: nowhere known yet (they wait)."""
    leads: str | None
    """Where lead cards and lead threads go; None: nowhere known yet."""
    installed_channel: str | None
    """The channel chosen when the app was added to the tenant's first team still installed
    (for the home tenant, else the channel the bot was last added to)."""


class InstallChange(NamedTuple):
    """What an `installationUpdate` did, for the log and the endpoint's answer."""

    tenant_id: str
    action: Literal["add", "remove"]
    place: str
    installed: bool
    """Whether the tenant is installed (and allowed) afterwards."""
    allowed: bool


class Tenants:
    """The installations: the home tenant from configuration, the others from the store."""

    def __init__(
        self,
        states: StateBook,
        *,
        home_tenant: str | None,
        home_handoff: str | None = None,
        home_leads: str | None = None,
        allowed: tuple[str, ...] = (),
        clock: Callable[[], int],
    ) -> None:
        self._states = states
        self._home = home_tenant.lower() if home_tenant else None
        self._home_id = home_tenant
        self._home_handoff = home_handoff
        self._home_leads = home_leads
        self._any = ANY_TENANT in allowed
        self._allowed = frozenset(t.lower() for t in allowed if t and t != ANY_TENANT)
        self._clock = clock
        self._cache: dict[str, tuple[dict[str, Any] | None, int]] = {}

    @property
    def home_tenant(self) -> str | None:
        return self._home_id

    @property
    def multi(self) -> bool:
        """Tenants other than the home one may be installed (`TEAMS_TENANTS`)."""
        return self._any or bool(self._allowed - {self._home})

    def allowed(self, tenant: str) -> bool:
        """Whether `tenant` may be installed at all (`TEAMS_TENANTS`; the home one always)."""
        lowered = tenant.lower()
        return bool(lowered) and (lowered == self._home or self._any or lowered in self._allowed)

    async def installed(self, tenant: str | None) -> bool:
        """Whether `tenant`'s members are reps and its tokens accepted."""
        return tenant is not None and await self.installation(tenant) is not None

    async def installation(self, tenant: str | None) -> Installation | None:
        """`tenant`'s installation; None when it has none (or may not have one)."""
        if not tenant:
            return None
        lowered = tenant.lower()
        if lowered == self._home:
            return await self.home()
        if not self.allowed(lowered):
            return None
        record = await self._record(lowered)
        if record is None or not _places(record):
            return None
        installed = _installed_channel(record)
        handoff = _set(record, "handoff") or installed
        return Installation(
            tenant_id=_str(record.get("tenant_id")) or tenant,
            home=False,
            service_url=_str(record.get("service_url")),
            bot=_map_or_none(record.get("bot")),
            handoff=handoff,
            leads=_set(record, "leads") or installed,
            installed_channel=installed,
        )

    async def home(self) -> Installation:
        """The home installation (none without `TEAMS_APP_TENANT_ID`: then the configured
        conversations and the channel the bot was last added to serve everyone, as before
        installations existed)."""
        record = await self._record(self._home) if self._home else None
        handoff = (_set(record, "handoff") if record else None) or self._home_handoff
        leads = (_set(record, "leads") if record else None) or self._home_leads
        installed = _installed_channel(record) if record else None
        if installed is None and (handoff is None or leads is None):
            # Read only when needed: most deployments configure both conversations.
            legacy = await self._states.get_state(INSTALL_KEY)
            installed = _str(_map(legacy or {}, "conversation").get("id"))
        return Installation(
            tenant_id=self._home_id or "",
            home=True,
            service_url=_str(record.get("service_url")) if record else None,
            bot=_map_or_none(record.get("bot")) if record else None,
            handoff=handoff or installed,
            leads=leads or installed,
            installed_channel=installed,
        )

    async def for_reference(self, reference: Mapping[str, Any] | None) -> Installation:
        """The installation a conversation belongs to (module docstring), by its stored
        reference (None: not heard from, or not a Teams conversation)."""
        tenant = _str(_map(reference or {}, "conversation").get("tenantId"))
        found = await self.installation(tenant) if tenant else None
        return found if found is not None else await self.home()

    async def record_update(self, activity: Mapping[str, Any]) -> InstallChange | str:
        """An `installationUpdate` recorded; a string says why it was not (malformed)."""
        action = INSTALL_ACTIONS.get(_str(activity.get("action")) or "")
        if action is None:
            return f"installation action {activity.get('action')!r} is not handled"
        tenants = _tenants_of(activity)
        if len(tenants) != 1:
            return "installation update without exactly one tenant"
        (tenant,) = tenants
        conversation = _map(activity, "conversation")
        channel_data = _map(activity, "channelData")
        kind = _id(conversation.get("conversationType")) or ""
        team = _id(_map(channel_data, "team").get("id"))
        where = _id(conversation.get("id"))
        if team is not None and kind == "channel":
            selected = _id(_map(_map(channel_data, "settings"), "selectedChannel").get("id"))
            place_key = f"team:{team}"
            place = {
                "scope": "team",
                "team": team,
                "conversation": base_conversation(selected or where or team),
            }
        elif kind == "personal":
            sender = _map(activity, "from")
            who = _id(sender.get("aadObjectId")) or _id(sender.get("id"))
            if who is None or where is None:
                return "installation update without a person or conversation"
            place_key = f"personal:{who}"
            place = {"scope": "personal", "conversation": where}
        elif where is not None:
            # A group chat (or a channel without its team): the place is the conversation.
            place_key = f"{kind or 'conversation'}:{where}"
            place = {"scope": kind or "conversation", "conversation": where}
        else:
            return "installation update without a conversation"
        now = self._clock()
        record = await self._record(tenant) or _new_record(activity, tenant)
        places = dict(_places(record))
        if action == "add":
            known = places.pop(place_key, None)
            # Added again (an upgrade): the place keeps its age, so the first team stays first.
            since = _at_ms(known) if known is not None else now
            places[place_key] = {**place, "at_ms": since}
            record["service_url"] = _id(activity.get("serviceUrl")) or record.get("service_url")
            bot = _map(activity, "recipient")
            if _str(bot.get("id")):
                record["bot"] = {k: bot[k] for k in ("id", "name") if isinstance(bot.get(k), str)}
            _trim(places)
        else:
            places.pop(place_key, None)
            for which in ("handoff", "leads"):
                chosen = _map(record, which)
                if team is not None and chosen.get("team") == team:
                    record[which] = None
        record["places"] = places
        record["at_ms"] = now
        try:
            await self._put(tenant, record)
        except ValueError as exc:  # over the store's value limit: nothing was written
            self.forget(tenant)
            return f"installation record of tenant {tenant} not written: {exc}"
        allowed = self.allowed(tenant)
        installed = tenant == self._home or (allowed and bool(places))
        log.info(
            "teams installation %s in tenant %s (%s): %s%s",
            action,
            tenant,
            place_key.split(":", 1)[0],
            "installed" if installed else "not installed",
            "" if allowed else " (not listed in TEAMS_TENANTS: its people stay prospects)",
        )
        return InstallChange(tenant, action, place_key, installed, allowed)

    async def set_destination(
        self,
        tenant: str,
        which: Destination,
        conversation: str,
        *,
        team: str | None,
        by: str,
        service_url: str | None,
        at_ms: int | None = None,
    ) -> bool:
        """`conversation` (a channel) becomes the tenant's handoff or leads conversation, as
        of `at_ms` (default: now). A choice older than the one in force is not applied
        (False): a retried older choice never undoes a newer one."""
        lowered = tenant.lower()
        if _id(conversation) is None or (team is not None and _id(team) is None):
            raise ValueError("a conversation or team id longer than Teams gives")
        now = self._clock()
        at = now if at_ms is None else at_ms
        self.forget(lowered)  # decide on the stored record, not a cached one
        record = await self._record(lowered) or _new_record({}, lowered, tenant_id=tenant)
        current = _map(record, which)
        if isinstance(current.get("at_ms"), int) and current["at_ms"] > at:
            log.info("teams %s conversation of tenant %s: an older choice ignored", which, lowered)
            return False
        record[which] = {
            "conversation": base_conversation(conversation),
            "team": team,
            "by": by,
            "at_ms": at,
        }
        if service_url and not record.get("service_url"):
            record["service_url"] = service_url
        record["at_ms"] = now
        await self._put(lowered, record)
        log.info("teams %s conversation of tenant %s set by %s", which, lowered, by)
        return True

    async def chose(self, event: ChannelSet, at_ms: int) -> bool:
        """Apply a committed `channel_set` of a Teams installation (`setup handoff|leads`
        said in a channel): the channel becomes the tenant's conversation, with the team and
        service URL the endpoint noted when the command was said (`book.setup_place_key`).
        False for another platform's installation (nothing kept). Applying the same event
        again writes the same record: safe to retry."""
        tenant = tenant_of(event.installation)
        if tenant is None:
            return False
        place = await self._states.get_state(setup_place_key(event.channel)) or {}
        await self.set_destination(
            _str(place.get("tenant_id")) or tenant,
            event.purpose,
            event.channel,
            team=_id(place.get("team")),
            by=event.by,
            service_url=_id(place.get("service_url")),
            at_ms=at_ms,
        )
        return True

    def forget(self, tenant: str) -> None:
        """Look `tenant` up again (another process may have changed it)."""
        self._cache.pop(tenant.lower(), None)

    async def _record(self, tenant: str) -> dict[str, Any] | None:
        now = self._clock()
        cached = self._cache.get(tenant)
        if cached is not None and now - cached[1] < CACHE_MS:
            return dict(cached[0]) if cached[0] is not None else None
        record = await self._states.get_state(tenant_key(tenant))
        self._cache[tenant] = (record, now)
        while len(self._cache) > MAX_CACHED:
            self._cache.pop(next(iter(self._cache)))
        return dict(record) if record is not None else None

    async def _put(self, tenant: str, record: dict[str, Any]) -> None:
        record["schema"], record["generator"] = RECORD_SCHEMA, GENERATOR
        await self._states.put_state(tenant_key(tenant), record, self._clock())
        self._cache[tenant] = (record, self._clock())


TenantCheck = Callable[[str], Awaitable[bool]]
"""`tenant id → installed?`, for the token check (`auth.TokenValidator`)."""


def activity_tenant(activity: Mapping[str, Any]) -> str | None:
    """The one tenant an activity states for where it happened (lower-cased); None when it
    states none or several that disagree."""
    tenants = _tenants_of(activity)
    return next(iter(tenants)) if len(tenants) == 1 else None


def _tenants_of(activity: Mapping[str, Any]) -> frozenset[str]:
    conversation = _id(_map(activity, "conversation").get("tenantId")) or ""
    channel_data = _id(_map(_map(activity, "channelData"), "tenant").get("id")) or ""
    return frozenset({conversation.lower(), channel_data.lower()} - {""})


def _new_record(
    activity: Mapping[str, Any], tenant: str, *, tenant_id: str | None = None
) -> dict[str, Any]:
    stated = _str(_map(activity, "conversation").get("tenantId")) or _str(
        _map(_map(activity, "channelData"), "tenant").get("id")
    )
    return {
        "tenant_id": tenant_id or stated or tenant,
        "service_url": None,
        "bot": None,
        "places": {},
        "handoff": None,
        "leads": None,
    }


def _places(record: Mapping[str, Any]) -> dict[str, Mapping[str, Any]]:
    places = record.get("places")
    if not isinstance(places, Mapping):
        return {}
    return {k: v for k, v in places.items() if isinstance(k, str) and isinstance(v, Mapping)}


def _installed_channel(record: Mapping[str, Any]) -> str | None:
    """The channel of the earliest team install still present: the first team keeps the
    tenant's conversations until it removes the app."""
    teams = [place for place in _places(record).values() if place.get("scope") == "team"]
    teams.sort(key=_at_ms)
    for place in teams:
        found = _str(place.get("conversation"))
        if found is not None:
            return found
    return None


def _at_ms(place: Mapping[str, Any]) -> int:
    at = place.get("at_ms")
    return at if isinstance(at, int) else 0


def _set(record: Mapping[str, Any], which: Destination) -> str | None:
    return _str(_map(record, which).get("conversation"))


def _trim(places: dict[str, Any]) -> None:
    """Drop the oldest personal places beyond `MAX_PLACES` (teams are kept)."""
    while len(places) > MAX_PLACES:
        personal = [k for k, v in places.items() if v.get("scope") != "team"]
        if not personal:
            return
        places.pop(personal[0])  # insertion order: the oldest first


MAX_ID_CHARS = 1024
"""The longest id, channel or URL kept from an installation update (Teams' are far shorter):
anything longer is treated as absent, so a record always fits the store's value limit."""


def _id(value: Any) -> str | None:
    return value if isinstance(value, str) and 0 < len(value) <= MAX_ID_CHARS else None


def _map(data: Mapping[str, Any], key: str) -> Mapping[str, Any]:
    value = data.get(key)
    return value if isinstance(value, Mapping) else {}


def _map_or_none(value: Any) -> Mapping[str, Any] | None:
    return value if isinstance(value, Mapping) and value else None


def _str(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None
