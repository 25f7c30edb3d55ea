"""``beacon-adapter bucket KEY`` prints a submitter's bucket and decision."""

from __future__ import annotations

import pytest

from adapter.cli import main

WALLET = "0x67f3d16a91991cf169920f1e79f78e66708da328"


@pytest.mark.parametrize(
    ("env", "decision"),
    [
        pytest.param({"ADAPTER_ROLLOUT_PERCENT": "4.81"}, "selected (in_rollout)", id="in"),
        pytest.param(
            {"ADAPTER_ROLLOUT_PERCENT": "4.80"}, "not selected (not_in_rollout)", id="out"
        ),
        pytest.param(
            {"ADAPTER_ROLLOUT_ALLOWLIST": WALLET.upper().replace("0X", "0x")},
            "selected (allowlisted)",
            id="allowlisted",
        ),
        pytest.param(
            {"ADAPTER_ROLLOUT_PERCENT": "100", "ADAPTER_ROLLOUT_DENYLIST": WALLET},
            "not selected (denylisted)",
            id="denylisted",
        ),
    ],
)
def test_bucket_command(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    env: dict[str, str],
    decision: str,
) -> None:
    """The command reads the rollout env and explains the submitter's decision."""
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    assert main(["bucket", WALLET.upper().replace("0X", "0x")]) == 0
    lines = dict(line.split(None, 1) for line in capsys.readouterr().out.splitlines())
    assert lines["key"] == WALLET
    assert lines["bucket"] == "480"
    assert lines["decision"] == decision


def test_bucket_command_rejects_bad_env(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A bad rollout variable is reported in one line naming it, with exit status 2."""
    monkeypatch.setenv("ADAPTER_ROLLOUT_PERCENT", "150")
    assert main(["bucket", WALLET]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert "ADAPTER_ROLLOUT_PERCENT='150'" in err


def test_bucket_command_needs_no_signing_key(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Support can run it where the secret is absent, even at a percent above 0."""
    monkeypatch.delenv("ADAPTER_SIGNING_KEY", raising=False)
    monkeypatch.setenv("ADAPTER_ROLLOUT_PERCENT", "50")
    assert main(["bucket", "qBP01SQs+cJ57B1sBjypEotITySqNR9EF3qK412l6Tk="]) == 0
    assert "bucket    6408" in capsys.readouterr().out
