"""discord.py cogs: thin Discord front ends over the services in `bot.services`."""
