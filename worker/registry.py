"""The model registry: which checkpoint each worker samples from, and which version is live.

Layout of a registry directory (shared by every worker, e.g. a mounted volume):

    <registry>/<version>/<label>.pt     one checkpoint per label
    <registry>/<version>/meta.json      when and from what it was published; for a
                                        retrained version also its metrics and lineage
    <registry>/<version>/...            other artefacts published with it (sample grid,
                                        training curves, the data manifest)
    <registry>/ACTIVE                   the name of the live version
    <registry>/PROMOTIONS               the versions each promotion replaced, newest
                                        last: what `rollback` goes back to

The active version can instead come from a Redis key (`<prefix>:registry:active`),
so one `SET` switches a whole fleet. Without a registry (no ACTIVE file, no key), the
shipped `models/` folder (`models/<label>.pt`) serves as version `default`.

This module only handles files and names; loading checkpoints is the service's job.
"""

import json
import os
import re
import shutil
import tempfile
import time
from pathlib import Path

from moodmoji.errors import MoodmojiError

DEFAULT_VERSION = "default"
ACTIVE_FILE = "ACTIVE"
META_FILE = "meta.json"
PROMOTIONS_FILE = "PROMOTIONS"
_VERSION_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


class RegistryError(MoodmojiError):
    """A version or checkpoint the registry does not have."""


def write_text_atomically(path: Path, text: str) -> None:
    """Readers see the old file or the new one, never half of it."""
    with tempfile.NamedTemporaryFile("w", dir=path.parent, delete=False, suffix=".partial") as f:
        f.write(text)
        temporary = Path(f.name)
    os.replace(temporary, path)


class ModelRegistry:
    def __init__(self, root: Path, default_dir: Path | None = None, redis_client=None, key=None):
        """`redis_client` (a synchronous redis.Redis) and `key` name the active version in Redis."""
        self.root = Path(root)
        self.default_dir = Path(default_dir) if default_dir else None
        self.redis = redis_client
        self.key = key

    def active_version(self) -> str:
        """The live version's name: the Redis key, else the ACTIVE file, else `default`."""
        if self.redis is not None and self.key:
            value = self.redis.get(self.key)
            if value:
                return value.decode() if isinstance(value, bytes) else str(value)
        active = self.root / ACTIVE_FILE
        if active.is_file():
            name = active.read_text().strip()
            if name:
                return name
        return DEFAULT_VERSION

    def version_dir(self, version: str) -> Path:
        if version == DEFAULT_VERSION:
            if self.default_dir is None:
                raise RegistryError("no registry version is active and no default models folder")
            return self.default_dir
        if not _VERSION_NAME.match(version):
            raise RegistryError(f"{version!r} is not a version name (letters, digits, . _ -)")
        return self.root / version

    def checkpoint_path(self, label: str, version: str | None = None) -> Path:
        version = version or self.active_version()
        path = self.version_dir(version) / f"{label}.pt"
        if not path.is_file():
            raise RegistryError(f"version {version!r} has no {label} checkpoint ({path})")
        return path

    def labels(self, version: str | None = None) -> list[str]:
        """Labels with a checkpoint in this version."""
        folder = self.version_dir(version or self.active_version())
        return sorted(p.stem for p in folder.glob("*.pt")) if folder.is_dir() else []

    def versions(self) -> list[str]:
        if not self.root.is_dir():
            return []
        return sorted(p.name for p in self.root.iterdir() if (p / META_FILE).is_file())

    def meta(self, version: str) -> dict:
        path = self.version_dir(version) / META_FILE
        return json.loads(path.read_text()) if path.is_file() else {}

    def publish(
        self,
        version: str,
        checkpoints: dict[str, Path],
        meta: dict | None = None,
        activate: bool = False,
        files: dict[str, Path] | None = None,
    ) -> Path:
        """Copy `{label: checkpoint}` in as `version`; visible to workers only once complete.

        `files` ({name in the version folder: source}) are published with it: grids,
        curves, the data manifest.
        """
        if version == DEFAULT_VERSION:
            raise RegistryError(f"{DEFAULT_VERSION!r} names the shipped models; pick another name")
        target = self.version_dir(version)
        if target.exists():
            raise RegistryError(f"version {version!r} exists already; versions are immutable")
        files = files or {}
        sources = [*checkpoints.values(), *files.values()]
        missing = [str(p) for p in sources if not Path(p).is_file()]
        if missing:
            raise RegistryError(f"no such checkpoint: {', '.join(missing)}")
        self.root.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(dir=self.root, prefix=f".{version}.", suffix=".partial"))
        for label, source in checkpoints.items():
            shutil.copyfile(source, staging / f"{label}.pt")
        for name, source in files.items():
            if "/" in name or name.endswith(".pt") or name in (META_FILE, ""):
                raise RegistryError(f"{name!r} cannot be published as an extra file")
            shutil.copyfile(source, staging / name)
        record = {
            "version": version,
            "published_at": time.time(),
            "checkpoints": {label: str(source) for label, source in checkpoints.items()},
            **(meta or {}),
        }
        (staging / META_FILE).write_text(json.dumps(record, indent=2) + "\n")
        os.replace(staging, target)  # a directory rename: all files appear at once
        if activate:
            self.activate(version)
        return target

    def update_meta(self, version: str, changes: dict) -> dict:
        """Add or replace top-level fields of a version's meta.json (weights stay immutable)."""
        if version == DEFAULT_VERSION or not (self.version_dir(version) / META_FILE).is_file():
            raise RegistryError(f"no version {version!r} in {self.root}")
        meta = {**self.meta(version), **changes}
        write_text_atomically(
            self.version_dir(version) / META_FILE, json.dumps(meta, indent=2) + "\n"
        )
        return meta

    def activate(self, version: str) -> None:
        """Make `version` live: workers switch to it between batches."""
        if version != DEFAULT_VERSION and not (self.version_dir(version) / META_FILE).is_file():
            raise RegistryError(f"no version {version!r} in {self.root}")
        if self.redis is not None and self.key:
            self.redis.set(self.key, version)
        self.root.mkdir(parents=True, exist_ok=True)
        write_text_atomically(self.root / ACTIVE_FILE, version + "\n")

    # --- promotions: activations an operator can undo -----------------------

    def promotions(self) -> list[str]:
        """The versions replaced by each promotion, oldest first."""
        path = self.root / PROMOTIONS_FILE
        return json.loads(path.read_text()) if path.is_file() else []

    def promote(self, version: str) -> str:
        """Make `version` live and remember what it replaced; returns that version.

        Checks on quality belong to the caller (`worker.retraining.promote_checked`).
        """
        previous = self.active_version()
        self.activate(version)
        if previous != version:
            write_text_atomically(
                self.root / PROMOTIONS_FILE, json.dumps([*self.promotions(), previous]) + "\n"
            )
        return previous

    def rollback(self) -> tuple[str, str]:
        """Go back to the version the last promotion replaced; returns (from, to)."""
        stack = self.promotions()
        if not stack:
            raise RegistryError("nothing to roll back to: no promotion has been made")
        current, previous = self.active_version(), stack[-1]
        self.activate(previous)  # a version that vanished raises here, and the stack stays
        write_text_atomically(self.root / PROMOTIONS_FILE, json.dumps(stack[:-1]) + "\n")
        return current, previous


def registry_from_settings(settings) -> "ModelRegistry":
    """The registry the settings name, reading the active version from Redis if asked to."""
    if not settings.registry_redis_key:
        return ModelRegistry(settings.registry_dir, settings.models_dir)
    import redis

    client = redis.Redis.from_url(settings.redis_url, decode_responses=True)
    key = f"{settings.queue_prefix}:registry:active"
    return ModelRegistry(settings.registry_dir, settings.models_dir, client, key)
