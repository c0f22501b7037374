"""A redis-server of one's own on this machine, for benches and tests that restart it.

Never the shared server: it listens on a free loopback port, keeps its files in a folder
of its own, and is started, crashed, shut down and restarted on purpose, with or without
an append-only file (AOF), to show what the queue does when Redis goes away.
"""

import shutil
import socket
import subprocess
import time
from pathlib import Path

from moodmoji.errors import MoodmojiError

_START_S = 20.0  # longest wait for a (re)started server to answer PING, AOF loaded


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class LocalRedis:
    """One redis-server process on 127.0.0.1; `appendonly` persists to an AOF in `directory`
    (fsync every second, as deploy/ runs it), so a restart keeps the queue."""

    def __init__(self, directory: Path, appendonly: bool = False, port: int | None = None):
        self.directory = Path(directory)
        self.appendonly = appendonly
        self.port = port or free_port()
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        binary = shutil.which("redis-server") or "/usr/bin/redis-server"
        if not Path(binary).is_file():
            raise MoodmojiError("no redis-server on this machine (apt install redis-server)")
        self.directory.mkdir(parents=True, exist_ok=True)
        persistence = ["--appendonly", "yes", "--appendfsync", "everysec"]
        self.process = subprocess.Popen(
            [
                binary,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                *(persistence if self.appendonly else ["--appendonly", "no"]),
                "--dir",
                str(self.directory),
            ],
            stdout=subprocess.DEVNULL,
        )
        self._wait_until_serving()

    def _wait_until_serving(self) -> None:
        import redis

        client = redis.Redis(port=self.port)
        give_up = time.monotonic() + _START_S
        try:
            while True:
                try:
                    if client.ping():  # answers LOADING until the AOF is read
                        return
                except (redis.ConnectionError, redis.BusyLoadingError):
                    if self.process.poll() is not None or time.monotonic() > give_up:
                        raise MoodmojiError(
                            f"redis-server on port {self.port} did not start"
                        ) from None
                    time.sleep(0.05)
        finally:
            client.close()

    def kill(self) -> None:
        """Crash it (SIGKILL): without an AOF everything is gone; with one, at most the
        last second of writes."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()

    def shutdown(self) -> None:
        """A clean SHUTDOWN: the AOF is flushed first."""
        import redis

        if self.process is None or self.process.poll() is not None:
            return
        client = redis.Redis(port=self.port)
        try:
            client.shutdown(nosave=not self.appendonly)
        except redis.ConnectionError:
            pass  # it closes the connection as it goes
        finally:
            client.close()
        self.process.wait(timeout=30)

    def rewrite_aof(self) -> None:
        """BGREWRITEAOF, and wait for it: the rewrite is what Redis 7.0/7.2 restore a
        stale consumer-group `entries-read` from."""
        import redis

        client = redis.Redis(port=self.port)
        try:
            client.bgrewriteaof()
            give_up = time.monotonic() + _START_S
            while client.info("persistence")["aof_rewrite_in_progress"]:
                if time.monotonic() > give_up:
                    raise MoodmojiError("the AOF rewrite did not finish")
                time.sleep(0.05)
        finally:
            client.close()

    def version(self) -> tuple[int, ...]:
        import redis

        client = redis.Redis(port=self.port)
        try:
            return tuple(int(part) for part in client.info("server")["redis_version"].split("."))
        finally:
            client.close()
