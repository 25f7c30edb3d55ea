"""``beacon-adapter demo``: the bias-analysis 404 and its fix, end to end, in one command.

It starts the embedded reference runner and the adapter on free local ports and walks
through the story with real HTTP: a portal-signed multi-region job at 0 % gets the 404,
the same kind of job at 100 % goes cross-region and gets its analysis, a single-region
job passes through, a repeat is answered idempotently, the metrics show every
decision, and finally the job from the start is backfilled through the admin endpoints
(on the reference runner's own database) and its analysis answers 200 too. Each step
checks what it shows; the exit status is 0 only if all behaved.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import os
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import orjson
from aiohttp import web
from nacl.signing import SigningKey
from yarl import URL

from adapter.app import create_admin_app, create_app, make_admin_runner, make_proxy_runner
from adapter.config import Config
from adapter.devkit.portal import body, portal_spec, sign
from adapter.devkit.reference_runner import create_reference_runner
from adapter.jobs.signing import ServiceKey
from adapter.log import configure_logging

DEFAULT_DB = Path("demo-data") / "reference-runner.sqlite3"
JSON_HEADERS = {"Content-Type": "application/json; charset=utf-8", "Accept": "application/json"}


@dataclass
class Story:
    """What the demo printed and whether every step behaved."""

    out: Callable[[str], None] = print
    failures: list[str] = field(default_factory=list)
    steps: int = 0

    def act(self, title: str) -> None:
        self.out(f"\n== {title}")

    def check(self, ok: bool, what: str, detail: str = "") -> None:
        self.steps += 1
        self.out(f"  [{'ok' if ok else 'FAIL'}] {what}" + (f"  ({detail})" if detail else ""))
        if not ok:
            self.failures.append(what)

    def note(self, text: str) -> None:
        self.out(f"       {text}")


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    body: Any


async def _start(runner: web.AppRunner) -> URL:
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    host, port = runner.addresses[0][:2]
    return URL(f"http://{host}:{port}")


@contextlib.asynccontextmanager
async def _adapter(env: dict[str, str]) -> AsyncIterator[tuple[URL, URL]]:
    """The adapter's proxy and admin ports, run exactly as ``serve`` runs them."""
    config = Config.from_env(env)  # its ports are unused: both apps bind free ports here
    proxy_app = create_app(config)
    proxy_runner = make_proxy_runner(proxy_app)
    admin_runner = make_admin_runner(create_admin_app(proxy_app))
    try:
        yield await _start(proxy_runner), await _start(admin_runner)
    finally:
        await proxy_runner.cleanup()
        await admin_runner.cleanup()


async def _call(
    http: aiohttp.ClientSession, method: str, url: URL, data: bytes | None = None
) -> Answer:
    async with http.request(method, url, data=data, headers=JSON_HEADERS) as response:
        raw = await response.read()
        try:
            parsed: Any = orjson.loads(raw)
        except orjson.JSONDecodeError:
            parsed = raw.decode("utf-8", "replace")
        return Answer(response.status, dict(response.headers), parsed)


def _job(portal_key: SigningKey, job_id: str, regions: tuple[str, ...]) -> bytes:
    spec = portal_spec(job_id=job_id, regions=regions)
    return body(sign(spec, portal_key, "portal_5fa6ece"))


async def _submit(
    story: Story, http: aiohttp.ClientSession, proxy: URL, data: bytes, expect: int, decision: str
) -> Answer:
    answer = await _call(http, "POST", proxy / "api/v1/jobs", data)
    header = answer.headers.get("X-Adapter-Decision", "")
    story.check(
        answer.status == expect and header.startswith(decision),
        f"POST /api/v1/jobs -> {answer.status}",
        f"X-Adapter-Decision: {header}",
    )
    story.note(f"runner answered {orjson.dumps(answer.body).decode()[:160]}")
    return answer


async def _analysis(
    story: Story, http: aiohttp.ClientSession, proxy: URL, job_id: str, expect: int
) -> Answer:
    answer = await _call(http, "GET", proxy / f"api/v2/jobs/{job_id}/bias-analysis")
    summary = answer.body.get("error") if isinstance(answer.body, dict) else None
    if answer.status == 200 and isinstance(answer.body, dict):
        summary = f"region_scores={orjson.dumps(answer.body.get('region_scores')).decode()}"
    story.check(
        answer.status == expect,
        f"GET /api/v2/jobs/{job_id}/bias-analysis -> {answer.status}",
        str(summary),
    )
    return answer


async def _workflow(
    story: Story, http: aiohttp.ClientSession, admin: URL, job_id: str, expect: str
) -> None:
    answer = await _call(http, "GET", admin / "admin/jobs" / job_id / "workflow")
    workflow = answer.body.get("workflow") if isinstance(answer.body, dict) else None
    story.check(workflow == expect, f"admin workflow of {job_id}: {workflow}")


async def _metrics(story: Story, http: aiohttp.ClientSession, admin: URL) -> None:
    answer = await _call(http, "GET", admin / "metrics")
    lines = [
        line
        for line in str(answer.body).splitlines()
        if line.startswith(("adapter_rewrite_decisions_total", "adapter_signature_checks_total"))
    ]
    for line in lines:
        story.note(line)
    story.check(
        any('decision="rewritten"' in line for line in lines),
        "metrics show the rewrite decisions (admin port /metrics)",
    )


async def _backfill(
    story: Story, http: aiohttp.ClientSession, env: dict[str, str], db_path: Path, job_id: str
) -> None:
    """Historical jobs: the admin endpoints of the backfill, on the runner's own database.

    Production points ADAPTER_DATABASE_URL at the runner's PostgreSQL; the reference runner
    keeps the same tables in SQLite, which the backfill also reads and writes (sqlite:///).
    """
    token = base64.urlsafe_b64encode(os.urandom(24)).decode()
    backfill_env = {
        **env,
        "ADAPTER_ADMIN_TOKEN": token,
        "ADAPTER_DATABASE_URL": f"sqlite:///{db_path}",  # this process's working directory
    }
    auth = {**JSON_HEADERS, "Authorization": f"Bearer {token}"}
    async with _adapter(backfill_env) as (proxy, admin):
        jobs = admin / "admin/jobs" / job_id
        async with http.get(jobs / "can-analyze", headers=auth) as response:
            body = await response.json()
        story.check(
            response.status == 200 and body.get("candidate") is True,
            f"admin can-analyze {job_id}: candidate={body.get('candidate')}",
            f"cross-region row: {body.get('cross_region_execution')},"
            f" analysis: {body.get('analysis')}",
        )
        async with http.post(jobs / "backfill-analysis", headers=auth) as response:
            body = await response.json()
        wrote = body.get("wrote") or {}
        story.check(
            response.status == 200 and body.get("outcome") == "written",
            f"admin backfill-analysis {job_id}: {body.get('outcome')}",
            f"execution {wrote.get('cross_region_execution', {}).get('status')},"
            f" {len(wrote.get('region_results', []))} region rows,"
            f" {wrote.get('analysis', {}).get('risk_level')}",
        )
        await _analysis(story, http, proxy, job_id, 200)
        async with http.post(jobs / "backfill-analysis", headers=auth) as response:
            body = await response.json()
        story.check(
            response.status == 409 and body.get("reason") == "already_backfilled",
            "a second backfill writes nothing",
            f"{response.status} {body.get('reason')}",
        )


async def run_demo(db_path: Path, story: Story) -> int:
    """Tell the story; return 0 when every step behaved, else 1."""
    db_path.parent.mkdir(parents=True, exist_ok=True)
    for stale in (db_path, db_path.with_name(db_path.name + "-journal")):
        stale.unlink(missing_ok=True)
    portal_key = SigningKey.generate()
    service_key = ServiceKey.from_seed(os.urandom(32))
    stamp = int(time.time())
    runner = web.AppRunner(create_reference_runner(db_path), access_log=None)
    upstream = await _start(runner)
    story.out(f"reference runner: {upstream}  (SQLite: {db_path})")
    story.out(f"portal key:  {base64.b64encode(bytes(portal_key.verify_key)).decode()}")
    story.out(f"service key: {service_key.public_key_b64}  (what the adapter re-signs with)")
    env = {"ADAPTER_UPSTREAM_URL": str(upstream), "ADAPTER_LOG_LEVEL": "warning"}
    before, after, single = (f"bias-detection-demo-{stamp}-{n}" for n in ("a", "b", "c"))
    try:
        async with aiohttp.ClientSession() as http:
            story.act("1. Adapter at ADAPTER_ROLLOUT_PERCENT=0: the bug")
            async with _adapter({**env, "ADAPTER_ROLLOUT_PERCENT": "0"}) as (proxy, admin):
                story.out(f"adapter: {proxy}  admin: {admin}")
                data = _job(portal_key, before, ("US", "EU", "ASIA"))
                await _submit(story, http, proxy, data, 202, "passthrough; reason=not_in_rollout")
                await _analysis(story, http, proxy, before, 404)
                await _workflow(story, http, admin, before, "standard")

            story.act("2. Adapter at ADAPTER_ROLLOUT_PERCENT=100: the fix")
            rewrite_env = {
                **env,
                "ADAPTER_ROLLOUT_PERCENT": "100",
                "ADAPTER_SIGNING_KEY": service_key.seed_b64,
            }
            async with _adapter(rewrite_env) as (proxy, admin):
                story.out(f"adapter: {proxy}  admin: {admin}")
                data = _job(portal_key, after, ("US", "EU", "ASIA"))
                await _submit(story, http, proxy, data, 202, "rewritten; reason=in_rollout")
                await _analysis(story, http, proxy, after, 200)
                await _workflow(story, http, admin, after, "cross-region-analysed")

                story.act("3. What is not rewritten, and repeats")
                data_single = _job(portal_key, single, ("US",))
                await _submit(
                    story, http, proxy, data_single, 202, "passthrough; reason=single_region"
                )
                await _submit(story, http, proxy, data, 200, "rewritten; reason=idempotent_repeat")

                story.act("4. Every decision is visible")
                await _metrics(story, http, admin)

            story.act("5. The job from step 1 is backfilled: its bias analysis answers 200")
            await _backfill(story, http, env, db_path, before)
    finally:
        await runner.cleanup()
    query = "select jobspec_id, status from jobs"
    story.out(f'\nInspect the runner\'s tables: sqlite3 {db_path} "{query}"')
    if story.failures:
        story.out(f"\n{len(story.failures)} of {story.steps} steps did not behave.")
        return 1
    story.out(f"\nAll {story.steps} steps behaved: 404 before, 200 after, and 200 backfilled.")
    return 0


def _demo_command(args: argparse.Namespace) -> int:
    configure_logging("warning", "console")
    return asyncio.run(run_demo(Path(args.db), Story()))


def register(subparsers: Any) -> None:
    """Add the ``demo`` command to the ``beacon-adapter`` CLI."""
    parser = subparsers.add_parser(
        "demo",
        help="show the bias-analysis 404 and the adapter's fix against the reference runner",
    )
    parser.add_argument(
        "--db",
        default=str(DEFAULT_DB),
        help=f"where the reference runner keeps its SQLite data (default: {DEFAULT_DB})",
    )
    parser.set_defaults(handler=_demo_command)
