"""Pinned npm packages (emoji art and Unicode metadata) and the cache that holds them.

Each package is fetched once with `npm pack NAME@VERSION`, checked against its
pinned sha512, unpacked into a temporary folder beside its cache entry, checked
for completeness, and only then renamed into place with a `.complete` marker.
An interrupted or failed fetch therefore leaves nothing that a later build
would mistake for a cached package.
"""

import base64
import hashlib
import json
import shutil
import subprocess
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path

from moodmoji.errors import MoodmojiError

COMPLETE_MARKER = ".complete"


@dataclass(frozen=True)
class NpmPackage:
    name: str
    version: str
    # sha512 of the tarball in npm's "integrity" notation; None skips the check.
    integrity: str | None
    # Files that must be present after unpacking, relative to the package root.
    required_files: tuple[str, ...]

    @property
    def spec(self) -> str:
        return f"{self.name}@{self.version}"


@dataclass(frozen=True)
class ArtStyle:
    """One art style: an npm package of emoji art, laid out as `kind` says (see `art`)."""

    style: str
    package: NpmPackage
    kind: str = "iconify"
    images_dir: str | None = None
    monochrome: bool = False


ICONIFY_FILES = ("package.json", "icons.json", "info.json")
EMOJIBASE_FILES = ("package.json", "en/data.json", "meta/groups.json")
PINS_PATH = Path(__file__).with_name("pins.json")


def _load_pins() -> tuple[NpmPackage, dict[str, ArtStyle]]:
    pins = json.loads(PINS_PATH.read_text())
    meta = pins["metadata"]
    metadata = NpmPackage(meta["name"], meta["version"], meta["integrity"], EMOJIBASE_FILES)
    styles = {}
    for pin in pins["styles"]:
        required = ICONIFY_FILES if pin["kind"] == "iconify" else ("package.json",)
        styles[pin["style"]] = ArtStyle(
            style=pin["style"],
            package=NpmPackage(pin["name"], pin["version"], pin["integrity"], required),
            kind=pin["kind"],
            images_dir=pin.get("images_dir"),
            monochrome=pin["monochrome"],
        )
    return metadata, styles


# EMOJIBASE: Unicode sub-groups (face-smiling, face-concerned, ...) and CLDR
# names, from Unicode's emoji-test.txt as packaged by Emojibase (MIT).
# ART_STYLES: the art packages; their licences and authors are read from each
# package (info.json or package.json) at build time.
EMOJIBASE, ART_STYLES = _load_pins()
DEFAULT_STYLES = tuple(ART_STYLES)


def cache_entry(cache_dir: Path, package: NpmPackage) -> Path:
    """The folder one package version unpacks into (its files lie under `package/`)."""
    return cache_dir / f"{package.name.replace('/', '+')}@{package.version}"


def is_cached(cache_dir: Path, package: NpmPackage) -> bool:
    return (cache_entry(cache_dir, package) / COMPLETE_MARKER).is_file()


def ensure_package(
    package: NpmPackage, cache_dir: Path, npm: str = "npm", timeout_s: float = 120
) -> Path:
    """The unpacked package root, fetching it into the cache first if needed."""
    entry = cache_entry(cache_dir, package)
    if (entry / COMPLETE_MARKER).is_file():
        return entry / "package"
    cache_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=f".{entry.name}.", dir=cache_dir) as tmp_name:
        tmp = Path(tmp_name)
        tarball = _npm_pack(package, tmp / "download", npm, timeout_s)
        _check_integrity(package, tarball)
        staged = tmp / "entry"
        _unpack_complete(package, tarball, staged)
        (staged / COMPLETE_MARKER).write_text(package.integrity or "unchecked\n")
        if entry.exists():  # a stale entry without its marker: an earlier fetch died
            shutil.rmtree(entry)
        staged.rename(entry)
    return entry / "package"


RETRY_HINT = (
    "check the network and npm's registry setting (`npm config get registry`), then run "
    "`moodmoji dataset build` again; packages already cached are kept"
)


def _npm_pack(package: NpmPackage, destination: Path, npm: str, timeout_s: float) -> Path:
    destination.mkdir(parents=True)
    command = [
        npm, "pack", package.spec, "--pack-destination", str(destination),
        "--json", "--fetch-retries=1", "--no-audit", "--no-fund",
    ]  # fmt: skip
    try:
        done = subprocess.run(
            command, capture_output=True, text=True, timeout=timeout_s, check=False
        )
    except FileNotFoundError:
        raise MoodmojiError(
            f"cannot fetch {package.spec}: npm ({npm}) is not installed; install Node.js and npm "
            f"(or set MOODMOJI_EMOJI_SET_NPM), then run `moodmoji dataset build` again"
        ) from None
    except subprocess.TimeoutExpired:
        raise MoodmojiError(
            f"fetching {package.spec} took longer than {timeout_s:.0f} s; {RETRY_HINT}"
        ) from None
    tarballs = sorted(destination.glob("*.tgz"))
    if done.returncode != 0 or len(tarballs) != 1:
        reason = _npm_error_summary(done.stdout, done.stderr)
        raise MoodmojiError(f"could not fetch {package.spec} ({reason}); {RETRY_HINT}")
    return tarballs[0]


def _npm_error_summary(stdout: str, stderr: str) -> str:
    """npm's own one-line reason, from its JSON error report or its last stderr line."""
    try:
        error = json.loads(stdout).get("error", {})
        if error.get("code") or error.get("summary"):
            return " ".join(str(error.get(k, "")) for k in ("code", "summary")).strip()
    except (ValueError, AttributeError):
        pass
    lines = [line.removeprefix("npm error").strip() for line in stderr.splitlines()]
    lines = [line for line in lines if line]
    return lines[0] if lines else "npm gave no reason"


def _check_integrity(package: NpmPackage, tarball: Path) -> None:
    if package.integrity is None:
        return
    algorithm, _, expected = package.integrity.partition("-")
    digest = hashlib.new(algorithm, tarball.read_bytes()).digest()
    if base64.b64encode(digest).decode() != expected:
        raise MoodmojiError(
            f"{package.spec} downloaded with a different checksum than the pinned one; "
            f"the registry or a proxy served other bytes: {RETRY_HINT}"
        )


def _unpack_complete(package: NpmPackage, tarball: Path, target: Path) -> None:
    """Unpack every regular file of the tarball and prove each arrived whole."""
    target.mkdir()
    try:
        with tarfile.open(tarball, "r:gz") as archive:
            members = [m for m in archive.getmembers() if m.isfile()]
            archive.extractall(target, members=members, filter="data")
    except (tarfile.TarError, EOFError, OSError) as error:
        raise MoodmojiError(
            f"the tarball of {package.spec} is damaged ({error}); {RETRY_HINT}"
        ) from None
    for member in members:
        path = target / member.name
        if not path.is_file() or path.stat().st_size != member.size:
            raise MoodmojiError(f"{package.spec} unpacked incompletely: {member.name} is short")
    root = target / "package"
    missing = [name for name in package.required_files if not (root / name).is_file()]
    if missing:
        raise MoodmojiError(f"{package.spec} lacks {', '.join(missing)}; is the version right?")
    manifest = json.loads((root / "package.json").read_text())
    if (manifest.get("name"), manifest.get("version")) != (package.name, package.version):
        raise MoodmojiError(
            f"npm returned {manifest.get('name')}@{manifest.get('version')} for {package.spec}"
        )
