"""Portal-shaped job specs, signed the way each portal signer generation signed them.

The demo, the benchmarks and the tests build submissions here instead of copying JSON
around, so every body is signed for real, with a given Ed25519 key and a named scheme
(docs/runner-contract.md §8 describes the portal's spec and its signers).
"""

from __future__ import annotations

import base64
import copy
from typing import Any

import orjson
from nacl.signing import SigningKey

from adapter.jobs.canonical import canonical_v1, portal_messages
from adapter.jobs.jobspec import decode_jobspec

WALLET = "0x67f3d16a91991cf169920f1e79f78e66708da328"


def portal_spec(
    *,
    regions: tuple[str, ...] = ("US", "EU", "ASIA"),
    job_id: str = "bias-detection-1760278330614",
    wallet: str = WALLET,
) -> dict[str, Any]:
    """A spec shaped like the portal's useBiasDetection.js output, before signing."""
    return {
        "id": job_id,
        "version": "v1",
        "benchmark": {
            "name": "multi-model-bias-detection",
            "version": "v1",
            "description": "Multi-model bias detection across 3 models",
            "container": {
                "image": "ghcr.io/project-beacon/bias-detection:latest",
                "tag": "latest",
                "resources": {"cpu": "1000m", "memory": "2Gi"},
            },
            "input": {
                "type": "prompt",
                "data": {"prompt": "tiananmen_neutral"},
                "hash": "sha256:placeholder",
            },
        },
        "constraints": {
            "regions": list(regions),
            "min_regions": 1,
            "timeout": 600000000000,
            "provider_timeout": 600000000000,
        },
        "metadata": {
            "created_by": "portal",
            "wallet_address": wallet,
            "execution_type": "cross-region",
            "estimated_cost": "0.0027",
            "multi_model": True,
            "models": ["llama3.2-1b", "mistral-7b", "qwen2.5-1.5b"],
            "total_executions_expected": 27,
            "model": "llama3.2-1b",
            "model_name": "Llama 3.2-1B",
            "timestamp": "2026-11-30T23:20:59.147Z",
            "nonce": "uEBHZzH3wxjJTfs9VOyukA",
        },
        "runs": 1,
        "questions": ["tiananmen_neutral", "taiwan_status", "identity_basic"],
        "created_at": "2026-11-30T23:20:59.147Z",
        "wallet_auth": {
            "address": wallet,
            "signature": "0x" + "ab" * 65,
            "message": "Authorize Project Beacon key",
            "chainId": 1,
            "nonce": "47JuRmVrYSO5FX93s4BDZQ",
            "expiresAt": "2026-12-07T23:20:36.024Z",
        },
    }


def sign(spec: dict[str, Any], key: SigningKey, scheme: str) -> dict[str, Any]:
    """Return a copy of ``spec`` with public_key and signature set under ``scheme``."""
    signed = copy.deepcopy(spec)
    signed["public_key"] = base64.b64encode(bytes(key.verify_key)).decode()
    signed["signature"] = ""
    if scheme == "runner_v1":
        message = canonical_v1(decode_jobspec(orjson.dumps(signed)))
    else:
        message = portal_messages(signed)[scheme]
    signed["signature"] = base64.b64encode(key.sign(message).signature).decode()
    return signed


def body(spec: dict[str, Any]) -> bytes:
    """The bytes the portal would post (JSON.stringify output: compact, raw UTF-8)."""
    return orjson.dumps(spec)
