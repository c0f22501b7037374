"""Text to mood: label and confidence for chat messages."""
