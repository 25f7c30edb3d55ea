"""``router_path``: the path the runner's router (Go net/http + gin defaults) matches.

Table rows follow Go's ``url.ParseRequestURI`` and gin's default engine settings; the
properties say that any spelling the runner decodes to the same path is decided alike.
"""

from __future__ import annotations

import pytest
from hypothesis import given, strategies as st

from adapter.http.routing import ROUTE_JOBS_SUBMIT, is_jobs_submit, route_label, router_path


@pytest.mark.parametrize(
    ("target", "path"),
    [
        pytest.param("/api/v1/jobs", "/api/v1/jobs", id="origin-form"),
        pytest.param("/api/v1/jobs?x=1&y=%zz", "/api/v1/jobs", id="query-cut-not-decoded"),
        pytest.param("/api/v1/%6Aobs", "/api/v1/jobs", id="escaped-unreserved"),
        pytest.param("/api/v1/%6aobs", "/api/v1/jobs", id="lower-case-hex"),
        pytest.param("/api/v1%2Fjobs", "/api/v1/jobs", id="escaped-slash-decoded-like-go"),
        pytest.param("/%61%70%69/v1/jobs", "/api/v1/jobs", id="all-escaped"),
        pytest.param("/a+b", "/a+b", id="plus-stays-plus"),
        pytest.param("/api/v1/jobs/", "/api/v1/jobs/", id="trailing-slash-kept"),
        pytest.param("/api//v1/jobs", "/api//v1/jobs", id="double-slash-kept"),
        pytest.param("/api/v1/./jobs", "/api/v1/./jobs", id="dot-segment-kept"),
        pytest.param("/API/v1/jobs", "/API/v1/jobs", id="case-kept"),
        pytest.param("//host/api/v1/jobs", "//host/api/v1/jobs", id="no-scheme-no-authority"),
        pytest.param("http://h/api/v1/jobs", "/api/v1/jobs", id="absolute-form"),
        pytest.param("HTTPS://h:8443/api/v1/jobs?q", "/api/v1/jobs", id="absolute-upper-port"),
        pytest.param("http://u:p@h/api/v1/jobs", "/api/v1/jobs", id="absolute-userinfo"),
        pytest.param("http://[::1]:80/api/v1/%6Aobs", "/api/v1/jobs", id="absolute-ipv6"),
        pytest.param("foo+bar://h/api/v1/jobs", "/api/v1/jobs", id="any-scheme"),
        pytest.param("http://h", "", id="absolute-no-path"),
        pytest.param("http:/api/v1/jobs", "", id="scheme-opaque"),
        pytest.param("*", "*", id="asterisk"),
        pytest.param("/a%zz", None, id="bad-escape"),
        pytest.param("/a%4", None, id="short-escape"),
        pytest.param("/a\x01b", None, id="control-byte"),
        pytest.param("/a\x7fb", None, id="del"),
        pytest.param("http://h:port/api/v1/jobs", None, id="bad-port"),
        pytest.param("api/v1/jobs", None, id="relative"),
        pytest.param(":/api/v1/jobs", None, id="missing-scheme"),
        pytest.param("/caf%C3%A9", "/caf\xc3\xa9", id="utf8-bytes-as-latin1"),
    ],
)
def test_router_path(target: str, path: str | None) -> None:
    assert router_path(target) == path


@pytest.mark.parametrize(
    ("method", "target", "expected"),
    [
        pytest.param("POST", "/api/v1/jobs", True, id="plain"),
        pytest.param("POST", "/api/v1/%6Aobs?x", True, id="escaped"),
        pytest.param("POST", "http://runner.internal/api/v1/jobs", True, id="absolute"),
        pytest.param("POST", "/api/v1/jobs/", False, id="trailing-slash-redirected"),
        pytest.param("POST", "/api/v1/jobs/cross-region", False, id="cross-region"),
        pytest.param("post", "/api/v1/jobs", False, id="method-case"),
        pytest.param("PUT", "/api/v1/jobs", False, id="other-method"),
    ],
)
def test_is_jobs_submit(method: str, target: str, expected: bool) -> None:
    assert is_jobs_submit(method, target) is expected
    assert (route_label(method, target) == ROUTE_JOBS_SUBMIT) is expected


_PATH_CHARS = st.sampled_from("abcxyz019-._~!$&'()*+,;=:@/")


def _spell(path: str, escaped: list[bool], upper: bool) -> str:
    """``path`` with the chosen characters percent-escaped."""
    hexes = "%{:02X}" if upper else "%{:02x}"
    return (
        "".join(
            hexes.format(ord(ch)) if escape else ch
            for ch, escape in zip(path, escaped, strict=False)
        )
        + path[len(escaped) :]
    )


@given(
    path=st.lists(_PATH_CHARS, max_size=30).map(lambda chars: "/" + "".join(chars)),
    escaped=st.lists(st.booleans(), max_size=31),
    upper=st.booleans(),
    query=st.sampled_from(["", "?", "?a=1", "?%zz"]),
)
def test_any_escaping_reads_as_the_same_path(
    path: str, escaped: list[bool], upper: bool, query: str
) -> None:
    """Escaping any characters (but the leading slash) changes nothing the router sees."""
    spelled = "/" + _spell(path[1:], escaped, upper)
    assert router_path(spelled + query) == path
    assert router_path(f"http://adapter.test{spelled}{query}") == path


@given(st.text(max_size=40))
def test_any_target_reads_as_a_path_or_none(target: str) -> None:
    """No target makes it raise; what it returns is a path, the empty path of an
    absolute URI without one, ``*``, or None (Go refuses the target)."""
    path = router_path(target)
    assert path is None or path in ("", "*") or path.startswith("/")
