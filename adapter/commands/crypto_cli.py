"""Operator commands for signature debugging: ``canonical``, ``verify``, ``keygen``, ``sign``.

A runner 400 "Invalid JobSpec signature" means our bytes and the runner's differ; these
commands show the exact bytes the runner verifies and which signer a signature came from.
Input is a bare JobSpec or a cross-region request (``{"jobspec": ...}``), from a file or
stdin. Errors are one line on stderr with exit status 1.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from adapter.jobs.canonical import canonical_v1
from adapter.jobs.gojson import GoDecodeError, GoMarshalError
from adapter.jobs.jobspec import (
    decode_cross_region_request,
    decode_jobspec,
    is_cross_region_request,
    marshal_go,
)
from adapter.jobs.signing import (
    ENV_KEY,
    ENV_KEY_FILE,
    ServiceKey,
    SigningKeyError,
    check_runner_v1,
    check_spec_signature,
    sign_jobspec,
)
from adapter.jobs.trust import TrustedKeys, TrustFileError

PROG = "beacon-adapter"


class _CommandError(Exception):
    """A failure to report as one line on stderr."""


def _read_input(source: str) -> bytes:
    if source == "-":
        return sys.stdin.buffer.read()
    try:
        return Path(source).read_bytes()
    except OSError as exc:
        raise _CommandError(f"cannot read {source}: {exc.strerror}") from None


def _decode(data: bytes) -> tuple[dict[str, Any] | None, dict[str, Any]]:
    """(the cross-region request or None, the JobSpec) as the runner decodes them."""
    try:
        if is_cross_region_request(data):
            request = decode_cross_region_request(data)
            return request, request["jobspec"]
        return None, decode_jobspec(data)
    except GoMarshalError as exc:
        raise _CommandError(
            f"the runner decodes this spec but cannot canonicalise it: {exc}"
        ) from None
    except GoDecodeError as exc:
        raise _CommandError(f"the runner could not decode this spec: {exc}") from None


def _write(data: bytes) -> None:
    sys.stdout.flush()
    sys.stdout.buffer.write(data)
    sys.stdout.buffer.flush()


def _run(command: str, action: Any, args: argparse.Namespace) -> int:
    try:
        status: int = action(args)
    except (_CommandError, SigningKeyError, TrustFileError) as exc:
        print(f"{PROG} {command}: error: {exc}", file=sys.stderr)
        return 1
    return status


def _canonical(args: argparse.Namespace) -> int:
    _, spec = _decode(_read_input(args.file))
    _write(canonical_v1(spec))
    return 0


def _verify(args: argparse.Namespace) -> int:
    trusted = TrustedKeys.load(args.trusted_keys) if args.trusted_keys else None
    data = _read_input(args.file)
    check = check_spec_signature(data)
    if check.scheme is not None:
        print(f"verified: yes, under scheme {check.scheme}")
    else:
        print(f"verified: no: {check.error}")
    print(f"public_key: {check.public_key_b64 or '(none)'}")
    runner = check_runner_v1(data)
    if check.verified:
        verdict = "accepts it" if runner.verified else f"rejects it ({runner.error})"
        print(f"runner V1 (cross-region endpoint): {verdict}")
    if trusted is not None and check.public_key_b64:
        status = trusted.status(check.public_key_b64, datetime.now(UTC))
        kid = trusted.kid_for(check.public_key_b64)
        print(f"trust: {status}" + (f" (kid {kid})" if kid else "") + f" in {trusted.path}")
    return 0 if check.verified else 1


def _keygen(args: argparse.Namespace) -> int:
    key = ServiceKey.from_seed(os.urandom(32))
    kid = args.kid or f"beacon-adapter-{datetime.now(UTC):%Y%m%d}"
    entry = {"kid": kid, "public_key": key.public_key_b64, "status": "active"}
    print(f"# Secret (32-byte seed). Set it as {ENV_KEY}, or store it in the file named by")
    print(f"# {ENV_KEY_FILE}. Never log or commit it.")
    print(f"{ENV_KEY}={key.seed_b64}")
    print("# Public key (what the runner sees in jobspec.public_key):")
    print(f"public_key: {key.public_key_b64}")
    print("# Entry for the runner's TRUSTED_KEYS_FILE (a JSON array of these):")
    print(json.dumps(entry, separators=(",", ":")))
    return 0


def _sign(args: argparse.Namespace) -> int:
    key = ServiceKey.from_env(os.environ)
    if key is None:
        raise _CommandError(f"set {ENV_KEY} or {ENV_KEY_FILE} to the service signing key")
    request, spec = _decode(_read_input(args.file))
    signed = sign_jobspec(spec, key)
    output: dict[str, Any] = signed if request is None else {**request, "jobspec": signed}
    _write(marshal_go(output) + b"\n")
    return 0


def _add(
    subparsers: Any, name: str, action: Any, help_text: str, *, takes_file: bool = True
) -> argparse.ArgumentParser:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        name, help=help_text, description=help_text
    )
    if takes_file:
        parser.add_argument(
            "file",
            nargs="?",
            default="-",
            metavar="FILE|-",
            help="bare JobSpec or cross-region request JSON (default: stdin)",
        )
    parser.set_defaults(handler=lambda args: _run(name, action, args))
    return parser


def register(subparsers: Any) -> None:
    """Add the signing and canonicalisation commands to the ``beacon-adapter`` CLI."""
    _add(
        subparsers,
        "canonical",
        _canonical,
        "print the runner's V1 canonical bytes of a spec (no trailing newline)",
    )
    verify = _add(
        subparsers,
        "verify",
        _verify,
        "check a spec's signature under every known signer scheme",
    )
    verify.add_argument(
        "--trusted-keys",
        metavar="FILE",
        help="also report the key's status in this runner TRUSTED_KEYS_FILE",
    )
    keygen = _add(
        subparsers,
        "keygen",
        _keygen,
        "generate a service signing key and its trusted-keys entry",
        takes_file=False,
    )
    keygen.add_argument("--kid", help="key id for the trusted-keys entry")
    _add(
        subparsers,
        "sign",
        _sign,
        f"sign a spec with the key in {ENV_KEY} or {ENV_KEY_FILE} and print it, as the "
        "runner will decode it (unknown fields dropped)",
    )
