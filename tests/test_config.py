"""Config.from_env: exact variable names, defaults, and one-line errors naming the variable."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

import pytest
from yarl import URL

from adapter.config import (
    Config,
    ConfigError,
    parse_bool,
    parse_int_range,
    parse_port,
    parse_seconds,
)

BASE = {"ADAPTER_UPSTREAM_URL": "http://127.0.0.1:8090"}


def test_defaults_match_issue_2() -> None:
    """With only the upstream URL set, every other setting has the documented default."""
    config = Config.from_env(BASE)
    assert config == Config(
        upstream_url=URL("http://127.0.0.1:8090"),
        host="0.0.0.0",
        port=8080,
        admin_port=9090,
        upstream_connect_timeout=5.0,
        upstream_timeout=60.0,
        shutdown_grace=25.0,
        client_idle_timeout=75.0,
        lean_relay=True,
        trusted_proxy_hops=0,
        client_ip_header=None,
        log_level="info",
        log_format="json",
    )


def test_every_variable_is_read() -> None:
    """Each ADAPTER_* variable of the README's table lands in its field, parsed."""
    env = {
        "ADAPTER_UPSTREAM_URL": "https://runner.example.org:8443/",
        "ADAPTER_HOST": "127.0.0.1",
        "ADAPTER_PORT": "18080",
        "ADAPTER_ADMIN_PORT": "19090",
        "ADAPTER_UPSTREAM_CONNECT_TIMEOUT": "1.5",
        "ADAPTER_UPSTREAM_TIMEOUT": "30",
        "ADAPTER_SHUTDOWN_GRACE": "0",
        "ADAPTER_CLIENT_IDLE_TIMEOUT": "12.5",
        "ADAPTER_LEAN_RELAY": "off",
        "ADAPTER_TRUSTED_PROXY_HOPS": "2",
        "ADAPTER_CLIENT_IP_HEADER": "Fly-Client-IP",
        "ADAPTER_LOG_LEVEL": "DEBUG",
        "ADAPTER_LOG_FORMAT": "console",
    }
    config = Config.from_env(env)
    assert config.upstream_url == URL("https://runner.example.org:8443")
    assert (config.host, config.port, config.admin_port) == ("127.0.0.1", 18080, 19090)
    assert config.upstream_connect_timeout == 1.5
    assert config.upstream_timeout == 30.0
    assert config.shutdown_grace == 0.0
    assert config.client_idle_timeout == 12.5
    assert config.lean_relay is False
    assert config.trusted_proxy_hops == 2
    assert config.client_ip_header == "Fly-Client-IP"
    assert (config.log_level, config.log_format) == ("debug", "console")


def test_blank_values_mean_default() -> None:
    """An empty or blank variable counts as unset, as deploy templates often leave them."""
    config = Config.from_env({**BASE, "ADAPTER_PORT": "", "ADAPTER_CLIENT_IP_HEADER": "  "})
    assert config.port == 8080
    assert config.client_ip_header is None


@pytest.mark.parametrize(
    ("name", "value", "reason"),
    [
        pytest.param("ADAPTER_UPSTREAM_URL", "ftp://x", "http:// or https://", id="url-scheme"),
        pytest.param(
            "ADAPTER_UPSTREAM_URL", "127.0.0.1:8090", "http:// or https://", id="no-scheme"
        ),
        pytest.param("ADAPTER_UPSTREAM_URL", "http://h/api", "no path", id="url-path"),
        pytest.param("ADAPTER_UPSTREAM_URL", "http://h?x=1", "no path", id="url-query"),
        pytest.param("ADAPTER_UPSTREAM_URL", "http://h:99999", "expected a URL", id="url-port"),
        pytest.param("ADAPTER_HOST", "not a host", "IP address or host name", id="host"),
        pytest.param("ADAPTER_PORT", "http", "integer from 1 to 65535", id="port-word"),
        pytest.param("ADAPTER_PORT", "0", "integer from 1 to 65535", id="port-zero"),
        pytest.param("ADAPTER_PORT", "65536", "integer from 1 to 65535", id="port-high"),
        pytest.param("ADAPTER_ADMIN_PORT", "8.5", "integer", id="admin-port-float"),
        pytest.param("ADAPTER_ADMIN_PORT", "8080", "must differ from ADAPTER_PORT", id="same-port"),
        pytest.param("ADAPTER_UPSTREAM_CONNECT_TIMEOUT", "0", "more than zero", id="connect-zero"),
        pytest.param("ADAPTER_UPSTREAM_TIMEOUT", "-1", "more than zero", id="timeout-negative"),
        pytest.param("ADAPTER_UPSTREAM_TIMEOUT", "nan", "finite", id="timeout-nan"),
        pytest.param("ADAPTER_UPSTREAM_TIMEOUT", "inf", "finite", id="timeout-inf"),
        pytest.param("ADAPTER_UPSTREAM_TIMEOUT", "5s", "number of seconds", id="timeout-unit"),
        pytest.param("ADAPTER_SHUTDOWN_GRACE", "-0.5", "zero or more", id="grace-negative"),
        pytest.param("ADAPTER_SHUTDOWN_GRACE", "7200", "at most 3600", id="grace-huge"),
        pytest.param("ADAPTER_CLIENT_IDLE_TIMEOUT", "0", "more than zero", id="idle-zero"),
        pytest.param("ADAPTER_CLIENT_IDLE_TIMEOUT", "1e6", "at most 86400", id="idle-huge"),
        pytest.param("ADAPTER_LEAN_RELAY", "maybe", "true or false", id="lean-word"),
        pytest.param("ADAPTER_TRUSTED_PROXY_HOPS", "-1", "integer from 0 to 32", id="hops-neg"),
        pytest.param("ADAPTER_TRUSTED_PROXY_HOPS", "one", "integer from 0 to 32", id="hops-word"),
        pytest.param("ADAPTER_CLIENT_IP_HEADER", "Fly Client IP", "header name", id="header"),
        pytest.param("ADAPTER_LOG_LEVEL", "verbose", "one of debug, info", id="level"),
        pytest.param("ADAPTER_LOG_FORMAT", "xml", "one of json, console", id="format"),
    ],
)
def test_bad_value_names_variable_and_value(name: str, value: str, reason: str) -> None:
    """A bad value raises ConfigError whose single line names the variable and the value."""
    with pytest.raises(ConfigError) as caught:
        Config.from_env({**BASE, name: value})
    message = str(caught.value)
    assert "\n" not in message
    assert message.startswith(f"{name}=")
    assert repr(value) in message
    assert reason in message
    assert caught.value.name == name


def test_missing_upstream_is_an_error() -> None:
    """ADAPTER_UPSTREAM_URL is required."""
    with pytest.raises(ConfigError, match=r"^ADAPTER_UPSTREAM_URL=\(unset\): is required$"):
        Config.from_env({})


def test_url_credentials_never_echoed() -> None:
    """A password in the upstream URL is rejected without printing it."""
    with pytest.raises(ConfigError) as caught:
        Config.from_env({"ADAPTER_UPSTREAM_URL": "http://user:hunter2@runner:8090"})
    assert "hunter2" not in str(caught.value)
    assert "credentials" in str(caught.value)


def test_control_characters_stay_on_one_line() -> None:
    """A value with a newline is shown escaped, so the error stays one line."""
    with pytest.raises(ConfigError) as caught:
        Config.from_env({**BASE, "ADAPTER_PORT": "80\n80"})
    assert "\n" not in str(caught.value)
    assert "'80\\n80'" in str(caught.value)


def test_long_values_are_shortened() -> None:
    """A huge value is cut in the message so logs stay readable."""
    with pytest.raises(ConfigError) as caught:
        Config.from_env({**BASE, "ADAPTER_LOG_LEVEL": "x" * 500})
    assert len(str(caught.value)) < 200


def test_config_is_frozen() -> None:
    """Config cannot be changed after start-up."""
    config = Config.from_env(BASE)
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.port = 1  # type: ignore[misc]


def test_redacted_lists_effective_settings() -> None:
    """redacted() gives plain values for the start-up log line."""
    redacted = Config.from_env(BASE).redacted()
    assert redacted["upstream_url"] == "http://127.0.0.1:8090"
    assert redacted["port"] == 8080
    assert redacted["client_ip_header"] is None


@dataclass(frozen=True, slots=True)
class _Section:
    """Shape of a later nested section, e.g. the rewrite settings."""

    signing_seed: str | None = field(default=None, metadata={"secret": True})
    percent: float = 0.0


@dataclass(frozen=True, slots=True)
class _Extended:
    upstream_url: URL
    rewrite: _Section


def test_redacted_masks_secret_fields_in_nested_sections() -> None:
    """Fields whose metadata says "secret" are masked at any depth; the rest is shown."""
    from adapter.config import _redact

    shown = _redact(_Extended(URL("http://r"), _Section(signing_seed="s3cr3t", percent=5.0)))
    assert shown == {"upstream_url": "http://r", "rewrite": {"signing_seed": "***", "percent": 5.0}}
    assert "s3cr3t" not in repr(shown)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        pytest.param("true", True, id="true"),
        pytest.param("ON", True, id="on"),
        pytest.param("1", True, id="one"),
        pytest.param("no", False, id="no"),
        pytest.param(" false ", False, id="padded"),
    ],
)
def test_parse_bool(raw: str, expected: bool) -> None:
    """parse_bool accepts the usual spellings."""
    assert parse_bool("X", raw) is expected


def test_parse_helpers_raise_config_error() -> None:
    """The reusable helpers raise ConfigError naming the caller's variable."""
    with pytest.raises(ConfigError, match=r"^ADAPTER_FLAG="):
        parse_bool("ADAPTER_FLAG", "maybe")
    with pytest.raises(ConfigError, match=r"^ADAPTER_PCT="):
        parse_int_range("ADAPTER_PCT", "101", 0, 100)
    with pytest.raises(ConfigError, match=r"^P="):
        parse_port("P", "-1")
    with pytest.raises(ConfigError, match=r"^S="):
        parse_seconds("S", "", allow_zero=True)
    assert parse_seconds("S", "0", allow_zero=True) == 0.0
    assert parse_int_range("N", "+7", 0, 10) == 7
