"""Checks for spec values that end up in Kong's declarative file (route paths, hosts, CORS
origins), so `validate` refuses what Kong would, at the spec's own line, with a fix.

They are at least as strict as Kong 3.9 (kong_typedefs), and stricter where a value Kong
accepts could never work: a route path is matched against request paths, which only hold
RFC 3986 characters, so a route path with a space, `?`, `#`, a backslash or a control
character would never match; and a CORS origin may only use the regex syntax that Python and
Kong's PCRE read alike (pcre.portable_error).
"""

from __future__ import annotations

import re
from typing import Any

from hostctl.gateway import kong_typedefs as kt
from hostctl.gateway import pcre
from hostctl.spec.schema import Check, Context, Str, describe, failed
from hostctl.spec.yamlsource import Path

_PATH_CHARS = re.compile(r"[A-Za-z0-9._~!$&'()*+,;=:@%/-]*")


def route_path_problem(value: str) -> str | None:
    """Why `value` cannot be a route's path prefix, with how to write it; None when fine."""
    bad = next((c for c in value if not _PATH_CHARS.fullmatch(c)), None)
    if bad is not None:
        shown = f"'{bad}'" if bad.isprintable() else repr(bad)
        return (f"it has {shown}, which a request path cannot hold: use letters, digits and "
                "- . _ ~ ! $ & ' ( ) * + , ; = : @ / (RFC 3986), and %XX escapes for the rest")
    if "//" in value:
        return "it has an empty segment ('//'), which Kong refuses: use single slashes"
    message = kt.router_path(value)
    if message is not None and message.startswith("invalid url-encoded value"):
        return f"Kong refuses it ({message}): '%' starts a %XX escape, write a literal '%' as %25"
    if message is not None and message.startswith("non-normalized path"):
        return (f"Kong refuses it and matches requests against its normalized form "
                f"'{kt.normalize_path(value)}' (no '.' or '..' segments, no escapes of "
                "unreserved characters): write that")
    return message


class RoutePath(Check[str]):
    """A route's path prefix."""

    expected = "a string"
    _shape = Str(r"/[^\s]*", "route paths start with '/' and have no spaces")

    def __call__(self, value: Any, path: Path, ctx: Context) -> str:
        checked: str = self._shape(value, path, ctx)
        if failed(checked):
            return checked
        problem = route_path_problem(checked)
        if problem is not None:
            return ctx.error(path, f"{describe(checked)} is not a usable path prefix: "
                                   f"{problem}")
        return checked


class RouteHost(Check[str]):
    """A route's host: a DNS name, optionally with one leftmost wildcard label and a port."""

    expected = "a string"
    _shape = Str(r"(\*\.)?[a-z0-9]([a-z0-9.-]*[a-z0-9])?(:[0-9]+)?",
                 "give a DNS name such as api.example.org or *.example.org")

    def __call__(self, value: Any, path: Path, ctx: Context) -> str:
        checked: str = self._shape(value, path, ctx)
        if failed(checked):
            return checked
        message = kt.route_host(checked)
        if message is not None:
            return ctx.error(path, f"{describe(checked)} is refused by Kong ({message}): give "
                                   "a DNS name such as api.example.org or *.example.org, with "
                                   "a port of at most 65535")
        return checked


class CorsOrigin(Check[str]):
    """A CORS origin: '*', an origin, or a regex that Kong (PCRE) and Python read alike."""

    expected = "a string"
    _shape = Str(r"\*|https?://[^\s/]+|[^\s]+", "give '*', an origin such as "
                 "https://app.example.org, or a regex")

    def __call__(self, value: Any, path: Path, ctx: Context) -> str:
        checked: str = self._shape(value, path, ctx)
        if failed(checked) or checked == "*":
            return checked
        problem = pcre.portable_error(checked)
        if problem is not None:
            return ctx.error(path, f"{describe(checked)} {problem}; Kong compiles every origin "
                                   "as a PCRE regex")
        return checked
