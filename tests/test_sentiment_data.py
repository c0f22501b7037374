"""The rating corpus reader and its seeded, document-grouped split, on a small real tarball."""

import io
import tarfile
from collections import Counter

import pytest

from moodmoji.errors import MoodmojiError
from sentiment.data import DOMAIN_FILES, load_sentences, split_by_document
from sentiment.metrics import accuracy, macro_f1


def _write_corpus(path, rows_per_domain=60, skip=None):
    with tarfile.open(path, "w:gz") as archive:
        for domain, filename in DOMAIN_FILES.items():
            if domain == skip:
                continue
            lines = []
            for n in range(rows_per_domain):
                sid = f"{n // 3 + 1}_{n % 3 + 1}" if domain in ("amazon", "nyt") else str(n + 1)
                rating = (n % 9) - 4 + 0.25
                lines.append(f"{sid}\t{rating}\t{domain} sentence {n} caf\u00e9")
            payload = "\r\n".join(lines).encode()  # CRLF, no final newline, like the real files
            info = tarfile.TarInfo(f"hutto_ICWSM_2014/{filename}")
            info.size = len(payload)
            archive.addfile(info, io.BytesIO(payload))
    return path


def test_reads_every_row_with_domain_rating_and_polarity(tmp_path):
    sentences = load_sentences(_write_corpus(tmp_path / "c.tar.gz"), seed=4)
    assert Counter(s.domain for s in sentences) == dict.fromkeys(DOMAIN_FILES, 60)
    first_tweet = next(s for s in sentences if s.domain == "tweets")
    assert (first_tweet.rating, first_tweet.text) == (-3.75, "tweets sentence 0 café")
    assert first_tweet.polarity == "negative"
    polarities = {s.rating: s.polarity for s in sentences}
    assert polarities[0.25] == "neutral" and polarities[1.25] == "positive"


def test_split_is_seeded_and_sized(tmp_path):
    corpus = _write_corpus(tmp_path / "c.tar.gz")
    first = [(s.domain, s.sentence_id, s.split) for s in load_sentences(corpus, seed=4)]
    again = [(s.domain, s.sentence_id, s.split) for s in load_sentences(corpus, seed=4)]
    other = [(s.domain, s.sentence_id, s.split) for s in load_sentences(corpus, seed=5)]
    assert first == again
    assert first != other
    sizes = Counter(split for domain, _, split in first if domain == "movie")
    assert sizes == {"train": 42, "test": 12, "validation": 6}


def test_split_keeps_a_documents_snippets_together():
    ids = [f"{doc}_{n}" for doc in range(1, 41) for n in range(1, 4)]
    splits = split_by_document(ids, seed="x")
    for doc in range(1, 41):
        assert len({splits[f"{doc}_{n}"] for n in range(1, 4)}) == 1
    assert set(splits.values()) == {"train", "validation", "test"}


def test_a_corpus_missing_a_domain_is_a_clear_error(tmp_path):
    corpus = _write_corpus(tmp_path / "c.tar.gz", skip="nyt")
    with pytest.raises(MoodmojiError, match=r"nytEditorialSnippets_GroundTruth\.txt"):
        load_sentences(corpus, seed=4)


def test_metrics_on_a_hand_worked_example():
    truth = ["positive", "positive", "negative", "negative"]
    guess = ["positive", "negative", "negative", "negative"]
    assert accuracy(truth, guess) == 0.75
    # positive: P=1, R=1/2 -> F1 2/3; negative: P=2/3, R=1 -> F1 4/5.
    assert macro_f1(truth, guess, ("positive", "negative")) == pytest.approx((2 / 3 + 4 / 5) / 2)
