"""`python -m examples.demoapps [--crm-port 8091] [--acme-port 8092] [--data-dir DIR]`."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from examples.demoapps.delivery import RetryPolicy
from examples.demoapps.runner import (
    DEFAULT_ACME_KEY,
    DEFAULT_ACME_PORT,
    DEFAULT_CRM_KEY,
    DEFAULT_CRM_PORT,
    DEFAULT_DATA_DIR,
    DEFAULT_TOKEN_TTL,
    run,
)


def main(argv: Sequence[str] | None = None) -> int:
    """Parse the command line and run both demo apps."""
    parser = argparse.ArgumentParser(
        prog="python -m examples.demoapps",
        description="Run the demo CRM and Acme apps on 127.0.0.1 until interrupted.",
    )
    parser.add_argument("--crm-port", type=int, default=DEFAULT_CRM_PORT, help="CRM port.")
    parser.add_argument("--acme-port", type=int, default=DEFAULT_ACME_PORT, help="Acme port.")
    parser.add_argument(
        "--data-dir", type=Path, default=DEFAULT_DATA_DIR, help="Folder of the SQLite files."
    )
    parser.add_argument("--crm-api-key", default=DEFAULT_CRM_KEY, help="The CRM's API key.")
    parser.add_argument("--acme-api-key", default=DEFAULT_ACME_KEY, help="Acme's API key.")
    parser.add_argument(
        "--retry-delay", type=float, default=1.0, help="Seconds before the first redelivery."
    )
    parser.add_argument(
        "--max-retry-delay", type=float, default=60.0, help="Longest wait between redeliveries."
    )
    parser.add_argument(
        "--max-attempts", type=int, default=10, help="Attempts per delivery before giving up."
    )
    parser.add_argument(
        "--crm-token-ttl",
        type=float,
        default=DEFAULT_TOKEN_TTL,
        help="Seconds a CRM OAuth access token lives.",
    )
    args = parser.parse_args(argv)
    if args.crm_token_ttl <= 0:
        parser.error("--crm-token-ttl must be > 0")
    if args.retry_delay <= 0 or args.max_retry_delay <= 0 or args.max_attempts < 1:
        parser.error("--retry-delay and --max-retry-delay must be > 0, --max-attempts >= 1")
    policy = RetryPolicy(args.retry_delay, args.max_retry_delay, args.max_attempts)
    return run(
        args.data_dir,
        crm_port=args.crm_port,
        acme_port=args.acme_port,
        crm_key=args.crm_api_key,
        acme_key=args.acme_api_key,
        policy=policy,
        token_ttl=args.crm_token_ttl,
    )


if __name__ == "__main__":
    sys.exit(main())
