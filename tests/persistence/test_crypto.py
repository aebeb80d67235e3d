"""The secret key: where it comes from, how it is protected, and what a wrong key says."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest
from cryptography.fernet import Fernet
from sqlalchemy import Engine

from app.persistence.crypto import (
    KEY_FILE_NAME,
    SECRET_KEY_ENV,
    SecretBox,
    SecretKeyError,
    load_secret_key,
)
from app.persistence.db import session_scope
from app.persistence.repositories import (
    create_instance,
    load_connection,
    publish_version,
    save_integration,
    set_connection,
)
from runtime.model import Integration
from tests.stored import stored_bytes

SECRET = "sk_live_do-not-store-me-4711"


def test_key_file_is_created_private_and_reused(data_dir: Path) -> None:
    key = load_secret_key(data_dir)
    path = data_dir / KEY_FILE_NAME
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert load_secret_key(data_dir) == key
    assert [p.name for p in data_dir.iterdir()] == [KEY_FILE_NAME]  # no temp file left


def test_key_from_environment_wins_and_writes_no_file(
    data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    key = Fernet.generate_key()
    monkeypatch.setenv(SECRET_KEY_ENV, key.decode())
    assert load_secret_key(data_dir) == key
    assert not (data_dir / KEY_FILE_NAME).exists()


def test_malformed_key_in_environment_is_named(
    data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(SECRET_KEY_ENV, "too-short")
    with pytest.raises(SecretKeyError, match=f"{SECRET_KEY_ENV} is not a valid key"):
        load_secret_key(data_dir)


def test_key_file_readable_by_others_is_refused(data_dir: Path) -> None:
    load_secret_key(data_dir)
    (data_dir / KEY_FILE_NAME).chmod(0o644)
    with pytest.raises(SecretKeyError, match="chmod 600"):
        load_secret_key(data_dir)


def test_wrong_key_gives_a_clear_error() -> None:
    token = SecretBox(Fernet.generate_key()).encrypt({"token": SECRET})
    with pytest.raises(SecretKeyError, match="the key changed since it was stored"):
        SecretBox(Fernet.generate_key()).decrypt(token, what="Connection 'crm'")


def test_connections_are_encrypted_at_rest(engine: Engine, data_dir: Path) -> None:
    box = SecretBox.from_data_dir(data_dir)
    with session_scope(engine) as session:
        save_integration(session, Integration(name="CRM"))
        instance = create_instance(session, "crm-prod", "CRM", publish_version(session, "CRM"))
        set_connection(session, box, instance, "crm", "bearer", {"token": SECRET})
    with session_scope(engine) as session:
        assert load_connection(session, box, instance, "crm") == ("bearer", {"token": SECRET})
        other = SecretBox(Fernet.generate_key())
        with pytest.raises(SecretKeyError, match="Connection 'crm' cannot be decrypted"):
            load_connection(session, other, instance, "crm")
    stored = stored_bytes(engine, data_dir)
    assert b"crm-prod" in stored  # what was stored shows: the instance's name
    assert SECRET.encode() not in stored
    assert (data_dir / KEY_FILE_NAME).read_bytes().strip() not in stored
