"""Server settings: command-line options over `FLOWYARD_*` environment variables over defaults."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["Settings"]


def _env_float(name: str, default: float) -> float:
    value = os.environ.get(name)
    return float(value) if value else default


@dataclass(frozen=True, kw_only=True)
class Settings:
    """Everything the server is configured with. `public_url` is what webhook URLs start with."""

    host: str = "127.0.0.1"
    port: int = 8080
    data_dir: Path = field(
        default_factory=lambda: Path(os.environ.get("FLOWYARD_DATA_DIR", ".flowyard"))
    )
    public_url: str = ""
    components_dir: Path | None = None
    workers: int = 160
    """Executions run at once by this server, across flows (mostly waiting on I/O: the engine,
    the outbound call, the commit of their records); see docs/performance.md for how the default
    was chosen."""
    lease_seconds: float = field(default_factory=lambda: _env_float("FLOWYARD_LEASE_SECONDS", 60))
    """A claimed inbox row whose lease expired (its worker died) is claimed again."""
    sync_timeout: float = 10.0
    """Default seconds a synchronous webhook waits for its flow's reply."""
    max_body_bytes: int = 1_048_576
    max_headers: int = 200
    """Most header fields a request may have (more: 431)."""
    max_header_bytes: int = 65_536
    """Largest request line plus headers, in bytes (larger: 431)."""
    read_timeout: float = field(default_factory=lambda: _env_float("FLOWYARD_READ_TIMEOUT", 30))
    """Seconds a request's headers and body may take to arrive after its first byte (then 408)."""
    retention_days: float = field(default_factory=lambda: _env_float("FLOWYARD_RETENTION_DAYS", 30))
    ui: bool = True
    """Mount the NiceGUI pages (off for API-only embedding)."""
    retention_max_executions: int = 100_000
    """Oldest finished executions beyond this count are pruned."""
    settle_heap: bool = False
    """Tune the garbage collector for this process once started (`app.heap`): set by `flowyard
    serve` and `desktop`, which own their process; off for an app built inside another one."""

    @property
    def base_url(self) -> str:
        """The URL the server is reached at, without a trailing slash."""
        if self.public_url:
            return self.public_url.rstrip("/")
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    @property
    def loopback_only(self) -> bool:
        return self.host in ("127.0.0.1", "localhost", "::1")
