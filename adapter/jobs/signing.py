"""Ed25519 keys, signatures and signature checks, with the runner's strictness.

Trust assumption: the service key is the only thing that makes the runner accept a
rewritten job, so the secret never appears in a repr, str, log or error message. A portal
signature is only *recognised* (which signer generation made it); the portal key leaked
through nonce reuse (``docs/runner-contract.md`` §8), so a match proves nothing about the sender.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from nacl.exceptions import BadSignatureError
from nacl.signing import SigningKey, VerifyKey

from adapter.jobs.canonical import (
    PORTAL_04B8886,
    PORTAL_5FA6ECE,
    PORTAL_21A0059,
    PORTAL_C4CBB02,
    PORTAL_SCHEMES,
    RUNNER_V1,
    SCHEMES,
    canonical_v1,
    canonical_v1_bytes,
    parse_js,
    portal_messages,
)
from adapter.jobs.gojson import GoDecodeError, fold_key
from adapter.jobs.jobspec import (
    decode_cross_region_request,
    decode_jobspec,
    is_cross_region_request,
    marshal_go,
)

__all__ = [
    "ENV_KEY",
    "ENV_KEY_FILE",
    "SCHEMES",
    "ServiceKey",
    "SignatureCheck",
    "SignedSpec",
    "SigningKeyError",
    "check_runner_v1",
    "check_spec_signature",
    "decode_std_base64",
    "recognise_signer",
    "sign_jobspec",
    "sign_v1",
    "verify_b64",
]

ENV_KEY: Final = "ADAPTER_SIGNING_KEY"
ENV_KEY_FILE: Final = "ADAPTER_SIGNING_KEY_FILE"
SEED_SIZE: Final = 32
PUBLIC_KEY_SIZE: Final = 32
SIGNATURE_SIZE: Final = 64

_STD_BASE64: Final = re.compile(r"(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?")


class SigningKeyError(ValueError):
    """The service key could not be loaded. The message never contains key material."""


def decode_std_base64(text: str) -> bytes:
    """Go's ``base64.StdEncoding.DecodeString``: padded standard alphabet; CR/LF ignored.

    Raises ``ValueError`` for unpadded, URL-safe or otherwise malformed input.
    """
    cleaned = text.replace("\r", "").replace("\n", "")
    if _STD_BASE64.fullmatch(cleaned) is None:
        raise ValueError("illegal base64 data (want padded standard encoding)")
    return base64.b64decode(cleaned, validate=True)


@dataclass(frozen=True, slots=True, repr=False)
class ServiceKey:
    """The adapter's Ed25519 signing key. Only the public half is ever shown."""

    _seed: bytes = field(compare=False)
    public_key: bytes
    _signer: SigningKey = field(compare=False)

    def __repr__(self) -> str:
        return f"ServiceKey(public_key_b64={self.public_key_b64!r})"

    __str__ = __repr__

    @classmethod
    def from_seed(cls, seed: bytes) -> ServiceKey:
        """Build from the 32-byte RFC 8032 seed (what PyNaCl calls the private key)."""
        if len(seed) != SEED_SIZE:
            raise SigningKeyError(f"signing key seed must be {SEED_SIZE} bytes, got {len(seed)}")
        signer = SigningKey(bytes(seed))
        return cls(bytes(seed), bytes(signer.verify_key), signer)

    @classmethod
    def from_b64(cls, text: str) -> ServiceKey:
        """Build from base64 of a 32-byte seed or the runner tooling's 64-byte seed‖public key."""
        try:
            raw = decode_std_base64(text.strip())
        except (ValueError, binascii.Error):
            raise SigningKeyError("signing key is not valid padded standard base64") from None
        if len(raw) == SEED_SIZE:
            return cls.from_seed(raw)
        if len(raw) == SEED_SIZE + PUBLIC_KEY_SIZE:
            key = cls.from_seed(raw[:SEED_SIZE])
            if key.public_key != raw[SEED_SIZE:]:
                raise SigningKeyError(
                    "signing key is 64 bytes but its public half does not match its seed"
                )
            return key
        raise SigningKeyError(f"signing key must decode to 32 or 64 bytes, got {len(raw)}")

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> ServiceKey | None:
        """Load from ``ADAPTER_SIGNING_KEY`` or the file named by ``ADAPTER_SIGNING_KEY_FILE``.

        Returns ``None`` when neither is set; setting both is an error.
        """
        inline = env.get(ENV_KEY, "")
        path = env.get(ENV_KEY_FILE, "")
        if inline and path:
            raise SigningKeyError(f"set only one of {ENV_KEY} and {ENV_KEY_FILE}")
        if inline:
            try:
                return cls.from_b64(inline)
            except SigningKeyError as exc:
                raise SigningKeyError(f"{ENV_KEY}: {exc}") from None
        if path:
            try:
                text = Path(path).read_text(encoding="ascii")
            except (OSError, UnicodeDecodeError) as exc:
                reason = exc.strerror if isinstance(exc, OSError) else "not ASCII base64"
                raise SigningKeyError(f"{ENV_KEY_FILE}: cannot read {path}: {reason}") from None
            try:
                return cls.from_b64(text)
            except SigningKeyError as exc:
                raise SigningKeyError(f"{ENV_KEY_FILE} ({path}): {exc}") from None
        return None

    @property
    def seed_b64(self) -> str:
        """The secret, for ``keygen`` output only; never log it."""
        return base64.b64encode(self._seed).decode("ascii")

    @property
    def public_key_b64(self) -> str:
        """The public key as the runner expects it: padded standard base64 of 32 bytes."""
        return base64.b64encode(self.public_key).decode("ascii")

    def sign(self, message: bytes) -> bytes:
        """Pure Ed25519 (no pre-hash) over the message itself."""
        signature: bytes = self._signer.sign(message).signature
        return signature

    def sign_b64(self, message: bytes) -> str:
        """The signature as the runner expects it: padded standard base64 (88 characters)."""
        return base64.b64encode(self.sign(message)).decode("ascii")


def _verify_failure(public_key_b64: str, signature_b64: str, message: bytes) -> str | None:
    """Why the runner would reject this signature, or ``None`` if it verifies."""
    if not signature_b64:
        return "signature is required"
    if not public_key_b64:
        return "public key is required"
    try:
        public_key = decode_std_base64(public_key_b64)
    except (ValueError, binascii.Error):
        return "invalid public key: illegal base64 data"
    if len(public_key) != PUBLIC_KEY_SIZE:
        return "invalid public key: invalid public key size"
    try:
        signature = decode_std_base64(signature_b64)
    except (ValueError, binascii.Error):
        return "failed to decode signature: illegal base64 data"
    if len(signature) != SIGNATURE_SIZE:
        return f"signature verification failed (signature is {len(signature)} bytes)"
    try:
        VerifyKey(public_key).verify(message, signature)
    except (BadSignatureError, ValueError):
        return f"signature verification failed (canonical length: {len(message)})"
    return None


def verify_b64(public_key_b64: str, signature_b64: str, message: bytes) -> bool:
    """Verify as the runner does: padded StdEncoding, 32-byte key, 64-byte signature."""
    return _verify_failure(public_key_b64, signature_b64, message) is None


@dataclass(frozen=True, slots=True)
class SignatureCheck:
    """Outcome of checking a spec's own signature: the scheme that matched, or why none did."""

    scheme: str | None
    public_key_b64: str | None
    error: str | None

    @property
    def verified(self) -> bool:
        """True when some scheme in ``SCHEMES`` verified the signature."""
        return self.scheme is not None


def _text(value: Any) -> str:
    return value if isinstance(value, str) else ""


_JOBSPEC_FOLDED: Final = fold_key("jobspec")


def _jobspec_member(body: Mapping[str, Any]) -> object:
    """The jobspec as ``JSON.parse`` holds it: the exact key, else the last folded match."""
    if "jobspec" in body:
        return body["jobspec"]
    matches = [value for key, value in body.items() if fold_key(key) == _JOBSPEC_FOLDED]
    return matches[-1] if matches else None


def _runner_decode(raw_body: bytes, wrapped: bool) -> Mapping[str, Any] | str:
    """The spec as the runner decodes it (unwrapped from a cross-region request when
    ``wrapped``), or why the runner could not decode it."""
    try:
        return (
            decode_cross_region_request(raw_body)["jobspec"]
            if wrapped
            else decode_jobspec(raw_body)
        )
    except GoDecodeError as exc:
        return f"runner could not decode the spec: {exc}"


def _runner_v1_failure(raw_body: bytes, wrapped: bool) -> tuple[str | None, str]:
    """(why V1 fails or None, the public key the runner would use)."""
    decoded = _runner_decode(raw_body, wrapped)
    if isinstance(decoded, str):
        return decoded, ""
    public_key: str = decoded["public_key"]
    return _verify_failure(public_key, decoded["signature"], canonical_v1(decoded)), public_key


def _parse_body(raw_body: bytes) -> tuple[Mapping[str, Any] | None, bool, str | None]:
    """(the spec as JSON.parse sees it, whether the body is a cross-region request, error).

    Whether the body is wrapped follows the runner (``is_cross_region_request``); the spec
    is None when ``JSON.parse`` cannot give one (no portal scheme then applies).
    """
    wrapped = is_cross_region_request(raw_body)
    try:
        body = parse_js(raw_body)
    except ValueError as exc:
        return None, wrapped, f"body is not JSON: {exc}"
    if not isinstance(body, Mapping):
        return None, wrapped, "body is not a JSON object"
    if not wrapped:
        return body, False, None
    spec = _jobspec_member(body)
    return (spec if isinstance(spec, Mapping) else None), True, None


def check_runner_v1(raw_body: bytes) -> SignatureCheck:
    """Would the runner's cross-region endpoint accept this signature (V1 only)?"""
    failure, public_key = _runner_v1_failure(raw_body, is_cross_region_request(raw_body))
    if failure is None:
        return SignatureCheck(RUNNER_V1, public_key, None)
    return SignatureCheck(None, public_key or None, failure)


# Portal generations in the order a signature most likely matches: the current portal
# signs what 21a0059 signed (5fa6ece differs only when min_success_rate is 0); 04b8886
# and c4cbb02 are older. Only the order of the attempts changes, never the name reported.
_LIKELY_PORTAL_ORDER: Final = (PORTAL_21A0059, PORTAL_5FA6ECE, PORTAL_04B8886, PORTAL_C4CBB02)
_VERIFY_FAILED: Final = "signature verification failed"


def _recognise(
    portal_spec: Mapping[str, Any] | None, runner_v1: Callable[[], tuple[str, str, bytes] | str]
) -> SignatureCheck:
    """The first scheme in ``SCHEMES`` whose message verifies, with one verify per message.

    ``portal_spec`` is the spec as ``JSON.parse`` sees it (``None``: no portal scheme can
    apply); ``runner_v1`` gives the runner's (public key, signature, V1 message), or why
    the runner cannot decode the spec, and is only called when no portal scheme verifies.
    Messages are tried most-likely first and each distinct (key, signature, message) is
    verified once; a match is named after the earliest scheme with the same bytes, which is
    what trying every scheme in ``SCHEMES`` order would report (one signature cannot verify
    two different messages).
    """
    failures: dict[tuple[str, str, bytes], str] = {}
    public_key = ""
    if portal_spec is not None:
        public_key = _text(portal_spec.get("public_key"))
        signature = _text(portal_spec.get("signature"))
        messages = portal_messages(portal_spec)
        for scheme in _LIKELY_PORTAL_ORDER:
            attempt = (public_key, signature, messages[scheme])
            if attempt in failures:
                continue
            failure = _verify_failure(*attempt)
            if failure is None:
                earliest = next(s for s in PORTAL_SCHEMES if messages[s] == messages[scheme])
                return SignatureCheck(earliest, public_key, None)
            failures[attempt] = failure
            if not failure.startswith(_VERIFY_FAILED):
                break  # the key or signature itself is unusable: every message fails alike
    v1 = runner_v1()
    if isinstance(v1, str):
        failure, v1_key = v1, ""
    else:
        v1_key = v1[0]
        failure = failures.get(v1) or _verify_failure(*v1)
        if failure is None:
            return SignatureCheck(RUNNER_V1, v1_key, None)
    reasons = [*failures.values(), failure]
    basic = next((r for r in reasons if not r.startswith(_VERIFY_FAILED)), None)
    message = basic or f"signature did not verify under any scheme ({RUNNER_V1}: {failure})"
    return SignatureCheck(None, public_key or v1_key or None, message)


def _runner_v1_attempt(decoded: Mapping[str, Any]) -> tuple[str, str, bytes]:
    return decoded["public_key"], decoded["signature"], canonical_v1(decoded)


def check_spec_signature(raw_body: bytes) -> SignatureCheck:
    """Try every scheme in ``SCHEMES`` order on a bare spec or a cross-region request body.

    The first scheme whose message verifies is reported. Several schemes can produce the
    same message (a portal 5fa6ece spec without ``min_success_rate`` signs exactly what
    21a0059 signed, and usually what V1 signs); the earliest in ``SCHEMES`` is named.
    """
    spec, wrapped, error = _parse_body(raw_body)

    def runner_v1() -> tuple[str, str, bytes] | str:
        decoded = _runner_decode(raw_body, wrapped)
        return decoded if isinstance(decoded, str) else _runner_v1_attempt(decoded)

    if error is not None and isinstance(runner_v1(), str):
        return SignatureCheck(None, None, error)  # neither JSON.parse nor Go can read it
    return _recognise(spec, runner_v1)


def recognise_signer(raw_body: bytes, decoded: Mapping[str, Any]) -> SignatureCheck:
    """The rewrite's check of a bare spec whose runner decode (``decoded``) it already holds.

    As ``check_spec_signature`` for a bare spec, except that the signature is only
    recognised for what the rewrite re-signs: the body is never unwrapped (a ``jobspec``
    member is just an unknown key to the runner's JobSpec), and a portal scheme counts
    only when ``JSON.parse`` reads the same ``public_key`` and ``signature`` as the
    runner's decode (Go also fills them from case-folded keys such as ``Public_Key``).
    Otherwise a trusted key named in one place could vouch for a signature made with
    another. V1 reuses ``decoded`` instead of decoding the body again.
    """
    try:
        parsed = parse_js(raw_body)
    except ValueError:
        parsed = None
    portal_spec = parsed if isinstance(parsed, Mapping) else None
    if portal_spec is not None and (
        portal_spec.get("public_key") != decoded["public_key"]
        or portal_spec.get("signature") != decoded["signature"]
    ):
        portal_spec = None
    return _recognise(portal_spec, lambda: _runner_v1_attempt(decoded))


@dataclass(frozen=True, slots=True)
class SignedSpec:
    """A spec carrying our key and signature, and the exact message the signature covers."""

    spec: dict[str, Any]
    message: bytes

    @property
    def signature_b64(self) -> str:
        """The signature as set in ``spec``."""
        signature: str = self.spec["signature"]
        return signature


def sign_v1(spec: Mapping[str, Any], key: ServiceKey) -> SignedSpec:
    """Sign ``canonical_v1(spec)`` and return the signed copy with that message.

    No shape guard: the caller must check the bytes it sends (``sign_jobspec`` explains).
    """
    message = canonical_v1(spec)
    signed = dict(spec)
    signed["signature"] = key.sign_b64(message)
    signed["public_key"] = key.public_key_b64
    return SignedSpec(signed, message)


def sign_jobspec(
    spec: Mapping[str, Any], key: ServiceKey, *, check_shape: bool = True
) -> dict[str, Any]:
    """Return a copy of a projected spec with ``public_key`` and ``signature`` set.

    The signature covers ``canonical_v1(spec)``. As a guard, the spec must survive the
    runner's decode of ``marshal_go(spec)`` unchanged; otherwise the runner would verify
    different bytes, and this raises ``ValueError`` instead of producing a doomed signature.
    A caller that checks the exact bytes it sends afterwards (the rewrite's self-check)
    may skip the guard with ``check_shape=False``, or use ``sign_v1``.
    """
    signed = sign_v1(spec, key)
    if check_shape and canonical_v1_bytes(marshal_go(spec)) != signed.message:
        raise ValueError("spec is not in the runner's struct shape; project it with decode_jobspec")
    return signed.spec
