"""`moodmoji chat`: the bot's handlers on typed messages, no Discord account needed.

Plain lines go through auto-suggest (like messages in a channel with auto-suggest on);
`/emoji [text] [mood:positive|negative]` is the slash command; `/reroll` and `/flip`
press the buttons under the last emoji (parsed back from their custom_ids, as on
Discord); `/emoji-settings NAME VALUE` and `/emoji-admin status` work too. Emojis
are saved as PNG files and drawn in the terminal with coloured half blocks.

By default the GAN runs in this process (an embedded sampling service over an
in-process queue, state in memory); `--redis` uses the real queue and shared state.
"""

import asyncio
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path

from bot.core import ButtonState, EmojiReply, Refusal, Skipped, explain
from bot.services import Services
from moodmoji.terminal import half_blocks

HELP = """\
type a message: a clear mood gets an emoji (auto-suggest)
/emoji [text] [mood:positive|negative]   draw one (no text: a surprise)
/reroll  /flip                           the buttons under the last emoji
/emoji-settings NAME VALUE | show        autosuggest on|off, threshold, ratelimit, mode,
                                         emoji-here on|off, cooldown, daily-cap
/emoji-admin status                      queue, workers, models, latency
/help  /quit"""

GUILD_ID = CHANNEL_ID = "terminal"
USER_ID = "terminal-user"
_MOOD_OPTION = re.compile(r"(?:^|\s)(?:mood:|--mood[ =])(positive|negative)\b", re.IGNORECASE)


class EndOfChat(Exception):
    pass


@dataclass
class ChatTurn:
    """What one typed line produced: lines to print and PNG files written."""

    lines: list[str] = field(default_factory=list)
    saved: list[Path] = field(default_factory=list)


def plain(markdown: str) -> str:
    """Discord markdown (bold, code, user, role and channel mentions) as terminal text."""
    text = re.sub(r"<(?:@[!&]?|#)([^>]+)>", r"@\1", markdown)
    return text.replace("**", "").replace("`", "")


class ChatSession:
    def __init__(
        self, services: Services, out_dir: Path, *, pictures: bool = True, width: int = 32
    ) -> None:
        self.services = services
        self.out_dir = Path(out_dir)
        self.pictures = pictures
        self.width = width
        self.last: EmojiReply | None = None

    async def start(self, autosuggest: bool = True, suggest_every_s: int | None = None) -> None:
        """The terminal is one channel of one guild; auto-suggest is on there unless told not."""
        guilds = self.services.guilds
        await guilds.set_channel(GUILD_ID, "autosuggest", CHANNEL_ID, autosuggest)
        if suggest_every_s is not None:
            await guilds.change(
                guild_id=GUILD_ID, channel_id=CHANNEL_ID, name="ratelimit", value=suggest_every_s
            )

    async def handle(self, line: str) -> ChatTurn:
        """One typed line; like on Discord, anything that breaks is told in words."""
        try:
            return await self._handle(line)
        except EndOfChat:
            raise
        except Exception as error:
            return ChatTurn([f"(only you can see this) {explain(error).message}"])

    async def _handle(self, line: str) -> ChatTurn:
        text = line.strip()
        command, _, rest = text.partition(" ")
        turn = ChatTurn()
        if command in ("/quit", "/exit"):
            raise EndOfChat
        if command == "/help":
            turn.lines.append(HELP)
        elif command == "/emoji":
            mood_option = _MOOD_OPTION.search(rest)
            words = _MOOD_OPTION.sub(" ", rest).strip()
            result = await self.services.emojis.emoji(
                text=words or None,
                mood=mood_option.group(1).lower() if mood_option else None,
                user_id=USER_ID,
                guild_id=GUILD_ID,
                channel_id=CHANNEL_ID,
            )
            self._show(result, turn)
        elif command in ("/reroll", "/flip"):
            await self._press(command[1:], turn)
        elif command == "/emoji-settings":
            name, _, value = rest.strip().partition(" ")
            if name in ("", "show"):
                turn.lines.append(plain(await self.services.guilds.describe(GUILD_ID, CHANNEL_ID)))
            else:
                outcome = await self.services.guilds.change(
                    guild_id=GUILD_ID, channel_id=CHANNEL_ID, name=name, value=value
                )
                turn.lines.append(
                    plain(outcome.message if isinstance(outcome, Refusal) else outcome)
                )
        elif command == "/emoji-admin":
            turn.lines.append(plain(await self.services.operations.status()))
        elif command.startswith("/"):
            turn.lines.append(f"unknown command {command}; /help lists them")
        else:
            outcome = await self.services.suggestions.suggest(
                text=text, guild_id=GUILD_ID, channel_id=CHANNEL_ID, author_id=USER_ID
            )
            if isinstance(outcome, Skipped):
                if outcome.refusal is not None:
                    turn.lines.append(f"(no suggestion: {outcome.refusal.message})")
            elif outcome.reply is not None:
                self._show(outcome.reply, turn)
            else:
                turn.lines.append(f"bot reacted {outcome.reaction}")
        return turn

    async def _press(self, action: str, turn: ChatTurn) -> None:
        if self.last is None:
            turn.lines.append("no emoji yet: try /emoji first")
            return
        # The same round trip as a Discord click: the button's custom_id, parsed back.
        [button] = [b for b in self.last.buttons() if b.action == action]
        state = ButtonState.parse(button.custom_id)
        result = await self.services.emojis.press(
            state, user_id=USER_ID, guild_id=GUILD_ID, channel_id=CHANNEL_ID
        )
        self._show(result, turn)

    def _show(self, result: EmojiReply | Refusal, turn: ChatTurn) -> None:
        if isinstance(result, Refusal):
            turn.lines.append(f"(only you can see this) {result.message}")
            return
        self.last = result
        self.out_dir.mkdir(parents=True, exist_ok=True)
        path = self.out_dir / result.filename
        path.write_bytes(result.png)
        turn.saved.append(path)
        if self.pictures:
            turn.lines.append(half_blocks(result.png, self.width))
        turn.lines.append(f"{plain(result.caption)}\n  saved {path}  · /reroll · /flip")


async def chat_loop(session: ChatSession, lines=None, out=None) -> int:
    """Read lines (stdin by default) until EOF or /quit, printing each turn."""
    out = out or sys.stdout
    interactive = lines is None and sys.stdin.isatty()
    while True:
        if lines is None:
            if interactive:
                print("you> ", end="", file=out, flush=True)
            line = await asyncio.to_thread(sys.stdin.readline)
            if not line:
                return 0
        else:
            try:
                line = next(lines)
            except StopIteration:
                return 0
        if not line.strip():
            continue
        try:
            turn = await session.handle(line)
        except EndOfChat:
            return 0
        for text in turn.lines:
            print(text, file=out, flush=True)
