"""Kong 3.9's value rules for the fields hostctl writes, ported line for line.

Sources, at tag 3.9.1 of Kong/kong (the image hostctl pins):
- `kong/db/schema/typedefs.lua`: validate_path, validate_path_with_regexes, validate_host,
  validate_host_with_optional_port (route hosts), validate_utf8_name, validate_tag,
  typedefs.hosts (wildcards), typedefs.router_path;
- `kong/tools/ip.lua`: hostname_type, normalize_ipv4, normalize_ipv6, check_hostname and
  normalize_ip, which decide what a host, a target and an upstream name may be;
- `kong/tools/uri.lua`: normalize(path, true), which a route's prefix path must equal;
- `kong/tools/string.lua`: validate_utf8; `kong/tools/http.lua`: validate_header_name;
- `kong/db/schema/entities/{upstreams,targets}.lua`: their name and target validators.

Each function answers None (Kong accepts) or Kong's own message. Lua patterns are byte
patterns in the C locale: `%w` and `%d` are ASCII only, and Kong's paths are compared as bytes,
so the ports work on the UTF-8 bytes of a value (as latin-1 text) where it matters.
"""

from __future__ import annotations

import re
from typing import NamedTuple

from hostctl.gateway import pcre

# -- kong/tools/string.lua ------------------------------------------------------------------


def _bytes(value: str) -> str:
    """`value` as Lua sees it: one character per UTF-8 byte."""
    return value.encode("utf-8", "surrogatepass").decode("latin-1")


def _text(raw: str) -> str:
    return raw.encode("latin-1").decode("utf-8", "replace")


_UTF8 = re.compile(  # validate_utf8's byte sequences, in order
    "[\x00-\x7f]|[\xc2-\xdf][\x7b-\xbf]|\xe0[\xa0-\xbf][\x80-\xbf]|[\xe1-\xec][\x80-\xbf]{2}"
    "|\xed[\x80-\x9f][\x80-\xbf]|[\xee-\xef][\x80-\xbf]{2}|\xf0[\x90-\xbf][\x80-\xbf]{2}"
    "|[\xf1-\xf3][\x80-\xbf]{3}|\xf4[\x80-\x8f][\x80-\xbf]{2}")


def validate_utf8(value: str) -> int | None:
    """None when valid; else the 1-based byte position of the first bad sequence."""
    raw, i = _bytes(value), 0
    while i < len(raw):
        m = _UTF8.match(raw, i)
        if m is None:
            return i + 1
        i = m.end()
    return None


# -- kong/tools/ip.lua ----------------------------------------------------------------------


class Address(NamedTuple):
    type: str  # ipv4, ipv6 or name
    host: str
    port: int | None


def hostname_type(name: str) -> str:
    if name.count(":") > 1:
        return "ipv6"
    return "ipv4" if re.fullmatch(r"[0-9.]+", name.replace(":", "")) else "name"


def _normalize_ipv4(address: str) -> tuple[str | None, int | str | None]:
    octet = r"([0-9]{1,3})"
    pattern = rf"{octet}\.{octet}\.{octet}\.{octet}" + (r":([0-9]+)" if ":" in address else "")
    m = re.fullmatch(pattern, address)
    if m is None or any(int(o) > 255 for o in m.groups()[:4]):
        return None, "invalid ipv4 address: " + address
    port = int(m.group(5)) if ":" in address else None
    if port is not None and port > 65535:
        return None, "invalid port number"
    return ".".join(str(int(o)) for o in m.groups()[:4]), port


def _balanced_brackets(address: str) -> int | None:
    """The end of Lua's `%b[]` at the start of `address`, or None."""
    if not address.startswith("["):
        return None
    depth = 0
    for i, c in enumerate(address):
        depth += (c == "[") - (c == "]")
        if depth == 0:
            return i + 1
    return None


def _normalize_ipv6(address: str) -> tuple[str | None, int | str | None]:
    end = _balanced_brackets(address)
    port: int | None = None
    if end is not None:
        check, rest = address[1:end - 1], address[end:]
        if rest:
            m = re.fullmatch(r":([0-9]*)", rest)
            if m is None or not m.group(1):  # Lua would compare nil with a number: refused
                return None, "invalid ipv6 address"
            port = int(m.group(1))
            if port > 65535:
                return None, "invalid port number"
    else:
        check = address
    if check.startswith(":"):
        check = "0" + check
    if check.endswith(":"):
        check = check + "0"
    if "::" in check:
        check = check.replace("::", ":" + "0:" * max(0, 8 - check.count(":")), 1)
    group = "([0-9A-Fa-f]{1,4})"
    m = re.fullmatch(":".join([group] * 8), check)
    if m is None:
        return None, "invalid ipv6 address: " + address
    return ":".join(g.rjust(4, "0") for g in m.groups()).lower(), port


def _split(name: str, sep: str) -> list[str]:
    """Penlight's stringx.split(name, sep) with a plain separator."""
    parts = name.split(sep)
    if parts and parts[-1] == "" and not name.endswith(sep):
        parts.pop()
    return [""] if name == sep else parts


def _check_hostname(address: str) -> tuple[str | None, int | str | None]:
    name, port = address, None
    m = re.search(r":([0-9]+)\Z", address)
    if m is not None:
        name = address[:m.start()]
        port = int(m.group(1))
        if port > 65535:
            return None, "invalid port number"
    if not re.fullmatch(r"[0-9A-Za-z._-]+", name):
        return None, "invalid hostname: " + address
    segments = _split(name, ".")
    for index, segment in enumerate(segments, start=1):
        if segment.endswith("-") or (segment == "" and index != len(segments)):
            return None, "invalid hostname: " + address
    return name, port


def normalize_ip(address: str) -> tuple[Address | None, int | str | None]:
    """(address, port) when Kong reads `address` as a host; (None, its message) when not."""
    kind = hostname_type(address)
    verify = {"ipv4": _normalize_ipv4, "ipv6": _normalize_ipv6, "name": _check_hostname}[kind]
    host, port_or_err = verify(address)
    if host is None:
        return None, port_or_err
    assert not isinstance(port_or_err, str)
    return Address(kind, host, port_or_err), port_or_err


# -- kong/tools/uri.lua ---------------------------------------------------------------------

RESERVED = "!*'();:@&=+$,/?%#[]"


def normalize_path(path: str) -> str:
    """`kong.tools.uri.normalize(path, true)`: decode every escape but those of reserved
    characters (which are upper-cased), merge slashes, remove dot segments."""
    return _text(_normalize(_bytes(path)))


def _normalize(uri: str) -> str:
    if uri in ("", "/"):
        return uri
    if "%" in uri:
        def decode(m: re.Match[str]) -> str:
            char = chr(int(m.group(1), 16))
            return m.group(0).upper() if char in RESERVED else char
        uri = re.sub(r"%([0-9A-Fa-f]{2})", decode, uri)
    if "." not in uri and "//" not in uri:
        return uri
    out: list[str] = []
    while uri:
        if uri == "/.":
            uri = "/"
        elif uri == "/..":
            uri = "/"
            if out:
                out.pop()
        elif uri in (".", ".."):
            uri = ""
        elif uri.startswith("../"):
            uri = uri[3:]
        elif uri.startswith("./") or uri.startswith("/./"):
            uri = uri[2:]
        elif uri.startswith("/../"):
            uri = uri[3:]
            if out:
                out.pop()
        elif uri.startswith("//"):
            uri = uri[1:]
        else:
            i = uri.find("/", 1)
            if i >= 0:
                out.append(uri[:i])
                uri = uri[i:]
            else:
                out.append(uri)
                uri = ""
    return "".join(out)


# -- kong/db/schema/typedefs.lua ------------------------------------------------------------

_PATH = re.compile(r"/[A-Za-z0-9.\-_~/%:@!$&'()*+,;=]*")


def _validate_path(path: str) -> tuple[str | None, str | None]:
    """validate_path: (message, code) with code 'rfc3986' or 'percent'; (None, None) if ok."""
    if not _PATH.fullmatch(_bytes(path)):
        return (f"invalid path: '{path}' (characters outside of the reserved list of RFC 3986 "
                "found)", "rfc3986")
    raw = re.sub(r"%[0-9A-Fa-f]{2}", "___", path)
    if "%" in raw:
        i = raw.index("%")
        return f"invalid url-encoded value: '{raw[i:i + 3]}'", "percent"
    return None, None


def path(value: str) -> str | None:
    """typedefs.path (a service's path, an upstream's healthchecks.active.http_path),
    after its `len_min = 1`."""
    if not value.startswith("/"):
        return "should start with: /"
    if "//" in value:
        return "must not have empty segments"
    return _validate_path(value)[0]


def router_path(value: str) -> str | None:
    """typedefs.router_path (a route's paths), after its `len_min = 1`. Characters outside
    RFC 3986 are not refused here: Kong ignores that error of validate_path for routes."""
    if not (value.startswith("/") or value.startswith("~/")):
        return "should start with: / (fixed path) or ~/ (regex path)"
    if "//" in value:
        return "must not have empty segments"
    message, code = _validate_path(value)
    if code == "percent":
        return message
    if not value.startswith("~"):
        normalized = normalize_path(value)
        if normalized != value:
            return f"non-normalized path, consider use '{normalized}' instead"
        return None
    error = pcre.compile_error(value[1:])
    if error is not None:
        return f"invalid regex: '{value[1:]}' (PCRE returned: {error})"
    return None


def host(value: str) -> str | None:
    """typedefs.host (a service's host): a name or an address, without a port."""
    address, port_or_err = normalize_ip(value)
    if isinstance(port_or_err, str) and port_or_err != "invalid port number":
        return "invalid value: " + value
    if port_or_err == "invalid port number" or (address is not None and address.port
                                                 is not None):
        return "must not have a port"
    return None


def route_host(value: str) -> str | None:
    """An element of typedefs.hosts (a route's hosts): at most one wildcard, leftmost or
    rightmost, and a host with an optional port once the wildcard reads `abc`."""
    if value.count("*") > 1:
        return "invalid wildcard: must have at most one wildcard"
    if "*" in value and not (value.startswith("*.") or value.endswith(".*")):
        return "invalid wildcard: must be placed at leftmost or rightmost label"
    address, port_or_err = normalize_ip(value.replace("*", "abc"))
    return port_or_err if address is None and isinstance(port_or_err, str) else None


def utf8_name(value: str) -> str | None:
    """typedefs.utf8_name (service, route and plugin instance names)."""
    bad = validate_utf8(value)
    if bad is not None:
        return f"invalid utf-8 character sequence detected at position {bad}"
    if not re.fullmatch("[A-Za-z0-9._~\x80-\xf4-]+", _bytes(value)):
        return (f"invalid value '{value}': the only accepted ascii characters are "
                "alphanumerics or ., -, _, and ~")
    return None


def tag(value: str) -> str | None:
    """typedefs.tag: printable ASCII and space, except `,` and `/`, or UTF-8."""
    bad = validate_utf8(value)
    if bad is not None:
        return f"invalid utf-8 character sequence detected at position {bad}"
    if not re.fullmatch("[ \x21-\x2b\x2d\x2e\x30-\x7e\x80-\xf4]+", _bytes(value)):
        return (f"invalid tag '{value}': expected printable ascii (except `,` and `/`) or "
                "valid utf-8 sequences")
    return None


def header_name(value: str) -> str | None:
    """kong.tools.http.validate_header_name (key-auth's key_names)."""
    if re.fullmatch(r"[a-zA-Z0-9_-]+", value):
        return None
    return f"bad header name '{value}', allowed characters are A-Z, a-z, 0-9, '_', and '-'"


def _name_for_error(value: str) -> str:
    return "Invalid name" if validate_utf8(value) else f"Invalid name ('{value}')"


def upstream_name(value: str) -> str | None:
    """upstreams.lua validate_name: a host name, no address, no port."""
    address, _ = normalize_ip(value)
    if address is None:
        return _name_for_error(value) + "; must be a valid hostname"
    if address.type != "name":
        return _name_for_error(value) + "; no ip addresses allowed"
    if address.port is not None:
        return _name_for_error(value) + "; no port allowed"
    return None


def target(value: str) -> str | None:
    """targets.lua validate_target: a host or an address, with an optional port."""
    address, _ = normalize_ip(value)
    if address is None:
        if validate_utf8(value) is not None:
            return "Invalid target; not a valid hostname or ip address"
        return f"Invalid target ('{value}'); not a valid hostname or ip address"
    return None


def cors_origin(value: str) -> str | None:
    """The cors plugin's origins: '*' or a regex PCRE compiles (Schema.validators.is_regex)."""
    if value == "*" or pcre.compile_error(value) is None:
        return None
    return f"'{value}' is not a valid regex"
