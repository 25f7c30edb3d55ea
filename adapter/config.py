"""The adapter's configuration: read once from the environment, validated, then frozen.

``Config.from_env`` takes a plain mapping (``os.environ`` in production, a dict in tests)
and reads no other global state; its only I/O is reading the files that variables name
(``ADAPTER_SIGNING_KEY_FILE``, ``ADAPTER_TRUSTED_KEYS_FILE``). Every bad value raises
``ConfigError`` naming the variable and the value, so the process can stop with one
readable line. The ``parse_*`` helpers take ``(name, raw)`` and
are public so later sections (for example the rewrite settings) reuse the same rules.
An empty or whitespace-only variable counts as unset.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import math
import re
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from functools import partial
from typing import Final, TypeVar

from yarl import URL

from adapter.jobs.guard import GuardSettings
from adapter.jobs.replay import ReplaySettings
from adapter.jobs.rewrite import DEFAULT_MAX_BODY_BYTES, DEFAULT_MIN_SUCCESS_RATE, RewriteSettings
from adapter.jobs.rollout import DEFAULT_SALT, RolloutPolicy, parse_identity_list, parse_percent
from adapter.jobs.signing import ENV_KEY, ENV_KEY_FILE, ServiceKey, SigningKeyError
from adapter.jobs.trust import TrustedKeys, TrustFileError

# Values longer than this are shortened in error messages, to keep them on one line.
_MAX_SHOWN_VALUE: Final = 80
# RFC 9110 §5.6.2 token characters: the only ones allowed in a header name.
_TOKEN_RE: Final = re.compile(r"^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$")
_TRUE: Final = frozenset({"1", "true", "yes", "on"})
_FALSE: Final = frozenset({"0", "false", "no", "off"})
LOG_LEVELS: Final = ("debug", "info", "warning", "error", "critical")
LOG_FORMATS: Final = ("json", "console")
REDACTED: Final = "***"

# Documented in the README; operators and deploy files depend on them.
DEFAULT_HOST: Final = "0.0.0.0"
DEFAULT_PORT: Final = 8080
DEFAULT_ADMIN_PORT: Final = 9090
DEFAULT_CONNECT_TIMEOUT: Final = 5.0
DEFAULT_UPSTREAM_TIMEOUT: Final = 60.0
DEFAULT_SHUTDOWN_GRACE: Final = 25.0
# A client connection with no request in progress (idle between keep-alive requests, or
# still sending its headers), or a request body or reader that stalls, is closed after
# this long. aiohttp's default is 3630 s, which lets slowloris clients hold sockets;
# 75 s is nginx's keepalive_timeout.
DEFAULT_CLIENT_IDLE_TIMEOUT: Final = 75.0
DEFAULT_TRUSTED_PROXY_HOPS: Final = 0
DEFAULT_LOG_LEVEL: Final = "info"
DEFAULT_LOG_FORMAT: Final = "json"
# Connect and statement timeout of the admin endpoints' database calls.
DEFAULT_DATABASE_TIMEOUT: Final = 5.0
MIN_ADMIN_TOKEN_LENGTH: Final = 16
# A rewrite reads the whole body into memory; past this, pass-through is the only sane answer.
MAX_REWRITE_BYTES_LIMIT: Final = 64 * 1_048_576

_T = TypeVar("_T")


class ConfigError(ValueError):
    """A configuration variable is missing or has a value the adapter cannot use."""

    def __init__(self, name: str, raw: str | None, reason: str, *, secret: bool = False) -> None:
        self.name = name
        self.reason = reason
        if raw is None:
            shown = "(unset)"
        elif secret:
            shown = REDACTED
        else:
            shown = _shorten(raw)
        super().__init__(f"{name}={shown}: {reason}")


def _shorten(raw: str) -> str:
    """Quote a value for an error message: repr keeps control characters on one line."""
    text = raw if len(raw) <= _MAX_SHOWN_VALUE else raw[:_MAX_SHOWN_VALUE] + "..."
    return repr(text)


def env_value(env: Mapping[str, str], name: str) -> str | None:
    """Return the variable stripped of surrounding blanks, or None when unset or empty."""
    raw = env.get(name)
    if raw is None or not raw.strip():
        return None
    return raw.strip()


def read_env(env: Mapping[str, str], name: str, parse: Callable[[str, str], _T], default: _T) -> _T:
    """``parse(name, value)`` of a set variable, else ``default``."""
    raw = env_value(env, name)
    return default if raw is None else parse(name, raw)


def parse_bool(name: str, raw: str) -> bool:
    """Parse true/false, 1/0, yes/no or on/off (any case)."""
    lowered = raw.strip().lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    raise ConfigError(name, raw, "expected true or false")


def parse_seconds(
    name: str, raw: str, *, allow_zero: bool = False, maximum: float | None = None
) -> float:
    """Parse a finite, positive number of seconds (zero only when ``allow_zero``)."""
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(name, raw, "expected a number of seconds") from None
    if not math.isfinite(value):
        raise ConfigError(name, raw, "expected a finite number of seconds")
    if value < 0 or (value == 0 and not allow_zero):
        bound = "zero or more" if allow_zero else "more than zero"
        raise ConfigError(name, raw, f"expected {bound} seconds")
    if maximum is not None and value > maximum:
        raise ConfigError(name, raw, f"expected at most {maximum:g} seconds")
    return value


def parse_int_range(name: str, raw: str, low: int, high: int) -> int:
    """Parse a decimal integer between ``low`` and ``high`` inclusive."""
    text = raw.strip()
    if not re.fullmatch(r"[+-]?[0-9]+", text):
        raise ConfigError(name, raw, f"expected an integer from {low} to {high}")
    value = int(text)
    if not low <= value <= high:
        raise ConfigError(name, raw, f"expected an integer from {low} to {high}")
    return value


def parse_port(name: str, raw: str) -> int:
    """Parse a TCP port number (1-65535)."""
    return parse_int_range(name, raw, 1, 65535)


def parse_choice(name: str, raw: str, choices: Collection[str]) -> str:
    """Parse one of a fixed set of lower-case words (input is case-insensitive)."""
    lowered = raw.strip().lower()
    if lowered not in choices:
        raise ConfigError(name, raw, "expected one of " + ", ".join(choices))
    return lowered


def parse_header_name(name: str, raw: str) -> str:
    """Parse an HTTP header name (an RFC 9110 token)."""
    if not _TOKEN_RE.fullmatch(raw):
        raise ConfigError(name, raw, "expected an HTTP header name")
    return raw


def parse_host(name: str, raw: str) -> str:
    """Parse a listen address: an IP address or a host name."""
    try:
        ipaddress.ip_address(raw)
    except ValueError:
        if not re.fullmatch(r"[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?", raw):
            raise ConfigError(name, raw, "expected an IP address or host name") from None
    return raw


def parse_upstream_url(name: str, raw: str) -> URL:
    """Parse the runner's base URL: http(s)://host[:port], nothing after the authority."""
    try:
        url = URL(raw)
    except ValueError:
        raise ConfigError(name, raw, "expected a URL such as http://127.0.0.1:8090") from None
    if url.raw_user is not None or url.raw_password is not None:
        # Never echo credentials: the message shows the URL without them.
        shown = str(url.with_user(None))
        raise ConfigError(name, shown, "credentials in the URL are not supported")
    if url.scheme not in ("http", "https") or not url.raw_host:
        raise ConfigError(name, raw, "expected an http:// or https:// URL with a host")
    if url.raw_path not in ("", "/") or url.raw_query_string or url.raw_fragment:
        raise ConfigError(name, raw, "expected only scheme, host and port (no path or query)")
    try:
        url.port  # noqa: B018 - yarl validates the port lazily
    except ValueError:
        raise ConfigError(name, raw, "expected a valid port") from None
    return url.with_path("")


def secret() -> dict[str, object]:
    """Field metadata that hides a value in ``Config.redacted()``."""
    return {"secret": True}


@dataclass(frozen=True, slots=True)
class Config:
    """Effective settings of one adapter process (see README, "Running in front of a runner")."""

    upstream_url: URL
    host: str = DEFAULT_HOST
    port: int = DEFAULT_PORT
    admin_port: int = DEFAULT_ADMIN_PORT
    upstream_connect_timeout: float = DEFAULT_CONNECT_TIMEOUT
    upstream_timeout: float = DEFAULT_UPSTREAM_TIMEOUT
    shutdown_grace: float = DEFAULT_SHUTDOWN_GRACE
    client_idle_timeout: float = DEFAULT_CLIENT_IDLE_TIMEOUT
    # Plain requests are relayed by adapter.http.relay; false sends every request through
    # aiohttp's server and client (the slower path, kept as an operator's escape hatch).
    lean_relay: bool = True
    trusted_proxy_hops: int = DEFAULT_TRUSTED_PROXY_HOPS
    client_ip_header: str | None = None
    log_level: str = DEFAULT_LOG_LEVEL
    log_format: str = DEFAULT_LOG_FORMAT
    rewrite: RewriteSettings = field(default_factory=RewriteSettings)
    guard: GuardSettings = field(default_factory=GuardSettings)
    replay: ReplaySettings = field(default_factory=ReplaySettings)
    # Bias-analysis backfill admin endpoints (docs/runbook.md): both secrets stay redacted.
    admin_token: str | None = field(default=None, metadata=secret())
    database_url: str | None = field(default=None, metadata=secret())
    database_timeout: float = DEFAULT_DATABASE_TIMEOUT

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> Config:
        """Build the config from environment variables; raise ConfigError on the first bad one."""
        raw_url = env_value(env, "ADAPTER_UPSTREAM_URL")
        if raw_url is None:
            raise ConfigError("ADAPTER_UPSTREAM_URL", None, "is required")

        read = partial(read_env, env)
        config = cls(
            upstream_url=parse_upstream_url("ADAPTER_UPSTREAM_URL", raw_url),
            host=read("ADAPTER_HOST", parse_host, DEFAULT_HOST),
            port=read("ADAPTER_PORT", parse_port, DEFAULT_PORT),
            admin_port=read("ADAPTER_ADMIN_PORT", parse_port, DEFAULT_ADMIN_PORT),
            upstream_connect_timeout=read(
                "ADAPTER_UPSTREAM_CONNECT_TIMEOUT", parse_seconds, DEFAULT_CONNECT_TIMEOUT
            ),
            upstream_timeout=read(
                "ADAPTER_UPSTREAM_TIMEOUT", parse_seconds, DEFAULT_UPSTREAM_TIMEOUT
            ),
            shutdown_grace=read(
                "ADAPTER_SHUTDOWN_GRACE",
                lambda n, r: parse_seconds(n, r, allow_zero=True, maximum=3600),
                DEFAULT_SHUTDOWN_GRACE,
            ),
            client_idle_timeout=read(
                "ADAPTER_CLIENT_IDLE_TIMEOUT",
                lambda n, r: parse_seconds(n, r, maximum=86400),
                DEFAULT_CLIENT_IDLE_TIMEOUT,
            ),
            lean_relay=read("ADAPTER_LEAN_RELAY", parse_bool, True),
            trusted_proxy_hops=read(
                "ADAPTER_TRUSTED_PROXY_HOPS",
                lambda n, r: parse_int_range(n, r, 0, 32),
                DEFAULT_TRUSTED_PROXY_HOPS,
            ),
            client_ip_header=read("ADAPTER_CLIENT_IP_HEADER", parse_header_name, None),
            log_level=read(
                "ADAPTER_LOG_LEVEL", lambda n, r: parse_choice(n, r, LOG_LEVELS), DEFAULT_LOG_LEVEL
            ),
            log_format=read(
                "ADAPTER_LOG_FORMAT",
                lambda n, r: parse_choice(n, r, LOG_FORMATS),
                DEFAULT_LOG_FORMAT,
            ),
            rewrite=rewrite_settings_from_env(env),
            guard=guard_settings_from_env(env),
            replay=replay_settings_from_env(env),
            admin_token=read("ADAPTER_ADMIN_TOKEN", _parse_admin_token, None),
            database_url=read("ADAPTER_DATABASE_URL", _parse_database_url, None),
            database_timeout=read(
                "ADAPTER_DATABASE_TIMEOUT",
                lambda n, r: parse_seconds(n, r, maximum=300),
                DEFAULT_DATABASE_TIMEOUT,
            ),
        )
        if config.port == config.admin_port:
            raise ConfigError(
                "ADAPTER_ADMIN_PORT", str(config.admin_port), "must differ from ADAPTER_PORT"
            )
        return config

    def redacted(self) -> dict[str, object]:
        """The effective settings for the start-up log line, secret fields masked."""
        return _redact(self)


def rewrite_settings_from_env(env: Mapping[str, str]) -> RewriteSettings:
    """The cross-region rewrite section: rollout flag, keys and limits ("Rewrite variables")."""

    read = partial(read_env, env)
    policy = rollout_policy_from_env(env)
    trust_enforce = read("ADAPTER_TRUST_ENFORCE", parse_bool, False)
    trusted_keys = read("ADAPTER_TRUSTED_KEYS_FILE", _load_trusted_keys, None)
    if trust_enforce and trusted_keys is None:
        raise ConfigError(
            "ADAPTER_TRUSTED_KEYS_FILE", None, "is required when ADAPTER_TRUST_ENFORCE=true"
        )
    try:
        service_key = ServiceKey.from_env(env)
    except SigningKeyError as exc:
        name = (
            ENV_KEY_FILE
            if env_value(env, ENV_KEY_FILE) and not env_value(env, ENV_KEY)
            else ENV_KEY
        )
        raise ConfigError(name, env.get(name), str(exc), secret=True) from None
    if policy.rewrites_anything and service_key is None:
        raise ConfigError(
            ENV_KEY,
            None,
            "is required to rewrite (ADAPTER_ROLLOUT_PERCENT > 0, ADAPTER_ROLLOUT_ALLOWLIST "
            "or ADAPTER_SHADOW=true); set it or ADAPTER_SIGNING_KEY_FILE",
        )
    return RewriteSettings(
        policy=policy,
        service_key=service_key,
        trusted_keys=trusted_keys,
        trust_enforce=trust_enforce,
        default_min_success_rate=read(
            "ADAPTER_DEFAULT_MIN_SUCCESS_RATE", _parse_rate, DEFAULT_MIN_SUCCESS_RATE
        ),
        max_body_bytes=read(
            "ADAPTER_MAX_REWRITE_BYTES",
            lambda n, r: parse_int_range(n, r, 1, MAX_REWRITE_BYTES_LIMIT),
            DEFAULT_MAX_BODY_BYTES,
        ),
    )


# -- the guarded rewrite: ADAPTER_GUARD_* and ADAPTER_REPLAY_* (README, "Guarded rewrite") --


def guard_settings_from_env(env: Mapping[str, str]) -> GuardSettings:
    """The rewrite guard (circuit breaker); ADAPTER_GUARD_ENABLED=false turns it off."""
    read = partial(read_env, env)
    defaults = GuardSettings()
    window_size = read(
        "ADAPTER_GUARD_WINDOW_SIZE",
        lambda n, r: parse_int_range(n, r, 1, 1000),
        defaults.window_size,
    )
    min_samples = read(
        "ADAPTER_GUARD_MIN_SAMPLES",
        lambda n, r: parse_int_range(n, r, 1, window_size),
        min(defaults.min_samples, window_size),
    )
    return GuardSettings(
        enabled=read("ADAPTER_GUARD_ENABLED", parse_bool, True),
        window_size=window_size,
        window_seconds=read(
            "ADAPTER_GUARD_WINDOW_SECONDS",
            lambda n, r: parse_seconds(n, r, maximum=86400),
            defaults.window_seconds,
        ),
        min_samples=min_samples,
        failure_ratio=read("ADAPTER_GUARD_FAILURE_RATIO", _parse_rate, defaults.failure_ratio),
        cooldown_seconds=read(
            "ADAPTER_GUARD_COOLDOWN_SECONDS",
            lambda n, r: parse_seconds(n, r, maximum=86400),
            defaults.cooldown_seconds,
        ),
    )


def replay_settings_from_env(env: Mapping[str, str]) -> ReplaySettings:
    """The runner's Redis for the replay check (used only with ADAPTER_TRUST_ENFORCE=true)."""
    read = partial(read_env, env)
    defaults = ReplaySettings()
    return ReplaySettings(
        redis_url=read("ADAPTER_REPLAY_REDIS_URL", _parse_redis_url, None),
        ttl_seconds=read(
            "ADAPTER_REPLAY_TTL_SECONDS",
            lambda n, r: parse_int_range(n, r, 1, 86400),
            defaults.ttl_seconds,
        ),
        timeout_seconds=read(
            "ADAPTER_REPLAY_TIMEOUT",
            lambda n, r: parse_seconds(n, r, maximum=10),
            defaults.timeout_seconds,
        ),
    )


def _parse_redis_url(name: str, raw: str) -> URL:
    try:
        url = URL(raw)
        url.port  # noqa: B018 - yarl validates the port lazily
    except ValueError:
        # The text may hold a password: never echo it.
        raise ConfigError(name, raw, "expected a redis:// URL", secret=True) from None
    shown = str(url.with_password(None)) if url.raw_password else raw
    if url.scheme not in ("redis", "rediss", "unix") or not (url.raw_host or url.path):
        raise ConfigError(name, shown, "expected a redis://, rediss:// or unix:// URL")
    return url


def rollout_policy_from_env(env: Mapping[str, str]) -> RolloutPolicy:
    """The rollout flag alone: percent, salt, lists and shadow mode (needs no secret)."""

    read = partial(read_env, env)
    return RolloutPolicy(
        threshold=read("ADAPTER_ROLLOUT_PERCENT", _parse_percent, 0),
        salt=read("ADAPTER_ROLLOUT_SALT", lambda _n, r: r, DEFAULT_SALT),
        allowlist=read(
            "ADAPTER_ROLLOUT_ALLOWLIST", lambda _n, r: parse_identity_list(r), frozenset()
        ),
        denylist=read(
            "ADAPTER_ROLLOUT_DENYLIST", lambda _n, r: parse_identity_list(r), frozenset()
        ),
        shadow=read("ADAPTER_SHADOW", parse_bool, False),
    )


def _parse_percent(name: str, raw: str) -> int:
    try:
        return parse_percent(raw)
    except ValueError as exc:
        raise ConfigError(name, raw, str(exc)) from None


def _parse_rate(name: str, raw: str) -> float:
    try:
        value = float(raw)
    except ValueError:
        value = math.nan
    if not 0 < value <= 1:
        raise ConfigError(name, raw, "expected a number above 0 and at most 1")
    return value


def _parse_admin_token(name: str, raw: str) -> str:
    if len(raw) < MIN_ADMIN_TOKEN_LENGTH:
        reason = f"expected at least {MIN_ADMIN_TOKEN_LENGTH} characters"
        raise ConfigError(name, raw, reason, secret=True)
    return raw


def _parse_database_url(name: str, raw: str) -> str:
    if not raw.startswith(("postgresql://", "postgres://", "sqlite:///")):
        # Never echo it: the URL may hold a password.
        reason = "expected a postgresql:// URL (or sqlite:///PATH for the demo)"
        raise ConfigError(name, raw, reason, secret=True)
    return raw


def _load_trusted_keys(name: str, raw: str) -> TrustedKeys:
    try:
        return TrustedKeys.load(raw)
    except TrustFileError as exc:
        raise ConfigError(name, raw, str(exc)) from None


def _redact(value: object) -> dict[str, object]:
    """Walk a config dataclass; nested dataclasses become nested dicts."""
    assert dataclasses.is_dataclass(value)
    assert not isinstance(value, type)
    out: dict[str, object] = {}
    for item in dataclasses.fields(value):
        current = getattr(value, item.name)
        describe = item.metadata.get("describe")
        if item.metadata.get("secret"):
            out[item.name] = None if current is None else REDACTED
        elif describe is not None:
            out[item.name] = describe(current)
        elif dataclasses.is_dataclass(current) and not isinstance(current, type):
            out[item.name] = _redact(current)
        elif isinstance(current, URL):
            out[item.name] = str(current.with_password(None) if current.raw_password else current)
        elif isinstance(current, tuple | frozenset):
            out[item.name] = list(current)
        else:
            out[item.name] = current
    return out


__all__ = (
    "LOG_FORMATS",
    "LOG_LEVELS",
    "Config",
    "ConfigError",
    "env_value",
    "guard_settings_from_env",
    "parse_bool",
    "parse_choice",
    "parse_header_name",
    "parse_host",
    "parse_int_range",
    "parse_port",
    "parse_seconds",
    "parse_upstream_url",
    "read_env",
    "replay_settings_from_env",
    "rewrite_settings_from_env",
    "rollout_policy_from_env",
)
