"""Drive a real discord.py bot without Discord: gateway payloads in, HTTP calls recorded.

What a test feeds the bot is what Discord's gateway sends: INTERACTION_CREATE and
MESSAGE_CREATE payloads, parsed by the bot's own `ConnectionState`, so the real command
tree, checks, DynamicItem templates and modals run. What the bot sends back is caught
at the two adapters discord.py talks HTTP through: `HTTPClient.request` (bot token
routes: channel messages, reactions, emojis, application info) and the webhook adapter
(interaction callbacks, follow-ups, edits of the original response). Nothing is mocked
between the two.
"""

import asyncio
import itertools
import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import discord
from discord.http import Route
from discord.webhook.async_ import AsyncWebhookAdapter, async_context

_MESSAGE_PATH = re.compile(r"/channels/(?P<channel_id>\d+)/messages(?:/(?P<message_id>\d+))?")

APP_ID = 900_000_000_000_000_001
BOT_ID = 900_000_000_000_000_002
OWNER_ID = 100_000_000_000_000_001
EPHEMERAL = 64
TIMESTAMP = "2026-01-01T00:00:00+00:00"
_ids = itertools.count(500_000_000_000_000_000)

# What the bot may do in the test guilds: view, send, attach, history, react, expressions.
BOT_PERMISSIONS = discord.Permissions(
    view_channel=True,
    send_messages=True,
    attach_files=True,
    read_message_history=True,
    add_reactions=True,
    create_expressions=True,
    embed_links=True,
)


def new_id() -> int:
    return next(_ids)


def user_payload(user_id: int, name: str | None = None, bot: bool = False) -> dict:
    name = name or f"user{user_id % 1000}"
    return {
        "id": str(user_id),
        "username": name,
        "discriminator": "0",
        "global_name": name,
        "avatar": None,
        "bot": bot,
    }


def member_payload(user_id: int, roles=(), permissions: discord.Permissions | None = None) -> dict:
    payload = {
        "user": user_payload(user_id),
        "roles": [str(r) for r in roles],
        "joined_at": TIMESTAMP,
        "deaf": False,
        "mute": False,
        "flags": 0,
    }
    if permissions is not None:
        payload["permissions"] = str(permissions.value)
    return payload


def channel_payload(guild_id: int, channel_id: int) -> dict:
    return {
        "id": str(channel_id),
        "type": 0,
        "guild_id": str(guild_id),
        "name": f"channel-{channel_id % 1000}",
        "position": 0,
        "permission_overwrites": [],
        "nsfw": False,
        "parent_id": None,
        "topic": None,
        "last_message_id": None,
        "rate_limit_per_user": 0,
    }


def role_payload(role_id: int, name: str, permissions: discord.Permissions, position=1) -> dict:
    return {
        "id": str(role_id),
        "name": name,
        "permissions": str(permissions.value),
        "position": position,
        "color": 0,
        "hoist": False,
        "managed": False,
        "mentionable": False,
        "flags": 0,
    }


@dataclass
class Guild:
    id: int
    channel_id: int
    bot_role_id: int
    extra_roles: dict[int, str] = field(default_factory=dict)

    def payload(self) -> dict:
        roles = [
            role_payload(self.id, "@everyone", discord.Permissions.none(), 0),
            role_payload(self.bot_role_id, "moodmoji", BOT_PERMISSIONS),
        ] + [
            role_payload(r, name, discord.Permissions.none())
            for r, name in self.extra_roles.items()
        ]
        return {
            "id": str(self.id),
            "name": f"guild-{self.id % 1000}",
            "icon": None,
            "splash": None,
            "discovery_splash": None,
            "owner_id": str(self.id + 1),
            "afk_channel_id": None,
            "afk_timeout": 300,
            "verification_level": 0,
            "default_message_notifications": 0,
            "explicit_content_filter": 0,
            "roles": roles,
            "emojis": [],
            "stickers": [],
            "features": [],
            "mfa_level": 0,
            "application_id": None,
            "system_channel_id": None,
            "system_channel_flags": 0,
            "rules_channel_id": None,
            "vanity_url_code": None,
            "description": None,
            "banner": None,
            "premium_tier": 0,
            "preferred_locale": "en-US",
            "public_updates_channel_id": None,
            "nsfw_level": 0,
            "premium_progress_bar_enabled": False,
            "channels": [channel_payload(self.id, self.channel_id)],
            "members": [
                {
                    **member_payload(BOT_ID, [self.bot_role_id]),
                    "user": user_payload(BOT_ID, "moodmoji", True),
                }
            ],
            "member_count": 2,
            "threads": [],
            "large": False,
            "unavailable": False,
        }


def new_guild(**roles: int) -> Guild:
    return Guild(new_id(), new_id(), new_id(), {role_id: name for name, role_id in roles.items()})


@dataclass
class Call:
    """One HTTP request the bot made."""

    method: str
    path: str
    json: dict | list | None
    files: int = 0

    @property
    def flags(self) -> int:
        data = self.json or {}
        if isinstance(data, dict) and "data" in data and isinstance(data["data"], dict):
            data = data["data"]
        return int((data or {}).get("flags") or 0) if isinstance(data, dict) else 0

    @property
    def content(self) -> str:
        data = self.json or {}
        if isinstance(data, dict) and isinstance(data.get("data"), dict):
            data = data["data"]
        return (data.get("content") or "") if isinstance(data, dict) else ""

    @property
    def callback_type(self) -> int | None:
        if self.path.endswith("/callback") and isinstance(self.json, dict):
            return self.json.get("type")
        return None

    def custom_ids(self) -> list[str]:
        data = self.json or {}
        if isinstance(data, dict) and isinstance(data.get("data"), dict):
            data = data["data"]
        rows = data.get("components") or [] if isinstance(data, dict) else []
        return [c.get("custom_id") for row in rows for c in row.get("components", [])]


def _payload(kwargs: dict) -> tuple[Any, int]:
    if "json" in kwargs:
        return kwargs["json"], 0
    form = kwargs.get("form") or kwargs.get("multipart")
    if form:
        payload = next((json.loads(p["value"]) for p in form if p["name"] == "payload_json"), None)
        return payload, len(kwargs.get("files") or [])
    return kwargs.get("payload"), len(kwargs.get("files") or [])


class Recorder:
    """Every HTTP call, with a Discord-shaped answer for the ones whose answer is read."""

    def __init__(self) -> None:
        self.calls: list[Call] = []
        self.messages: dict[int, dict] = {}  # message id -> the payload "Discord" holds
        self.on_call: list[Callable[[Call], None]] = []
        self.cdn: dict[str, bytes] = {}

    def _record(self, route, kwargs) -> Call:
        payload, files = _payload(kwargs)
        path = route.url.removeprefix(Route.BASE).split("?")[0]
        call = Call(route.method, path, payload, files)
        self.calls.append(call)
        for hook in list(self.on_call):
            hook(call)
        return call

    def message(self, channel_id, content="", components=None, files=0, message_id=None) -> dict:
        message_id = message_id or new_id()
        attachments = [
            {
                "id": str(new_id()),
                "filename": f"file{i}.png",
                "size": 10,
                "url": f"https://cdn.test/{message_id}/{i}.png",
                "proxy_url": f"https://cdn.test/{message_id}/{i}.png",
            }
            for i in range(files)
        ]
        payload = message_payload(
            message_id,
            channel_id,
            user_payload(BOT_ID, "moodmoji", True),
            content or "",
            attachments=attachments,
            components=components or [],
        )
        self.messages[message_id] = payload
        return payload

    # --- discord.http.HTTPClient.request -------------------------------------------

    async def http(self, route, **kwargs):
        call = self._record(route, kwargs)
        ids = _MESSAGE_PATH.match(call.path)
        params = ids.groupdict() if ids else {}
        if call.method == "GET" and call.path == "/oauth2/applications/@me":
            return {
                "id": str(APP_ID),
                "name": "moodmoji",
                "description": "",
                "icon": None,
                "bot_public": True,
                "bot_require_code_grant": False,
                "owner": user_payload(OWNER_ID, "owner"),
                "team": None,
                "verify_key": "k",
                "flags": 0,
            }
        if call.method == "POST" and call.path.endswith("/messages"):
            data = call.json or {}
            return self.message(
                params.get("channel_id"), data.get("content"), data.get("components"), call.files
            )
        if call.method == "PATCH" and "/messages/" in call.path:
            data = call.json or {}
            message_id = int(params["message_id"])
            return self.message(
                params.get("channel_id"),
                data.get("content"),
                data.get("components"),
                call.files,
                message_id,
            )
        if call.method == "POST" and call.path.endswith("/emojis"):
            return {"id": str(new_id()), "name": (call.json or {}).get("name"), "animated": False}
        if call.method == "PUT" and "/commands" in call.path:
            return []
        return None

    async def get_from_cdn(self, url: str) -> bytes:
        self.calls.append(Call("GET", url, None))
        return self.cdn[url]

    # --- the webhook adapter (interactions) -----------------------------------------

    async def webhook(self, route, **kwargs):
        call = self._record(route, kwargs)
        if call.path.endswith("/callback"):
            return {"interaction": {"id": str(route.webhook_id), "type": 2}}
        if call.method == "DELETE":
            return None
        data = call.json or {}
        return self.message(new_id(), data.get("content"), data.get("components"), call.files) | {
            "flags": data.get("flags") or 0
        }

    def for_token(self, token: str) -> list[Call]:
        return [c for c in self.calls if f"/{token}" in c.path]


class RecordingAdapter(AsyncWebhookAdapter):
    def __init__(self, recorder: Recorder) -> None:
        super().__init__()
        self.recorder = recorder

    async def request(self, route, session=None, **kwargs):
        return await self.recorder.webhook(route, **kwargs)


class Harness:
    """A MoodmojiBot's ConnectionState fed gateway payloads; its HTTP recorded."""

    def __init__(self, bot, recorder: Recorder | None = None) -> None:
        self.bot = bot
        self.recorder = recorder or Recorder()
        self.guilds: list[Guild] = []

    async def start(self, *guilds: Guild) -> "Harness":
        bot = self.bot
        bot.http.request = self.recorder.http
        bot.http.get_from_cdn = self.recorder.get_from_cdn
        async_context.set(RecordingAdapter(self.recorder))
        await bot._async_setup_hook()
        state = bot._connection
        state.user = discord.ClientUser(state=state, data=user_payload(BOT_ID, "moodmoji", True))
        state.application_id = APP_ID
        for guild in guilds:
            self.add_guild(guild)
        await bot.setup_hook()
        return self

    def add_guild(self, guild: Guild) -> None:
        self.guilds.append(guild)
        self.bot._connection._add_guild_from_data(guild.payload())

    async def _run(self, parse: Callable[[], None], timeout: float) -> None:
        """Parse one gateway event and wait for every task it started (bounded, so a hang
        fails the test instead of stalling it)."""
        before = asyncio.all_tasks()
        parse()  # creates the handler tasks; none of them has run yet
        started = asyncio.all_tasks() - before
        if started:
            _done, pending = await asyncio.wait(started, timeout=timeout)
            assert not pending, f"handlers still running after {timeout} s: {pending}"

    async def interact(self, payload: dict, timeout: float = 120.0) -> list[Call]:
        """INTERACTION_CREATE; the HTTP calls made for this interaction's token."""
        await self._run(lambda: self.bot._connection.parse_interaction_create(payload), timeout)
        return self.recorder.for_token(payload["token"])

    async def message(self, payload: dict, timeout: float = 120.0) -> None:
        await self._run(lambda: self.bot._connection.parse_message_create(payload), timeout)

    # --- payloads -------------------------------------------------------------------

    def _base(
        self, guild: Guild, user_id: int, type_: int, data: dict, *, roles=(), permissions=None
    ):
        interaction_id = new_id()
        return {
            "id": str(interaction_id),
            "application_id": str(APP_ID),
            "type": type_,
            "token": f"token{interaction_id}",
            "version": 1,
            "guild_id": str(guild.id),
            "channel_id": str(guild.channel_id),
            "channel": channel_payload(guild.id, guild.channel_id),
            "member": member_payload(
                user_id,
                roles,
                permissions if permissions is not None else discord.Permissions.none(),
            ),
            "app_permissions": str(BOT_PERMISSIONS.value),
            "locale": "en-US",
            "guild_locale": "en-US",
            "entitlements": [],
            "attachment_size_limit": 10 * 1024 * 1024,
            "authorizing_integration_owners": {"0": str(guild.id)},
            "context": 0,
            "data": data,
        }

    def slash(
        self,
        guild: Guild,
        user_id: int,
        name: str,
        *path_and_options,
        roles=(),
        permissions=None,
        command_guild: int | None = None,
        resolved: dict | None = None,
    ) -> dict:
        """/name [sub] options: `slash(g, u, "emoji-admin", "promote", version="v2")`."""
        subcommands = [p for p in path_and_options if isinstance(p, str)]
        options_dict = next((p for p in path_and_options if isinstance(p, dict)), {})
        options = [_option(k, v) for k, v in options_dict.items()]
        for sub in reversed(subcommands):
            options = [{"type": 1, "name": sub, "options": options}]
        data = {"id": str(new_id()), "name": name, "type": 1, "options": options}
        if command_guild is not None:
            data["guild_id"] = str(command_guild)
        if resolved:
            data["resolved"] = resolved
        return self._base(guild, user_id, 2, data, roles=roles, permissions=permissions)

    def press(self, guild: Guild, user_id: int, message: dict, custom_id: str, *, permissions=None):
        data = {"custom_id": custom_id, "component_type": 2}
        payload = self._base(guild, user_id, 3, data, permissions=permissions)
        payload["message"] = message
        return payload

    def submit(self, guild: Guild, user_id: int, custom_id: str, values: dict[str, str], **kw):
        rows = [
            {"type": 1, "components": [{"type": 4, "custom_id": k, "value": v}]}
            for k, v in values.items()
        ]
        data = {"custom_id": custom_id, "components": rows}
        return self._base(guild, user_id, 5, data, **kw)

    def chat_message(self, guild: Guild, author_id: int, content: str) -> dict:
        payload = message_payload(new_id(), guild.channel_id, user_payload(author_id), content)
        payload["guild_id"] = str(guild.id)
        payload["member"] = {k: v for k, v in member_payload(author_id).items() if k != "user"}
        return payload


def message_payload(
    message_id: int, channel_id: int, author: dict, content: str, attachments=(), components=()
) -> dict:
    """A message object as the gateway and the REST API send it."""
    return {
        "id": str(message_id),
        "channel_id": str(channel_id),
        "author": author,
        "content": content,
        "timestamp": TIMESTAMP,
        "edited_timestamp": None,
        "tts": False,
        "mention_everyone": False,
        "mentions": [],
        "mention_roles": [],
        "attachments": list(attachments),
        "embeds": [],
        "pinned": False,
        "type": 0,
        "flags": 0,
        "components": list(components),
    }


def _option(name: str, value) -> dict:
    if isinstance(value, tuple):  # (option type, value): a role (8), a user (6)...
        kind, value = value
        return {"type": kind, "name": name, "value": value}
    if isinstance(value, bool):
        kind = 5
    elif isinstance(value, int):
        kind = 4
    elif isinstance(value, float):
        kind = 10
    elif isinstance(value, discord.Object):  # an attachment id, resolved separately
        return {"type": 11, "name": name, "value": str(value.id)}
    else:
        kind = 3
    return {"type": kind, "name": name, "value": value}


# --- reading what happened -------------------------------------------------------------


def callbacks(calls: list[Call]) -> list[int]:
    return [c.callback_type for c in calls if c.callback_type is not None]


def ended(calls: list[Call]) -> bool:
    """Whether the user no longer sees "thinking…": answered, or deferred then followed."""
    kinds = callbacks(calls)
    if not kinds:
        return False
    if kinds[0] in (4, 7, 9):  # message, update, modal: answered at once
        return True
    later = [c for c in calls if c.callback_type is None]
    return any(c.method in ("PATCH", "DELETE") or c.method == "POST" for c in later)


def last_text(calls: list[Call]) -> Call:
    """The last call that carried words for the user."""
    return [c for c in calls if c.content][-1]


def ephemeral_answer(calls: list[Call]) -> str:
    """The words of the ephemeral message that ended the interaction (asserts it is one)."""
    last = last_text(calls)
    assert last.flags & EPHEMERAL, f"not ephemeral: {last}"
    return last.content
