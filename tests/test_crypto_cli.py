"""The canonical, verify, keygen and sign commands, through the real console entry."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest

from adapter.cli import main
from adapter.jobs.canonical import canonical_v1
from adapter.jobs.jobspec import decode_cross_region_request, marshal_go
from adapter.jobs.signing import ServiceKey, check_runner_v1, verify_b64
from adapter.jobs.trust import KeyStatus, TrustedKeys
from tests.conftest import VECTORS_DIR, load_vector

PORTAL_REQUEST = VECTORS_DIR / "portal-crossregion-2025-10-12.json"
PORTAL_SHA256 = "c2a9a6c0565d29d0432be375e65e715500aff05b5f721996e90a7c66eaa7def0"
SEED_B64 = "nWGxne/9WmC6hEr0kuwsxERJxWl7MmkZcDusAxyuf2A="
REPO_ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(name="bare_spec")
def _bare_spec(tmp_path: Path) -> Path:
    request = json.loads(PORTAL_REQUEST.read_bytes())
    path = tmp_path / "spec.json"
    path.write_text(json.dumps(request["jobspec"]))
    return path


def test_canonical_of_cross_region_request(capsys: pytest.CaptureFixture[str]) -> None:
    """canonical prints the runner's 1317 bytes for the request's jobspec, no newline."""
    assert main(["canonical", str(PORTAL_REQUEST)]) == 0
    out = capsys.readouterr().out.encode("utf-8")
    assert len(out) == 1317
    assert hashlib.sha256(out).hexdigest() == PORTAL_SHA256


def test_canonical_of_bare_spec(bare_spec: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A bare JobSpec gives the same canonical bytes as its cross-region wrapper."""
    assert main(["canonical", str(bare_spec)]) == 0
    assert hashlib.sha256(capsys.readouterr().out.encode()).hexdigest() == PORTAL_SHA256


@pytest.mark.parametrize(
    ("body", "message"),
    [
        pytest.param(
            b'{"constraints": {"timeout": 6e11}}',
            "constraints.timeout: cannot unmarshal number 6e11",
            id="float-duration",
        ),
        pytest.param(b'{"created_at": ""}', "created_at", id="empty-created-at"),
        pytest.param(b"{", "unexpected end of JSON input", id="truncated"),
        pytest.param(b'{"jobspec": {}}', "target_regions", id="request-without-regions"),
        pytest.param(
            b'{"created_at": "2025-10-12T14:12:10+24:00"}',
            "runner decodes this spec but cannot canonicalise it: created_at: Time.MarshalJSON",
            id="offset-go-cannot-marshal",
        ),
        pytest.param(
            b'{"created_at": "2025-10-12T14:12:10\\u005a"}',
            "could not decode this spec: created_at",
            id="escaped-created-at",
        ),
    ],
)
def test_canonical_reports_decode_errors(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], body: bytes, message: str
) -> None:
    """When the runner could not decode the spec, canonical exits 1 with one stderr line."""
    path = tmp_path / "bad.json"
    path.write_bytes(body)
    assert main(["canonical", str(path)]) == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.count("\n") == 1
    assert captured.err.startswith("beacon-adapter canonical: error: the runner ")
    assert message in captured.err


def test_missing_file_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """An unreadable input file is reported on one line with exit status 1."""
    assert main(["verify", str(tmp_path / "nope.json")]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert "cannot read" in err


def test_verify_real_portal_request(capsys: pytest.CaptureFixture[str]) -> None:
    """verify names the scheme, the key, and whether the runner's V1 check accepts it."""
    assert main(["verify", str(PORTAL_REQUEST)]) == 0
    out = capsys.readouterr().out
    assert "verified: yes, under scheme portal_21a0059" in out
    assert "public_key: qBP01SQs+cJ57B1sBjypEotITySqNR9EF3qK412l6Tk=" in out
    assert "runner V1 (cross-region endpoint): accepts it" in out


@pytest.mark.parametrize(
    ("name", "scheme"),
    [
        pytest.param("c4-3regions.json", "portal_c4cbb02", id="c4cbb02"),
        pytest.param("04-3regions.json", "portal_04b8886", id="04b8886"),
    ],
)
def test_verify_old_portal_bodies(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], name: str, scheme: str
) -> None:
    """Old portal bodies verify under their signer's scheme, and the runner would reject them."""
    path = tmp_path / "body.json"
    path.write_text(load_vector(f"old-portal/{name}")["body"])
    assert main(["verify", str(path)]) == 0
    out = capsys.readouterr().out
    assert f"under scheme {scheme}" in out
    assert "runner V1 (cross-region endpoint): rejects it" in out


def test_verify_tampered_spec_fails(bare_spec: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A changed spec does not verify: exit status 1 and the reason."""
    spec = json.loads(bare_spec.read_text())
    spec["runs"] = 2
    bare_spec.write_text(json.dumps(spec))
    assert main(["verify", str(bare_spec)]) == 1
    out = capsys.readouterr().out
    assert out.startswith("verified: no: signature did not verify under any scheme")


def test_verify_reports_trust_status(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """With --trusted-keys, verify also prints the key's status and kid."""
    keys = tmp_path / "keys.json"
    keys.write_text(
        json.dumps(
            [
                {
                    "kid": "portal",
                    "public_key": "qBP01SQs+cJ57B1sBjypEotITySqNR9EF3qK412l6Tk=",
                    "status": "revoked",
                }
            ]
        )
    )
    assert main(["verify", "--trusted-keys", str(keys), str(PORTAL_REQUEST)]) == 0
    assert "trust: revoked (kid portal)" in capsys.readouterr().out


def test_keygen_prints_a_working_key(capsys: pytest.CaptureFixture[str]) -> None:
    """keygen's secret loads, matches the printed public key, and the entry is a valid file."""
    assert main(["keygen", "--kid", "adapter-test"]) == 0
    lines = capsys.readouterr().out.splitlines()
    secret = next(line for line in lines if line.startswith("ADAPTER_SIGNING_KEY="))
    key = ServiceKey.from_b64(secret.split("=", 1)[1])
    assert f"public_key: {key.public_key_b64}" in lines
    entry = json.loads(lines[-1])
    assert entry == {"kid": "adapter-test", "public_key": key.public_key_b64, "status": "active"}
    trusted = TrustedKeys.from_bytes(json.dumps([entry]).encode())
    assert trusted.kid_for(key.public_key_b64) == "adapter-test"
    assert trusted.status(key.public_key_b64, datetime.now(UTC)) is KeyStatus.TRUSTED


def test_sign_request_with_env_key(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """sign re-signs the jobspec with the service key; the runner's V1 check accepts the output."""
    monkeypatch.setenv("ADAPTER_SIGNING_KEY", SEED_B64)
    monkeypatch.delenv("ADAPTER_SIGNING_KEY_FILE", raising=False)
    assert main(["sign", str(PORTAL_REQUEST)]) == 0
    out = capsys.readouterr().out.encode("utf-8")
    assert out.endswith(b"}\n")
    request = decode_cross_region_request(out)
    key = ServiceKey.from_b64(SEED_B64)
    assert request["jobspec"]["public_key"] == key.public_key_b64
    assert request["target_regions"] == ["US", "EU"]
    assert check_runner_v1(out).public_key_b64 == key.public_key_b64
    assert check_runner_v1(out).verified
    assert out.rstrip(b"\n") == marshal_go(request)


def test_sign_without_key_fails(
    bare_spec: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """sign without a configured key exits 1 and says which variables to set."""
    monkeypatch.delenv("ADAPTER_SIGNING_KEY", raising=False)
    monkeypatch.delenv("ADAPTER_SIGNING_KEY_FILE", raising=False)
    assert main(["sign", str(bare_spec)]) == 1
    err = capsys.readouterr().err
    assert "ADAPTER_SIGNING_KEY" in err
    assert err.count("\n") == 1


def test_sign_with_bad_key_never_prints_it(
    bare_spec: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A malformed key is reported without echoing it."""
    bad = "c2VjcmV0LXNlY3JldC1zZWNyZXQ="
    monkeypatch.setenv("ADAPTER_SIGNING_KEY", bad)
    monkeypatch.delenv("ADAPTER_SIGNING_KEY_FILE", raising=False)
    assert main(["sign", str(bare_spec)]) == 1
    captured = capsys.readouterr()
    assert bad not in captured.err + captured.out
    assert "got 20" in captured.err


def _run_module(
    *args: str, stdin: bytes, env_key: str | None = None
) -> subprocess.CompletedProcess[bytes]:
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(REPO_ROOT)}
    if env_key is not None:
        env["ADAPTER_SIGNING_KEY"] = env_key
    return subprocess.run(  # noqa: S603 - fixed interpreter and arguments
        [sys.executable, "-m", "adapter", *args],
        input=stdin,
        capture_output=True,
        cwd=REPO_ROOT,
        env=env,
        timeout=60,
        check=False,
    )


def test_python_m_adapter_canonical_from_stdin() -> None:
    """``python -m adapter canonical -`` reads stdin and writes the exact bytes."""
    result = _run_module("canonical", "-", stdin=PORTAL_REQUEST.read_bytes())
    assert result.returncode == 0, result.stderr
    assert hashlib.sha256(result.stdout).hexdigest() == PORTAL_SHA256


def test_python_m_adapter_sign_then_verify_pipeline() -> None:
    """sign's output, piped into verify, verifies under runner V1 with the service key."""
    signed = _run_module("sign", stdin=PORTAL_REQUEST.read_bytes(), env_key=SEED_B64)
    assert signed.returncode == 0, signed.stderr
    spec = decode_cross_region_request(signed.stdout)["jobspec"]
    assert verify_b64(spec["public_key"], spec["signature"], canonical_v1(spec))
    verified = _run_module("verify", "-", stdin=signed.stdout)
    assert verified.returncode == 0, verified.stderr
    assert b"runner V1 (cross-region endpoint): accepts it" in verified.stdout


def test_python_m_adapter_error_exit() -> None:
    """A decode failure through ``python -m adapter`` exits 1 with one stderr line."""
    result = _run_module("canonical", stdin=b'{"runs": 1.0}')
    assert result.returncode == 1
    assert result.stdout == b""
    assert result.stderr.decode().strip().endswith("runs: cannot unmarshal number 1.0 into int")


@pytest.mark.parametrize(
    ("key", "wrapped"),
    [
        pytest.param("jobspec", True, id="exact"),
        pytest.param("JobSpec", True, id="title-case"),
        pytest.param("JOB\u017fPEC", True, id="long-s-folds"),
        pytest.param("job_spec", False, id="underscore-does-not-bind"),
    ],
)
def test_canonical_and_verify_unwrap_by_the_same_rule(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], key: str, wrapped: bool
) -> None:
    """Both commands unwrap a request whose key Go binds to jobspec (case-folded), and
    both read any other body as a bare JobSpec, so they always speak of the same bytes."""
    request = json.loads(PORTAL_REQUEST.read_bytes())
    path = tmp_path / "request.json"
    path.write_text(json.dumps({key: request["jobspec"], "target_regions": ["US", "EU"]}))
    assert main(["canonical", str(path)]) == 0
    canonical = capsys.readouterr().out.encode("utf-8")
    assert (hashlib.sha256(canonical).hexdigest() == PORTAL_SHA256) is wrapped
    status = main(["verify", str(path)])
    out = capsys.readouterr().out
    assert (status == 0) is wrapped, out
    assert ("verified: yes" in out) is wrapped
