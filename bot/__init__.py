"""Discord client and local front ends (`moodmoji chat`). Never imports torch."""
