"""The model registry: which checkpoint each worker samples from, and which version is live.

Layout of a registry directory (shared by every worker, e.g. a mounted volume):

    <registry>/<version>/<label>.pt     one checkpoint per label
    <registry>/<version>/meta.json      when and from what it was published; for a
                                        retrained version also its metrics and lineage
    <registry>/<version>/...            other artefacts published with it (sample grid,
                                        training curves, the data manifest)
    <registry>/STATE.json               the live version, the rollback stack and the full
                                        history of changes, in one document
    <registry>/.lock                    what promote, rollback and activate lock

Every change of the live version (promote, rollback, activate) is one change of
STATE.json under an exclusive lock (`flock`; on NFS, v4 or a lock daemon): written to
a temporary file, fsynced, renamed over the old one, the folder fsynced. A process
killed at any moment leaves the old state or the new one, and concurrent changes are
serialised, so the history records each of them. Versions appear whole (copied into a
hidden folder, fsynced, renamed). Files are written `registry_file_mode` (0640) and
folders with the matching search bits (0750), whatever the umask, so workers running as
another user of the same group can read what an operator published.

`promote` refuses a version that does not load: each checkpoint is loaded on the CPU by
the loader workers use, and one emoji drawn (`worker.service.check_loads`); the result
is remembered in the version's meta.json with the checkpoints' sha256, so the check runs
once per version. Forced anyway, it is recorded as not loading; running workers keep
their model, and a worker that starts then serves the newest version in the rollback
history that loads (`candidates`), so a restart or scale-up still serves.

The active version can instead come from a Redis key (`<prefix>:registry:active`), so
one `SET` switches a whole fleet: STATE.json is written first (the commit), the key is
set after (the broadcast); a change interrupted between them is broadcast by the next
one, and a key set by hand is recorded in the history when next seen. Without a
registry (no STATE.json, no key) the shipped `models/` folder (`models/<label>.pt`)
serves as version `default`. A registry written by an older moodmoji (ACTIVE and
PROMOTIONS files) is read, and moved into STATE.json by its first change.

This module only handles files and names; loading checkpoints is the service's job.
"""

import contextlib
import fcntl
import hashlib
import json
import os
import re
import shutil
import tempfile
import time
from pathlib import Path

from moodmoji.errors import MoodmojiError

DEFAULT_VERSION = "default"
STATE_FILE = "STATE.json"
LOCK_FILE = ".lock"
META_FILE = "meta.json"
LEGACY_ACTIVE, LEGACY_PROMOTIONS = "ACTIVE", "PROMOTIONS"
DEFAULT_FILE_MODE = 0o640
_VERSION_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


class RegistryError(MoodmojiError):
    """A version or checkpoint the registry does not have, or one that does not load."""


def folder_mode(file_mode: int) -> int:
    """Search permission wherever the file mode grants reading: 0640 -> 0750."""
    return file_mode | ((file_mode & 0o444) >> 2)


def _fsync_folder(folder: Path) -> None:
    descriptor = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def write_text_atomically(path: Path, text: str, mode: int = DEFAULT_FILE_MODE) -> None:
    """Readers see the old file or the new one, never half of it, even after a power cut."""
    with tempfile.NamedTemporaryFile("w", dir=path.parent, delete=False, suffix=".partial") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
        temporary = Path(f.name)
    os.chmod(temporary, mode)  # NamedTemporaryFile makes 0600 files
    os.replace(temporary, path)
    _fsync_folder(path.parent)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        while chunk := stream.read(1024 * 1024):
            digest.update(chunk)
    return digest.hexdigest()


class ModelRegistry:
    def __init__(
        self,
        root: Path,
        default_dir: Path | None = None,
        redis_client=None,
        key=None,
        file_mode: int = DEFAULT_FILE_MODE,
    ):
        """`redis_client` (a synchronous redis.Redis) and `key` name the active version in Redis."""
        self.root = Path(root)
        self.default_dir = Path(default_dir) if default_dir else None
        self.redis = redis_client
        self.key = key
        self.file_mode = file_mode
        self.folder_mode = folder_mode(file_mode)

    # --- reading ----------------------------------------------------------------

    def _state(self) -> dict:
        """STATE.json, or the state an older registry's ACTIVE and PROMOTIONS files held."""
        path = self.root / STATE_FILE
        if path.is_file():
            return json.loads(path.read_text())
        active, stack = self.root / LEGACY_ACTIVE, self.root / LEGACY_PROMOTIONS
        return {
            "active": (active.read_text().strip() or None) if active.is_file() else None,
            "rollback": json.loads(stack.read_text()) if stack.is_file() else [],
            "history": [],
        }

    def _redis_active(self) -> str | None:
        if self.redis is None or not self.key:
            return None
        value = self.redis.get(self.key)
        return (value.decode() if isinstance(value, bytes) else str(value)) if value else None

    def active_version(self) -> str:
        """The live version's name: the Redis key, else STATE.json, else `default`."""
        return self._redis_active() or self._state().get("active") or DEFAULT_VERSION

    def history(self) -> list[dict]:
        """Every change of the live version, oldest first: at, action, from, to, and for a
        promotion whether it was forced and whether the version loaded."""
        return self._state().get("history", [])

    def promotions(self) -> list[str]:
        """The versions each rollback would go back to, oldest first (the last is next)."""
        return self._state().get("rollback", [])

    def candidates(self) -> list[str]:
        """What a starting worker tries, in order: the live version, then each version
        the rollback history would go back to, newest first, then the shipped models."""
        ordered = [self.active_version(), *reversed(self.promotions()), DEFAULT_VERSION]
        return list(dict.fromkeys(ordered))

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

    def _exists(self, version: str) -> bool:
        if version == DEFAULT_VERSION:
            return self.default_dir is not None and bool(self.labels(version))
        return (self.version_dir(version) / META_FILE).is_file()

    # --- publishing -------------------------------------------------------------

    def _make_root(self) -> None:
        if not self.root.is_dir():
            self.root.mkdir(parents=True)
            os.chmod(self.root, self.folder_mode)

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
        for name in files:
            if "/" in name or name.endswith(".pt") or name in (META_FILE, ""):
                raise RegistryError(f"{name!r} cannot be published as an extra file")
        sources = [*checkpoints.values(), *files.values()]
        missing = [str(p) for p in sources if not Path(p).is_file()]
        if missing:
            raise RegistryError(f"no such checkpoint: {', '.join(missing)}")
        self._make_root()
        staging = Path(tempfile.mkdtemp(dir=self.root, prefix=f".{version}.", suffix=".partial"))
        os.chmod(staging, self.folder_mode)  # mkdtemp makes 0700 folders
        copies = {f"{label}.pt": source for label, source in checkpoints.items()}
        for name, source in {**copies, **files}.items():
            shutil.copyfile(source, staging / name)
            self._seal(staging / name)
        record = {
            "version": version,
            "published_at": time.time(),
            "checkpoints": {label: str(source) for label, source in checkpoints.items()},
            **(meta or {}),
        }
        write_text_atomically(
            staging / META_FILE, json.dumps(record, indent=2) + "\n", self.file_mode
        )
        os.replace(staging, target)  # a directory rename: all files appear at once
        _fsync_folder(self.root)
        if activate:
            self.activate(version)
        return target

    def _seal(self, path: Path) -> None:
        """The file's mode, and its bytes on disk before anyone is told it exists."""
        os.chmod(path, self.file_mode)
        with path.open("rb") as stream:
            os.fsync(stream.fileno())

    def update_meta(self, version: str, changes: dict) -> dict:
        """Add or replace top-level fields of a version's meta.json (weights stay immutable)."""
        if version == DEFAULT_VERSION or not (self.version_dir(version) / META_FILE).is_file():
            raise RegistryError(f"no version {version!r} in {self.root}")
        with self._locked():
            meta = {**self.meta(version), **changes}
            write_text_atomically(
                self.version_dir(version) / META_FILE,
                json.dumps(meta, indent=2) + "\n",
                self.file_mode,
            )
        return meta

    # --- changing the live version: one locked, atomic, fsynced write each -------

    @contextlib.contextmanager
    def _locked(self):
        self._make_root()
        path = self.root / LOCK_FILE
        descriptor = os.open(path, os.O_RDWR | os.O_CREAT, self.file_mode)
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX)
            yield
        finally:
            os.close(descriptor)  # closing releases the lock

    def _change(self, action: str, version: str, stack_change, **details) -> str:
        """Make `version` live with `action`; `stack_change(stack, previous)` gives the new
        rollback stack. Returns the version that was live. Call with the lock held."""
        state = self._reconciled_state()
        previous = state.get("active") or DEFAULT_VERSION
        entry = {"at": time.time(), "action": action, "from": previous, "to": version, **details}
        new_state = {
            "active": version,
            "rollback": stack_change(list(state.get("rollback", [])), previous),
            "history": [*state.get("history", []), entry],
        }
        write_text_atomically(
            self.root / STATE_FILE, json.dumps(new_state, indent=1) + "\n", self.file_mode
        )  # the commit: killed before this line, nothing changed; after, all of it
        for legacy in (LEGACY_ACTIVE, LEGACY_PROMOTIONS):
            (self.root / legacy).unlink(missing_ok=True)
        self._broadcast(version)
        return previous

    def _reconciled_state(self) -> dict:
        """STATE.json, squared with the Redis key when there is one: a change whose
        broadcast was cut short is broadcast now; a key set by hand is recorded."""
        state = self._state()
        keyed = self._redis_active()
        recorded = state.get("active")
        if keyed is None or keyed == recorded:
            return state
        last = (state.get("history") or [{}])[-1]
        if recorded is not None and last.get("to") == recorded and last.get("from") == keyed:
            self._broadcast(recorded)  # committed, then killed before the SET
            return state
        entry = {"at": time.time(), "action": "set-in-redis", "from": recorded, "to": keyed}
        return {**state, "active": keyed, "history": [*state.get("history", []), entry]}

    def _broadcast(self, version: str) -> None:
        if self.redis is not None and self.key:
            self.redis.set(self.key, version)

    def activate(self, version: str) -> None:
        """Make `version` live unchecked, with no rollback entry (recorded in the history)."""
        if not self._exists(version):
            raise RegistryError(f"no version {version!r} in {self.root}")
        with self._locked():
            self._change("activate", version, lambda stack, _previous: stack)

    def check_loads(self, version: str) -> list[str]:
        """Why `version` would not load in a fresh worker, one line per label (empty: it
        loads). Checked once per version: the result is kept with the checkpoints' sha256."""
        labels = sorted({*self.labels(version), *self.labels(self.active_version())})
        digests = {}
        for label in labels:
            path = self.version_dir(version) / f"{label}.pt"
            digests[label] = _sha256(path) if path.is_file() else None
        meta = self.meta(version) if version != DEFAULT_VERSION else {}
        if meta.get("loads") == digests:
            return []
        from worker.service import check_loads  # imports torch: only when there is a check to do

        problems = check_loads(self, version, labels)
        if not problems and version != DEFAULT_VERSION:
            self.update_meta(version, {"loads": digests})
        return problems

    def promote(self, version: str, force: bool = False, by: str | None = None) -> str:
        """Make `version` live and record what it replaced; returns that version.

        Refuses a version that does not load (see `check_loads`) unless `force`. Checks
        on quality belong to the caller (`worker.retraining.promote_checked`). `by` names
        who asked (an operator), recorded in the history entry.
        """
        if not self._exists(version):
            raise RegistryError(f"no version {version!r} in {self.root}")
        problems = self.check_loads(version)
        if problems and not force:
            raise RegistryError(
                f"{version!r} does not load ({'; '.join(problems)}); not promoted "
                "(forced, workers keep serving the last version that loads)"
            )
        with self._locked():
            if self.active_version() == version:
                return version
            return self._change(
                "promote",
                version,
                lambda stack, previous: [*stack, previous],
                forced=force,
                loads=not problems,
                **({"by": by} if by else {}),
            )

    def rollback(self, by: str | None = None) -> tuple[str, str]:
        """Go back to the version the last promotion replaced; returns (from, to)."""
        with self._locked():
            stack = self._reconciled_state().get("rollback", [])
            if not stack:
                raise RegistryError("nothing to roll back to: no promotion has been made")
            previous = stack[-1]
            if not self._exists(previous):
                raise RegistryError(f"cannot roll back to {previous!r}: it is not in {self.root}")
            current = self._change(
                "rollback",
                previous,
                lambda old, _previous: old[:-1],
                **({"by": by} if by else {}),
            )
        return current, previous

    def discard(self, version: str, by: str | None = None) -> dict:
        """Mark `version` discarded (`discarded_at`, and `discarded_by`): it stays in the
        registry, and the promotion check refuses it from then on unless forced."""
        return self.update_meta(
            version, {"discarded_at": time.time(), **({"discarded_by": by} if by else {})}
        )


def registry_from_settings(settings) -> "ModelRegistry":
    """The registry the settings name, reading the active version from Redis if asked to."""
    mode = int(settings.registry_file_mode, 8)
    if not settings.registry_redis_key:
        return ModelRegistry(settings.registry_dir, settings.models_dir, file_mode=mode)
    import redis

    client = redis.Redis.from_url(settings.redis_url, decode_responses=True)
    key = f"{settings.queue_prefix}:registry:active"
    return ModelRegistry(settings.registry_dir, settings.models_dir, client, key, mode)
