"""Chat cleaning rules: pure text, no model."""

import pytest

from sentiment import clean_message
from sentiment.cleaning import truncate_words


@pytest.mark.parametrize(
    ("raw", "cleaned"),
    [
        ("hi <@123456789> and <@!42>", "hi and"),
        ("ping <@&777> please", "ping please"),
        ("see <#998877> for rules", "see for rules"),
        ("@everyone raid at 8 @here", "raid at 8"),
        ("use </ban:1234> at <t:1700000000:R>", "use at"),
        ("nice <:pepe_happy:902341>", "nice pepe happy"),
        ("<a:party_blob:12> lol", "party blob lol"),
        ("docs at https://example.com/a?b=1 and www.x.org/y", "docs at and"),
        ("quiet link <https://example.com>", "quiet link"),
        ("look ```py\nprint('hate')\n``` ok", "look ok"),
        ("unclosed ```rm -rf / sad", "unclosed"),
        ("run `make sad` now", "run now"),
        ("I love it 😍", "I love it smiling face with heart eyes"),
        ("👍🏽", "thumbs up"),
        ("fish &amp; chips", "fish & chips"),
        ("tabs\tand\n\nnewlines  ", "tabs and newlines"),
        ("nul\x00byte\x07bell\u200bzero-width", "nul byte bell zero-width"),
    ],
)
def test_cleaning_rules(raw, cleaned):
    assert clean_message(raw) == cleaned


@pytest.mark.parametrize("raw", ["", "   \n\t", "<@1> <#2> https://x.y", "```code only```"])
def test_nothing_readable_cleans_to_empty(raw):
    assert clean_message(raw) == ""


def test_long_message_is_cut_at_a_word_boundary():
    words = "happy days " * 400  # 4,400 characters
    cleaned = clean_message(words, max_chars=1000)
    assert len(cleaned) <= 1000
    assert len(cleaned) > 900
    assert set(cleaned.split(" ")) == {"happy", "days"}  # no word cut in half


def test_truncate_words_keeps_short_text_and_cuts_unbroken_text():
    assert truncate_words("short", 10) == "short"
    assert truncate_words("x" * 50, 10) == "x" * 10


def test_the_ascii_shortcut_blanks_what_the_general_path_blanks():
    from sentiment.cleaning import _ASCII_CONTROL, _printable

    every_ascii = "".join(chr(i) for i in range(128))
    assert _ASCII_CONTROL.sub(" ", every_ascii) == _printable(every_ascii)
    # An entity can decode to an emoji: the shortcut is taken after unescaping.
    assert clean_message("&#128512; hi &lt;3") == "grinning face hi <3"
