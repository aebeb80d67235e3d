"""Flowyard's database: tables, engine, migrations, encryption, repositories and recorders.

See `README.md` next to this file for the contracts.
"""

from app.persistence.crypto import SecretBox, SecretKeyError, load_secret_key
from app.persistence.db import create_db_engine, database_url, open_database, session_scope
from app.persistence.migrations import SCHEMA_VERSION, MigrationError, migrate
from app.persistence.recording import SqlRecorder, SqlStateBackend
from app.persistence.repositories import (
    NotFound,
    PersistenceError,
    StaleRevision,
    create_instance,
    load_connection,
    load_flow,
    load_integration,
    publish_version,
    save_flow,
    save_integration,
    set_config_values,
    set_connection,
)

__all__ = [
    "SCHEMA_VERSION",
    "MigrationError",
    "NotFound",
    "PersistenceError",
    "SecretBox",
    "SecretKeyError",
    "SqlRecorder",
    "SqlStateBackend",
    "StaleRevision",
    "create_db_engine",
    "create_instance",
    "database_url",
    "load_connection",
    "load_flow",
    "load_integration",
    "load_secret_key",
    "migrate",
    "open_database",
    "publish_version",
    "save_flow",
    "save_integration",
    "session_scope",
    "set_config_values",
    "set_connection",
]
