"""``beacon-adapter bucket KEY``: where a submitter lands under the current rollout env.

Support answers "why did (or didn't) my job go cross-region?" with this. It reads only
the rollout variables, never the signing key, so it is safe to run anywhere.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

from adapter.config import ConfigError, rollout_policy_from_env
from adapter.jobs.rollout import choose, normalise_identity


def _bucket(args: argparse.Namespace) -> int:
    try:
        policy = rollout_policy_from_env(os.environ)
    except ConfigError as exc:
        print(f"beacon-adapter bucket: {exc}", file=sys.stderr)
        return 2
    key = normalise_identity(args.key)
    if not key:
        print("beacon-adapter bucket: KEY is empty", file=sys.stderr)
        return 2
    # The CLI takes the key itself, so it stands in as the only identity of a spec.
    choice = choose(policy, {"public_key": key})
    verdict = "selected" if choice.selected else "not selected"
    rows = (
        ("key", key),
        ("salt", policy.salt),
        ("bucket", str(choice.bucket)),
        ("percent", f"{policy.percent:.2f} (selected when bucket < {policy.threshold})"),
        ("decision", f"{verdict} ({choice.reason})"),
    )
    for name, value in rows:
        print(f"{name:<9} {value}")
    return 0


def register(subparsers: Any) -> None:
    """Add the ``bucket`` command to the ``beacon-adapter`` CLI."""
    parser = subparsers.add_parser(
        "bucket",
        help="show a submitter's rollout bucket and decision under the current environment",
        description=(
            "KEY is a wallet address or public key (the rollout's sticky key). Reads "
            "ADAPTER_ROLLOUT_PERCENT, ADAPTER_ROLLOUT_SALT, ADAPTER_ROLLOUT_ALLOWLIST and "
            "ADAPTER_ROLLOUT_DENYLIST from the environment."
        ),
    )
    parser.add_argument("key", metavar="KEY")
    parser.set_defaults(handler=_bucket)
