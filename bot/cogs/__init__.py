"""discord.py cogs: thin Discord front ends over `bot.core.EmojiService`."""
