"""HTTP transport: header rules, HTTP/1.1 parsing, the two request paths and the WebSocket relay.

Knows HTTP and nothing of job specs: it never imports ``adapter.jobs``.
"""
