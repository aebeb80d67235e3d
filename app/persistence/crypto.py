"""Encryption of connection values at rest (Fernet), with a key that never enters the database.

The key comes from `FLOWYARD_SECRET_KEY` (a Fernet key: 32 url-safe base64 bytes, as
`Fernet.generate_key()` prints) or from `secret.key` in the data directory, created on first use
with mode 0600. Losing or changing the key makes stored connections unreadable:
`SecretKeyError` says so instead of a bare `InvalidToken`.
"""

from __future__ import annotations

import contextlib
import json
import os
import stat
from pathlib import Path
from typing import Any

from cryptography.fernet import Fernet, InvalidToken

__all__ = ["KEY_FILE_NAME", "SECRET_KEY_ENV", "SecretBox", "SecretKeyError", "load_secret_key"]

SECRET_KEY_ENV = "FLOWYARD_SECRET_KEY"
KEY_FILE_NAME = "secret.key"


class SecretKeyError(Exception):
    """The secret key is missing, malformed, exposed, or not the key the values were stored with."""


def _check(key: bytes, where: str) -> bytes:
    try:
        Fernet(key)
    except ValueError:
        raise SecretKeyError(
            f"{where} is not a valid key: it must be 32 url-safe base64-encoded bytes. "
            'Generate one with `python -c "from cryptography.fernet import Fernet; '
            'print(Fernet.generate_key().decode())"`.'
        ) from None
    return key


def load_secret_key(data_dir: Path, *, create: bool = True) -> bytes:
    """The key from `FLOWYARD_SECRET_KEY`, else `<data_dir>/secret.key` (created 0600 if absent,
    unless `create` is false: a process joining a shared database must use the key its
    connections were encrypted with, never a new one)."""
    configured = os.environ.get(SECRET_KEY_ENV, "").strip()
    if configured:
        return _check(configured.encode("ascii", "replace"), SECRET_KEY_ENV)
    path = data_dir / KEY_FILE_NAME
    if not create and not path.exists():
        raise SecretKeyError(
            f"No secret key: set {SECRET_KEY_ENV} (the key of the server that saved the "
            f"connections) or copy its {KEY_FILE_NAME} to {path}."
        )
    data_dir.mkdir(parents=True, exist_ok=True)
    if not path.exists():
        _create_key_file(path)
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o077:
        raise SecretKeyError(
            f"{path} can be read by other users (mode {mode:o}). "
            f"Run `chmod 600 {path}` and start again."
        )
    return _check(path.read_bytes().strip(), str(path))


def _create_key_file(path: Path) -> None:
    """Write a new key to a private temp file, then link it into place: the key file is never seen
    empty or half-written, and of two processes starting at once exactly one key wins."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        with os.fdopen(fd, "wb") as file:
            file.write(Fernet.generate_key() + b"\n")
            file.flush()
            os.fsync(file.fileno())
        with contextlib.suppress(FileExistsError):
            os.link(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


class SecretBox:
    """Encrypts and decrypts JSON values with one Fernet key."""

    def __init__(self, key: bytes) -> None:
        self._fernet = Fernet(key)

    @classmethod
    def from_data_dir(cls, data_dir: Path) -> SecretBox:
        return cls(load_secret_key(data_dir))

    def encrypt(self, value: Any) -> bytes:
        """The value as JSON, encrypted and authenticated."""
        return self._fernet.encrypt(json.dumps(value, separators=(",", ":")).encode())

    def decrypt(self, token: bytes, *, what: str = "a stored value") -> Any:
        """The value back; `SecretKeyError` if this key did not encrypt it."""
        try:
            plain = self._fernet.decrypt(token)
        except InvalidToken:
            raise SecretKeyError(
                f"{what} cannot be decrypted with the current secret key: the key changed since "
                f"it was stored. Restore the previous key ({SECRET_KEY_ENV} or "
                f"{KEY_FILE_NAME} in the data directory), or enter the connection again."
            ) from None
        return json.loads(plain)
