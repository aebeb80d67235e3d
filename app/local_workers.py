"""`flowyard serve --worker-processes N`: N `flowyard worker` processes beside the server.

On a shared database (PostgreSQL) a second core is used the same way a second host is: by
`flowyard worker` processes that claim, run and record executions themselves. The server starts
them with its own data directory and secret key, restarts one that dies, and stops them (SIGTERM,
so they finish or hand back their work) when it stops. SQLite keeps one process per file.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import threading
from pathlib import Path

from app.persistence.crypto import SECRET_KEY_ENV, load_secret_key
from app.settings import Settings

__all__ = ["LocalWorkers"]

log = logging.getLogger("flowyard.workers")


class LocalWorkers:
    """Keeps `count` worker processes running until `stop()`."""

    def __init__(self, settings: Settings, count: int, *, grace: float = 10.0) -> None:
        self.count = count
        self.grace = grace
        self._settings = settings
        self._processes: list[subprocess.Popen[bytes]] = []
        self._stopping = threading.Event()
        self._watch = threading.Thread(target=self._keep_running, name="flowyard-local-workers")

    def _command(self) -> list[str]:
        command = [sys.executable, "-m", "app", "worker"]
        command += ["--data-dir", str(self._settings.data_dir)]
        command += ["--grace", str(self.grace)]  # each runs the default number of executions
        command += ["--exit-with", str(os.getpid())]
        if self._settings.components_dir is not None:
            command += ["--components-dir", str(self._settings.components_dir)]
        return command

    def _spawn(self) -> subprocess.Popen[bytes]:
        env = dict(os.environ)
        # the key the server uses, whether it came from the environment or the data directory
        env[SECRET_KEY_ENV] = load_secret_key(self._settings.data_dir).decode()
        return subprocess.Popen(self._command(), env=env, cwd=Path.cwd())

    def start(self) -> None:
        self._processes = [self._spawn() for _ in range(self.count)]
        self._watch.start()

    def _keep_running(self) -> None:
        while not self._stopping.wait(1.0):
            for index, process in enumerate(self._processes):
                if process.poll() is not None and not self._stopping.is_set():
                    log.warning(
                        "worker process %d exited (%s); starting another",
                        process.pid,
                        process.returncode,
                    )
                    self._processes[index] = self._spawn()

    @property
    def pids(self) -> list[int]:
        return [process.pid for process in self._processes]

    def stop(self) -> None:
        """SIGTERM every worker, wait for them to finish or hand back their work, then kill."""
        self._stopping.set()
        if self._watch.is_alive():
            self._watch.join()
        for process in self._processes:
            if process.poll() is None:
                process.terminate()
        for process in self._processes:
            try:
                process.wait(self.grace + 5)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(5)
