"""Two small demo apps for the CRM <-> Acme example: a CRM (standing in for Salesforce) and Acme.

Each is a real HTTP server on 127.0.0.1 with its own SQLite file: accounts and opportunities
over REST, a current-user endpoint, webhook subscriptions whose deliveries are signed with
HMAC-SHA256 and retried with backoff, and a page at `/` listing it all. Start both with
`python -m examples.demoapps` or `flowyard demo-apps`.
"""

from examples.demoapps.delivery import RetryPolicy, sign
from examples.demoapps.runner import (
    DEFAULT_ACME_KEY,
    DEFAULT_ACME_PORT,
    DEFAULT_CRM_KEY,
    DEFAULT_CRM_PORT,
    DEFAULT_DATA_DIR,
    run,
    serve,
)
from examples.demoapps.server import DemoApp
from examples.demoapps.specs import ACME, CRM, AppSpec

__all__ = [
    "ACME",
    "CRM",
    "DEFAULT_ACME_KEY",
    "DEFAULT_ACME_PORT",
    "DEFAULT_CRM_KEY",
    "DEFAULT_CRM_PORT",
    "DEFAULT_DATA_DIR",
    "AppSpec",
    "DemoApp",
    "RetryPolicy",
    "run",
    "serve",
    "sign",
]
