"""Job-spec logic as pure functions over values: Go-exact JSON, the runner's V1 canonical form,
Ed25519 signing, trust, the rollout decision and the rewrite.

Never imports aiohttp or ``adapter.http``.
"""
