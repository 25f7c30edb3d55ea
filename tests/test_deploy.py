"""The deployment files agree with the code they deploy.

fly.toml, the Dockerfile, the Prometheus rules and the Grafana dashboard all name things the
application defines (ports, the console script, metric and label names, the readiness path).
These tests read the files and compare them with the real definitions, so a rename on either
side fails here instead of in production. promtool runs when it is installed.
"""

from __future__ import annotations

import ast
import asyncio
import fnmatch
import json
import re
import shutil
import subprocess
import sys
import tomllib
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from prometheus_client import CollectorRegistry
from prometheus_client.metrics_core import Metric
from yarl import URL

from adapter.admin import Readiness
from adapter.cli import build_parser
from adapter.config import Config
from adapter.http.routing import ROUTE_HEALTH, ROUTES, route_label
from adapter.jobs.rewrite import Decision, Reason
from adapter.jobs.signing import SCHEMES
from adapter.metrics import UPSTREAM_ERROR_KINDS, Metrics
from tests.conftest import AdapterFactory, AdminFactory, RecordingUpstream

ROOT = Path(__file__).resolve().parents[1]
FLY_TOML = ROOT / "fly.toml"
DOCKERFILE = ROOT / "deploy" / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"
PROMETHEUS_DIR = ROOT / "deploy" / "prometheus"
ALERTS = PROMETHEUS_DIR / "alerts.yml"
DASHBOARD = ROOT / "deploy" / "grafana" / "beacon-adapter.json"
RUNBOOK = ROOT / "docs" / "runbook.md"
PYPROJECT = ROOT / "pyproject.toml"

# Time between Fly's stop signal and SIGKILL that the adapter needs beyond its drain grace:
# closing the upstream session and WebSockets, flushing logs, interpreter exit.
MIN_KILL_MARGIN_SECONDS = 3.0
SEVERITIES = frozenset({"critical", "warning"})


# ---- readers -------------------------------------------------------------------------


@cache
def fly() -> dict[str, Any]:
    """fly.toml, parsed."""
    with FLY_TOML.open("rb") as handle:
        return tomllib.load(handle)


def fly_config() -> Config:
    """The adapter configuration a Fly machine gets from fly.toml's [env]."""
    return Config.from_env(fly()["env"])


def default_config() -> Config:
    """The adapter configuration with nothing but the required upstream set."""
    return Config.from_env({"ADAPTER_UPSTREAM_URL": "http://127.0.0.1:1"})


def fly_duration_seconds(value: object) -> float:
    """Fly durations: a bare number of seconds, or a string such as "30s", "1m30s", "500ms"."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    assert isinstance(value, str), value
    parts = re.findall(r"(\d+(?:\.\d+)?)(ms|s|m|h)", value)
    assert parts, f"not a duration: {value!r}"
    assert "".join(number + unit for number, unit in parts) == value, value
    scale = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}
    return sum(float(number) * scale[unit] for number, unit in parts)


def dockerfile_instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, continuation lines joined and comments dropped."""
    logical: list[str] = []
    pending = ""
    for line in DOCKERFILE.read_text(encoding="utf-8").splitlines():
        stripped = line.strip()
        if not pending and (not stripped or stripped.startswith("#")):
            continue
        if stripped.endswith("\\"):
            pending += stripped[:-1] + " "
            continue
        logical.append(pending + stripped)
        pending = ""
    assert not pending, "dangling line continuation"
    pairs = []
    for text in logical:
        keyword, _, rest = text.partition(" ")
        pairs.append((keyword.upper(), rest.strip()))
    return pairs


def final_stage() -> list[tuple[str, str]]:
    """The instructions of the last stage: the image that runs."""
    instructions = dockerfile_instructions()
    starts = [index for index, (keyword, _) in enumerate(instructions) if keyword == "FROM"]
    assert starts, "no FROM"
    return instructions[starts[-1] :]


def exec_form(arguments: str) -> list[str]:
    """Parse an exec-form (JSON array) argument list; fail for the shell form."""
    parsed = json.loads(arguments)
    assert isinstance(parsed, list), arguments
    assert all(isinstance(item, str) for item in parsed), arguments
    return parsed


@cache
def alert_rules() -> list[dict[str, str]]:
    """Every alerting rule in alerts.yml as flat fields (alert, expr, for, severity, ...)."""
    return [_rule_fields(chunk) for chunk in _items(ALERTS.read_text(encoding="utf-8"), "alert")]


def alert_test_cases() -> list[dict[str, str]]:
    """Every alert_rule_test case in alerts_test.yml: alertname and its exp_alerts text."""
    text = (PROMETHEUS_DIR / "alerts_test.yml").read_text(encoding="utf-8")
    return [
        {"alertname": _scalar(chunk, "alertname"), "exp_alerts": _scalar(chunk, "exp_alerts")}
        for chunk in _items(text, "eval_time")
    ]


# The project pins no YAML library, and these two files are ours and regular: a list item per
# rule ("- alert: ...") or case ("- eval_time: ..."), "key: value" lines and "|" blocks. The
# readers below understand exactly that much; promtool (when installed) parses them for real.


def _items(text: str, first_key: str) -> list[str]:
    """Split a YAML list into the text of each item whose first key is ``first_key``."""
    starts = [m.start() for m in re.finditer(rf"^(\s*)- {first_key}:", text, re.MULTILINE)]
    chunks = []
    for index, start in enumerate(starts):
        end = starts[index + 1] if index + 1 < len(starts) else len(text)
        chunk = text[start:end].replace(f"- {first_key}:", f"  {first_key}:", 1)
        chunks.append(chunk)
    return chunks


def _scalar(chunk: str, key: str) -> str:
    """The value of ``key`` in an item: a plain or double-quoted scalar, or a "|" block."""
    match = re.search(rf"^(\s*){key}:[ ]*(.*)$", chunk, re.MULTILINE)
    if match is None:
        return ""
    indent, value = len(match.group(1)), match.group(2).strip()
    if value in ("|", ">"):
        block = []
        for line in chunk[match.end() + 1 :].splitlines():
            if line.strip() and len(line) - len(line.lstrip()) <= indent:
                break
            block.append(line.strip())
        return "\n".join(block).strip()
    if value.startswith('"'):
        parsed = json.loads(value)
        assert isinstance(parsed, str)
        return parsed
    return value


def _rule_fields(chunk: str) -> dict[str, str]:
    keys = ("alert", "expr", "for", "severity", "summary", "description", "runbook_url")
    return {key: _scalar(chunk, key) for key in keys}


@cache
def dashboard() -> dict[str, Any]:
    """The Grafana dashboard, parsed."""
    parsed = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    assert isinstance(parsed, dict)
    return parsed


def dashboard_panels() -> Iterator[dict[str, Any]]:
    """Every panel, including those nested in collapsed rows."""
    for panel in dashboard()["panels"]:
        yield panel
        yield from panel.get("panels", [])


def dashboard_exprs() -> list[str]:
    """Every PromQL expression of the dashboard (panels and template variables)."""
    exprs = [target["expr"] for panel in dashboard_panels() for target in panel.get("targets", [])]
    for variable in dashboard()["templating"]["list"]:
        query = variable.get("query")
        if isinstance(query, dict):
            exprs.append(query["query"])
    return exprs


# ---- what the application really exports ----------------------------------------------


@cache
def exported_families() -> dict[str, Metric]:
    """Metric families of a fresh Metrics, by the family name prometheus_client reports."""
    registry = CollectorRegistry()
    Metrics.create(registry, "0-test")
    return {family.name: family for family in registry.collect()}


@cache
def exported_series_names() -> dict[str, str]:
    """Every sample name a scrape can contain, mapped to its family name."""
    suffixes = {
        "counter": ("_total", "_created"),
        "histogram": ("_bucket", "_sum", "_count", "_created"),
        "gauge": ("",),
        "info": ("_info",),
        "summary": ("", "_sum", "_count", "_created"),
    }
    names: dict[str, str] = {}
    for name, family in exported_families().items():
        for suffix in suffixes.get(family.type, ("",)):
            names[name + suffix] = name
    return names


@cache
def exported_label_names() -> dict[str, frozenset[str]]:
    """Label names of every family, read from the collectors registered by Metrics.create."""
    registry = CollectorRegistry()
    metrics = Metrics.create(registry, "0-test")
    labels: dict[str, frozenset[str]] = {}
    for value in vars_of(metrics):
        names = getattr(value, "_labelnames", None)
        name = getattr(value, "_name", None)
        if isinstance(names, tuple) and isinstance(name, str):
            labels[name] = frozenset(names)
    return labels


def vars_of(metrics: Metrics) -> list[object]:
    """The field values of a slotted dataclass instance."""
    return [getattr(metrics, slot) for slot in type(metrics).__slots__]


_SELECTOR_RE = re.compile(r"\b([a-zA-Z_:][a-zA-Z0-9_:]*)\s*\{([^}]*)\}")
_MATCHER_RE = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)\s*(=~|!~|!=|=)\s*"([^"]*)"')
_ADAPTER_NAME_RE = re.compile(r"\badapter_[a-z0-9_]+\b")
# Labels every scrape adds (job, instance) or histograms carry (le).
_SCRAPE_LABELS = frozenset({"job", "instance", "le"})


def promql_exprs() -> list[tuple[str, str]]:
    """(where, expression) for every PromQL expression in alerts.yml and the dashboard."""
    found = [(f"alert {rule['alert']}", str(rule["expr"])) for rule in alert_rules()]
    found += [("dashboard", expr) for expr in dashboard_exprs()]
    return found


# ---- fly.toml ------------------------------------------------------------------------


def test_fly_env_is_a_valid_adapter_config() -> None:
    """Every [env] value of fly.toml passes the adapter's own start-up validation."""
    config = fly_config()
    assert str(config.upstream_url).startswith("http://beacon-runner-production.")
    assert config.client_ip_header == "Fly-Client-IP"
    assert fly()["env"]["ADAPTER_ROLLOUT_PERCENT"] == "0"


def test_fly_ports_are_the_ports_the_app_listens_on() -> None:
    """internal_port, the readiness check and [metrics] use the configured listeners."""
    config = fly_config()
    defaults = default_config()
    assert (config.port, config.admin_port) == (defaults.port, defaults.admin_port)
    assert config.host == "0.0.0.0"
    assert fly()["http_service"]["internal_port"] == config.port
    assert fly()["metrics"]["port"] == config.admin_port
    assert fly()["metrics"]["path"] == "/metrics"
    assert readiness_check()["port"] == config.admin_port


def test_fly_stop_signal_leaves_time_to_drain() -> None:
    """kill_signal is SIGTERM and kill_timeout outlasts ADAPTER_SHUTDOWN_GRACE with a margin."""
    assert fly()["kill_signal"] == "SIGTERM"
    kill_timeout = fly_duration_seconds(fly()["kill_timeout"])
    assert kill_timeout <= 300, "Fly caps kill_timeout at 300 s"
    assert kill_timeout >= fly_config().shutdown_grace + MIN_KILL_MARGIN_SECONDS
    assert fly_config().shutdown_grace == default_config().shutdown_grace


def readiness_check() -> dict[str, Any]:
    """The top-level check that probes the admin port's /readyz."""
    checks: list[dict[str, Any]] = [
        check for check in fly().get("checks", {}).values() if check.get("path") == "/readyz"
    ]
    assert len(checks) == 1, "fly.toml needs one top-level [checks.*] on /readyz"
    return checks[0]


def test_fly_readiness_check_targets_the_admin_port() -> None:
    """The /readyz check is an HTTP check on the admin port: service checks cannot name a port."""
    check = readiness_check()
    assert check["type"] == "http"
    assert check["port"] == fly_config().admin_port
    assert check.get("method", "get").lower() == "get"
    for key in ("interval", "timeout", "grace_period"):
        assert fly_duration_seconds(check[key]) > 0
    # [[http_service.checks]] probe internal_port, where /readyz would reach the runner.
    for service_check in fly()["http_service"].get("checks", []):
        assert service_check["path"] != "/readyz"


def test_fly_routing_check_asks_a_runner_health_route() -> None:
    """The service check goes through the proxy to a runner health path the adapter knows."""
    checks = fly()["http_service"]["checks"]
    assert checks
    for check in checks:
        assert route_label(check.get("method", "GET").upper(), check["path"]) == ROUTE_HEALTH


async def wait_for_status(
    http: aiohttp.ClientSession, url: URL, status: int, *, seconds: float = 5.0
) -> dict[str, Any]:
    """Poll ``url`` until it answers ``status`` (bounded in time); return its JSON body."""
    async with asyncio.timeout(seconds):
        while True:
            async with http.get(url) as response:
                body = await response.json()
                if response.status == status:
                    assert isinstance(body, dict)
                    return body
            await asyncio.sleep(0.02)


async def test_fly_checks_and_metrics_path_answer_on_a_running_adapter(
    upstream: RecordingUpstream,
    start_adapter: AdapterFactory,
    start_admin: AdminFactory,
    http: aiohttp.ClientSession,
) -> None:
    """With fly.toml's [env], the paths Fly probes and scrapes answer on the real apps."""
    env = {**fly()["env"], "ADAPTER_UPSTREAM_URL": str(upstream.url)}
    adapter = await start_adapter(upstream.url, env, readiness=Readiness(probe_interval=0.02))
    admin = await start_admin(adapter.app)

    ready = await wait_for_status(http, admin.with_path(readiness_check()["path"]), 200)
    assert ready["status"] == "ready"
    upstream.health_status = 503
    not_ready = await wait_for_status(http, admin.with_path(readiness_check()["path"]), 503)
    assert not_ready["status"] == "not_ready"
    upstream.health_status = 200

    for check in fly()["http_service"]["checks"]:
        async with http.request(
            check.get("method", "GET"), adapter.url.with_path(check["path"])
        ) as response:
            assert response.status == 200
        assert upstream.last.raw_path == check["path"], "the routing check reaches the runner"

    metrics_url = admin.with_path(fly()["metrics"]["path"])
    async with http.get(metrics_url, headers={"Accept-Encoding": "identity"}) as response:
        assert response.status == 200
        text = await response.text()
    assert 'adapter_requests_total{code="200",method="GET",route="health"}' in text


def test_fly_http_service_and_deploy_strategy() -> None:
    """HTTPS is forced, concurrency counts requests, and blue-green has a check to wait for."""
    service = fly()["http_service"]
    assert service["force_https"] is True
    concurrency = service["concurrency"]
    assert concurrency["type"] == "requests"
    assert 0 < concurrency["soft_limit"] <= concurrency["hard_limit"]
    assert fly()["deploy"]["strategy"] in ("bluegreen", "canary")
    assert fly()["build"]["dockerfile"] == "deploy/Dockerfile"
    assert (ROOT / fly()["build"]["dockerfile"]).is_file()


def test_fly_toml_holds_no_secret() -> None:
    """The signing key is a Fly secret, never an [env] value."""
    env = fly()["env"]
    assert "ADAPTER_SIGNING_KEY" not in env
    assert "ADAPTER_SIGNING_KEY=" in FLY_TOML.read_text(encoding="utf-8"), "document the secret"


# ---- Dockerfile ----------------------------------------------------------------------


def test_dockerfile_command_is_the_console_script_serve() -> None:
    """ENTRYPOINT + CMD, both exec form, run `beacon-adapter serve` as pyproject defines it."""
    stage = final_stage()
    entrypoint = [args for keyword, args in stage if keyword == "ENTRYPOINT"]
    cmd = [args for keyword, args in stage if keyword == "CMD"]
    argv = (exec_form(entrypoint[-1]) if entrypoint else []) + (exec_form(cmd[-1]) if cmd else [])
    assert argv == ["beacon-adapter", "serve"]

    scripts = tomllib.loads(PYPROJECT.read_text(encoding="utf-8"))["project"]["scripts"]
    assert scripts[argv[0]] == "adapter.cli:main"
    args = build_parser().parse_args(argv[1:])
    assert args.command == "serve"
    assert callable(args.handler)


def test_dockerfile_runs_as_a_non_root_user() -> None:
    """The last USER of the running stage is neither root nor uid 0."""
    users = [args for keyword, args in final_stage() if keyword == "USER"]
    assert users, "no USER in the final stage"
    user = users[-1].split(":")[0]
    assert user not in ("root", "0")


def test_dockerfile_base_exposes_and_environment() -> None:
    """python:3.11 slim base, the app's two ports exposed, unbuffered output, no secret baked in."""
    instructions = dockerfile_instructions()
    bases = [args.split()[0] for keyword, args in instructions if keyword == "FROM"]
    for base in bases:
        assert re.fullmatch(r"python:3\.11(\.\d+)?-slim(-[a-z]+)?(@sha256:[0-9a-f]{64})?", base)
    exposed = {
        int(port.split("/")[0])
        for keyword, args in final_stage()
        if keyword == "EXPOSE"
        for port in args.split()
    }
    config = default_config()
    assert exposed == {config.port, config.admin_port}
    env_text = " ".join(args for keyword, args in final_stage() if keyword == "ENV")
    assert "PYTHONUNBUFFERED=1" in env_text
    for keyword, args in instructions:
        if keyword in ("ENV", "ARG", "LABEL"):
            assert "SIGNING_KEY" not in args, f"{keyword} {args}"


def test_dockerfile_installs_runtime_dependencies_only() -> None:
    """The package is installed with `pip install .`, never with the [dev] extra."""
    runs = " ".join(args for keyword, args in dockerfile_instructions() if keyword == "RUN")
    assert re.search(r"pip install (--[a-z-]+ )*\.(\s|$|&)", runs)
    assert "[dev]" not in runs


def test_dockerfile_leaves_the_devkit_out_of_the_image() -> None:
    """adapter/devkit is removed after the package is copied and before `pip install .`."""
    instructions = dockerfile_instructions()
    copied = [
        index
        for index, (keyword, args) in enumerate(instructions)
        if keyword == "COPY" and args.split()[0].rstrip("/") == "adapter"
    ]
    installs = [
        index
        for index, (keyword, args) in enumerate(instructions)
        if keyword == "RUN" and re.search(r"pip install (--[a-z-]+ )*\.(\s|$|&)", args)
    ]
    assert copied
    assert installs
    assert copied[0] < installs[0]
    runs = [
        args for keyword, args in instructions[copied[0] + 1 : installs[0] + 1] if keyword == "RUN"
    ]
    before_install = " && ".join(runs)[: " && ".join(runs).rindex("pip install")]
    assert re.search(r"rm -rf (\./)?adapter/devkit(/)?(\s|$)", before_install), before_install


# Runs the CLI as in the image: any import of adapter.devkit fails as if the folder were gone.
_WITHOUT_DEVKIT = """
import importlib.abc, subprocess, sys

class NoDevkit(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name == "adapter.devkit" or name.startswith("adapter.devkit."):
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None

sys.meta_path.insert(0, NoDevkit())
try:
    import adapter.devkit
except ModuleNotFoundError:
    pass
else:
    sys.exit("the devkit blocker did not block")
from adapter.cli import main
try:
    status = main(sys.argv[1:])
except SystemExit as exc:
    status = exc.code
assert not [name for name in sys.modules if name.startswith("adapter.devkit")]
sys.exit(status)
"""


def _cli_without_devkit(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(  # noqa: S603 - fixed interpreter and code
        [sys.executable, "-c", _WITHOUT_DEVKIT, *argv],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
        check=False,
    )


def test_cli_without_the_devkit_lists_every_command() -> None:
    """Without the devkit, --help still lists every command; the devkit's say they are absent."""
    result = _cli_without_devkit("--help")
    assert result.returncode == 0, result.stderr
    for command in ("serve", "canonical", "verify", "keygen", "sign", "bucket"):
        assert re.search(rf"^\s+{command}\s", result.stdout, re.MULTILINE), command
    assert result.stdout.count("not in this build") == 2


@pytest.mark.parametrize(
    ("argv", "needle"),
    [
        pytest.param(("serve", "--help"), "usage: beacon-adapter serve", id="serve-help"),
        pytest.param(
            ("canonical", "tests/vectors/portal-crossregion-2025-10-12.json"),
            '{"benchmark":',
            id="canonical",
        ),
        pytest.param(
            ("bucket", "0x67f3d16a91991cf169920f1e79f78e66708da328"), "bucket    480", id="bucket"
        ),
    ],
)
def test_cli_without_the_devkit_runs_production_commands(
    argv: tuple[str, ...], needle: str
) -> None:
    """serve and the operator commands work in a build without the devkit."""
    result = _cli_without_devkit(*argv)
    assert result.returncode == 0, result.stderr
    assert needle in result.stdout
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize(
    "argv",
    [("demo",), ("reference-runner", "--port", "1")],
    ids=["demo", "reference-runner"],
)
def test_cli_without_the_devkit_says_the_demo_is_not_in_this_build(argv: tuple[str, ...]) -> None:
    """The devkit's commands exit 2 with one line, no traceback, whatever their arguments."""
    result = _cli_without_devkit(*argv)
    assert result.returncode == 2
    assert result.stderr == (
        f"beacon-adapter {argv[0]}: not in this build: the devkit is excluded from the "
        "production image\n"
    )


def test_dockerignore_keeps_local_state_out_and_sources_in() -> None:
    """The root .dockerignore drops .venv and .git but keeps what the Dockerfile copies."""
    patterns = [
        line.strip()
        for line in DOCKERIGNORE.read_text(encoding="utf-8").splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert not any(pattern.startswith("!") for pattern in patterns), "keep the list simple"
    for needed in (".venv", ".git"):
        assert needed in patterns
    for kept in ("adapter", "adapter/cli.py", "pyproject.toml", "README.md", "deploy/Dockerfile"):
        for pattern in patterns:
            assert not fnmatch.fnmatch(kept, pattern), f"{pattern} drops {kept}"
            assert not fnmatch.fnmatch(kept.split("/")[0], pattern), f"{pattern} drops {kept}"


# ---- metric names in rules and dashboard ---------------------------------------------


def test_every_metric_in_rules_and_dashboard_is_exported() -> None:
    """Each adapter_* series named by an alert or a panel is one the app really exports."""
    exported = exported_series_names()
    for where, expr in promql_exprs():
        for name in _ADAPTER_NAME_RE.findall(expr):
            assert name in exported, f"{where}: {name} is not exported"


def test_every_label_in_rules_and_dashboard_exists() -> None:
    """Label matchers in alerts and panels use label names the metric really has."""
    exported = exported_series_names()
    labels = exported_label_names()
    for where, expr in promql_exprs():
        for name, matchers in _SELECTOR_RE.findall(expr):
            if name == "up":
                continue
            assert name in exported, f"{where}: {name} is not exported"
            family = exported[name]
            for label, _op, _value in _MATCHER_RE.findall(matchers):
                allowed = labels.get(family, frozenset()) | _SCRAPE_LABELS
                assert label in allowed, f"{where}: {name} has no label {label}"


@cache
def label_values_in_code() -> dict[str, frozenset[str]]:
    """Label values the adapter can emit: its closed sets plus literal ``.labels(x="...")``."""
    values: dict[str, set[str]] = {
        "route": set(ROUTES),
        "kind": set(UPSTREAM_ERROR_KINDS),
        "decision": {str(item) for item in Decision},
        "reason": {str(item) for item in Reason},
        "outcome": {str(item) for item in Reason},  # shadow outcomes are rewrite reasons
        "scheme": set(SCHEMES),
    }
    for source in sorted((ROOT / "adapter").glob("*.py")):
        for node in ast.walk(ast.parse(source.read_text(encoding="utf-8"))):
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and node.func.attr == "labels"
            ):
                for keyword in node.keywords:
                    if keyword.arg and isinstance(keyword.value, ast.Constant):
                        values.setdefault(keyword.arg, set()).add(str(keyword.value.value))
    return {label: frozenset(found) for label, found in values.items()}


def test_label_values_in_rules_and_dashboard_exist() -> None:
    """label="value" matchers (and each alternative of =~) name values the code emits."""
    known = label_values_in_code()
    for where, expr in promql_exprs():
        for _name, matchers in _SELECTOR_RE.findall(expr):
            for label, op, value in _MATCHER_RE.findall(matchers):
                if label not in known or "$" in value:
                    continue
                if op in ("=", "!="):
                    wanted = [value]
                elif re.fullmatch(r"[a-z0-9_|-]+", value):
                    wanted = value.split("|")
                else:
                    continue  # a real pattern such as 5.. for status codes
                for item in wanted:
                    assert item in known[label], f"{where}: {label}={item!r} is never emitted"


def test_fly_env_names_are_read_by_the_adapter() -> None:
    """Every [env] name appears in the adapter's code: a typo would be silently ignored."""
    sources = "".join(path.read_text(encoding="utf-8") for path in (ROOT / "adapter").glob("*.py"))
    for name in fly()["env"]:
        assert f'"{name}"' in sources, f"fly.toml sets {name}, which the adapter never reads"


# ---- alert rules ---------------------------------------------------------------------


def runbook_anchors() -> set[str]:
    """GitHub-style anchors of every heading in docs/runbook.md."""
    anchors = set()
    for line in RUNBOOK.read_text(encoding="utf-8").splitlines():
        match = re.match(r"^#{1,6}\s+(.*)$", line)
        if match:
            text = match.group(1).strip().lower()
            text = re.sub(r"[^\w\- ]", "", text)
            anchors.add(text.replace(" ", "-"))
    return anchors


def test_alerts_have_severity_for_annotations_and_runbook_anchor() -> None:
    """Each alert waits (for:), carries a severity and links to an existing runbook heading."""
    rules = alert_rules()
    assert len(rules) >= 7
    anchors = runbook_anchors()
    for rule in rules:
        assert fly_duration_seconds(rule["for"]) >= 0, rule["alert"]
        assert rule["expr"], rule["alert"]
        assert rule["severity"] in SEVERITIES, rule["alert"]
        assert rule["summary"], rule["alert"]
        assert rule["description"], rule["alert"]
        path, _, anchor = rule["runbook_url"].partition("#")
        assert path.endswith("docs/runbook.md"), rule["alert"]
        assert anchor in anchors, f"{rule['alert']}: no heading for #{anchor}"
        assert anchor == rule["alert"].lower()


@pytest.mark.parametrize(
    "alert",
    [
        pytest.param("AdapterDown", id="down"),
        pytest.param("AdapterCrossRegionErrorRatioHigh", id="rewrite-errors"),
        pytest.param("AdapterFallbacks", id="fallbacks"),
        pytest.param("AdapterSelfCheckFailed", id="self-check"),
        pytest.param("AdapterBadSignatureSpike", id="bad-signature"),
        pytest.param("AdapterUpstream5xxRatioHigh", id="upstream-5xx"),
        pytest.param("AdapterP99LatencyHigh", id="p99"),
        pytest.param("AdapterRewriteGuardOpen", id="rewrite-guard"),
        pytest.param("AdapterReplayCheckFailing", id="replay-check"),
    ],
)
def test_required_alert_exists_and_is_unit_tested(alert: str) -> None:
    """Each alert the runbook documents is defined and has firing and quiet promtool cases."""
    assert alert in {rule["alert"] for rule in alert_rules()}
    cases = [case for case in alert_test_cases() if case["alertname"] == alert]
    assert any(case["exp_alerts"] == "" for case in cases), f"{alert}: no firing case"
    assert any(case["exp_alerts"] == "[]" for case in cases), f"{alert}: no quiet case"


def promtool() -> str:
    """Path of promtool, or skip: Debian's `prometheus` package provides it."""
    found = shutil.which("promtool")
    if found is None:
        pytest.skip("promtool not on PATH (apt-get install prometheus); rule checks skipped")
    return found


@pytest.mark.parametrize(
    "args",
    [
        pytest.param(("check", "rules", "alerts.yml"), id="check-rules"),
        pytest.param(("test", "rules", "alerts_test.yml"), id="test-rules"),
        pytest.param(("check", "config", "prometheus.yml"), id="check-config"),
    ],
)
def test_promtool_accepts_the_prometheus_files(args: tuple[str, ...]) -> None:
    """promtool validates the rules, runs their unit tests and checks the scrape config."""
    result = subprocess.run(  # noqa: S603 - fixed arguments, no shell
        [promtool(), *args],
        cwd=PROMETHEUS_DIR,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


# ---- dashboard -----------------------------------------------------------------------


def test_dashboard_panels_are_wired_to_the_datasource_variable() -> None:
    """Panels have unique ids, query the $datasource variable and cover the key series."""
    panels = list(dashboard_panels())
    ids = [panel["id"] for panel in panels]
    assert len(ids) == len(set(ids))
    variables = {variable["name"] for variable in dashboard()["templating"]["list"]}
    assert "datasource" in variables
    for panel in panels:
        for target in panel.get("targets", []):
            assert panel["datasource"]["uid"] == "${datasource}", panel["title"]
            assert target["expr"].strip(), panel["title"]
    used = {name for expr in dashboard_exprs() for name in _ADAPTER_NAME_RE.findall(expr)}
    exported = exported_series_names()
    assert used <= set(exported), sorted(used - set(exported))
    assert {exported[name] for name in used} == set(exported_families()), "a metric has no panel"
