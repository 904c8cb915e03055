"""Checks on user input: pure functions, no I/O.

Each function raises one :class:`~orchestrator.errors.ValidationError` naming
the field (the first problem found) or returns the value, normalised where
noted. Field names are the spec's JSON tags (``instances[3]``,
``metadata.owner``). Checks that need the store (unknown instance, instance of
another service) belong to the service, not here.

Rules (DESIGN.md section 5):

- Names (service, version, target_version, instance IDs, deploy/rollback IDs)
  match :data:`NAME_PATTERN` and never contain ``..``, so a version can never
  escape ``releases/`` nor start like a command-line option. Service names and
  instance IDs become inventory groups and hosts, so they are also never one of
  the names Ansible reserves (:data:`RESERVED_INVENTORY_NAMES`).
- No user string may contain template delimiters (``{{ }}``, ``{% %}``,
  ``{# #}``) or control characters: Ansible evaluates Jinja in variables, and
  values are also written ``!unsafe``; both, not one.
- Connection variables (``ansible_*``, ``become*``) come only from operator
  inventory files, never from instance metadata.
- Package URLs are ``https://`` without credentials, with an ASCII host, a port
  from 1 to 65535 and a percent-encoded path, optionally restricted to an
  allow-list of hosts. The policy applies to every URL floy fetches, whatever
  its source (request or release history).
- Hosts are DNS names, IPv4 addresses or IPv6 addresses (with at most an
  interface-name zone): nothing else may reach ``ansible_host``.
- Values read back from instances (probe results, versions a release module
  reports) are input too and pass the same checks before they are stored.
"""

from __future__ import annotations

import ipaddress
import re
import unicodedata
from dataclasses import replace
from urllib.parse import quote, urlsplit

from orchestrator.errors import ValidationError
from orchestrator.models import (
    BatchRollbackParams,
    DeployParams,
    InstanceQueryParams,
    InstanceRollbackParams,
    InstanceSpec,
)

#: Service, version and instance names and run IDs: 1-128 ASCII characters,
#: letters, digits, ``.``, ``_``, ``+``, ``-``, starting with a letter or digit.
#: ``..`` anywhere is refused in addition. Matched with ``fullmatch``.
NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+-]{0,127}$")
NAME_MAX_LENGTH = 128
_NAME_CHAR = re.compile(r"[A-Za-z0-9._+-]")

MAX_INSTANCES_PER_RUN = 10_000
MAX_URL_LENGTH = 2048
MAX_TIMEOUT = 86_400
MAX_RETRY_COUNT = 10
MAX_BATCH_SIZE = 1_000_000
MAX_FAILURES = 1_000_000
MAX_LIMIT = 1000
MAX_OFFSET = 10_000_000
MAX_HOST_LENGTH = 253
MAX_METADATA_ENTRIES = 64
MAX_METADATA_VALUE_LENGTH = 1024

METADATA_KEY_PATTERN = re.compile(r"[A-Za-z0-9_.-]{1,64}")
_RESERVED_METADATA_PREFIXES = ("ansible_", "become")
_TEMPLATE_DELIMITERS = ("{{", "{%", "{#", "}}", "%}", "#}")
_HOST_LABEL = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?")
# An IPv6 zone (``fe80::1%eth0``) is an interface name: Linux allows 15 characters
# (IFNAMSIZ 16 with the NUL). Python's ipaddress accepts any text there, spaces included.
_IPV6_ZONE = re.compile(r"[A-Za-z0-9_.-]{1,15}")
# Characters a URL path, query or fragment may hold unencoded (RFC 3986 section 3.3:
# unreserved, sub-delims, ':', '@', '/', '?', and '%' of a percent-encoding).
_URL_PART_CHAR = re.compile(r"[A-Za-z0-9\-._~!$&'()*+,;=:@/?%]")
_BAD_PERCENT = re.compile(r"%(?![0-9A-Fa-f]{2})")
_SHA256 = re.compile(r"[0-9A-Fa-f]{64}")
_BATCH_SIZE = re.compile(r"([0-9]{1,7})(%?)")
# Unicode categories refused in every string: control characters, line and
# paragraph separators (YAML line breaks) and lone surrogates (not UTF-8).
_BAD_CATEGORIES = frozenset({"Cc", "Zl", "Zp", "Cs"})
# Bidirectional overrides make text display differently from what it is.
_BIDI_CONTROLS = frozenset(chr(c) for c in (*range(0x202A, 0x202F), *range(0x2066, 0x206A)))

#: Names Ansible gives a meaning of its own: the implicit groups ``all`` and ``ungrouped``
#: and the implicit host ``localhost``. Compared case-insensitively.
RESERVED_INVENTORY_NAMES = frozenset({"all", "ungrouped", "localhost"})


def _describe_char(ch: str) -> str:
    """Name a character for a message: its repr, plus the code point if not ASCII."""
    if ch.isascii():
        return repr(ch)
    return f"{ch!r} (U+{ord(ch):04X})"


def _require_str(field: str, value: object) -> str:
    if not isinstance(value, str):
        raise ValidationError(field, f"must be a string, not {type(value).__name__}")
    return value


def reject_control_characters(field: str, value: str) -> str:
    """Refuse control characters (NUL, newline, tab, ...) in ``value``; return it."""
    for ch in value:
        if unicodedata.category(ch) in _BAD_CATEGORIES or ch in _BIDI_CONTROLS:
            raise ValidationError(field, f"control character {_describe_char(ch)} is not allowed")
    return value


def reject_template_syntax(field: str, value: str) -> str:
    """Refuse Jinja delimiters (``{{``, ``{%``, ``{#`` and closers) in ``value``; return it."""
    for delimiter in _TEMPLATE_DELIMITERS:
        if delimiter in value:
            raise ValidationError(field, f"{delimiter!r}: template delimiters are not allowed")
    return value


def validate_text(field: str, value: object) -> str:
    """Check a free-text string: a str without control characters or template syntax."""
    text = _require_str(field, value)
    reject_control_characters(field, text)
    return reject_template_syntax(field, text)


def validate_name(field: str, value: object) -> str:
    """Check a service/version/instance name against :data:`NAME_PATTERN`."""
    name = _require_str(field, value)
    if not name:
        raise ValidationError(field, "must not be empty")
    reject_control_characters(field, name)
    reject_template_syntax(field, name)
    if len(name) > NAME_MAX_LENGTH:
        raise ValidationError(
            field, f"too long ({len(name)} characters, at most {NAME_MAX_LENGTH})"
        )
    if ".." in name:
        raise ValidationError(field, "'..' is not allowed")
    for ch in name:
        if not _NAME_CHAR.fullmatch(ch):
            raise ValidationError(
                field,
                f"character {_describe_char(ch)} is not allowed "
                "(use letters, digits, '.', '_', '+', '-')",
            )
    if not NAME_PATTERN.fullmatch(name):
        raise ValidationError(field, "must start with a letter or digit")
    return name


def validate_inventory_name(field: str, value: object) -> str:
    """Check a service name or instance ID: a name that Ansible does not reserve.

    A service becomes an inventory group (the play's ``hosts:`` pattern) and an instance an
    inventory host, so a service called ``all`` would select every host of the operator's
    inventory and an instance called ``localhost`` would stand for the controller itself.
    :data:`RESERVED_INVENTORY_NAMES` are refused, whatever their case.

    Versions and run IDs go through :func:`validate_name` only: a version names a directory
    under ``releases/`` and an extra var, a run ID a directory and a runner ident; neither
    is ever an inventory name or a host pattern, so a version ``all`` is harmless.
    """
    name = validate_name(field, value)
    if name.lower() in RESERVED_INVENTORY_NAMES:
        raise ValidationError(
            field,
            f"{name!r} is reserved by Ansible (all, ungrouped and localhost are its implicit "
            "groups and host); choose another name",
        )
    return name


def validate_id(field: str, value: object) -> str:
    """Check a deploy or rollback ID (same rules as names, up to 128 characters)."""
    return validate_name(field, value)


def _int_in_range(field: str, value: object, low: int, high: int) -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        raise ValidationError(field, f"must be an integer, not {type(value).__name__}")
    if not low <= value <= high:
        raise ValidationError(field, f"must be between {low} and {high}, got {value}")
    return value


def validate_timeout(field: str, v: object) -> int:
    """Check a per-instance timeout in seconds: an int from 1 to 86400."""
    return _int_in_range(field, v, 1, MAX_TIMEOUT)


def validate_retry_count(field: str, v: object) -> int:
    """Check a retry count: an int from 0 to 10."""
    return _int_in_range(field, v, 0, MAX_RETRY_COUNT)


def validate_max_failures(field: str, v: object) -> int:
    """Check a failure budget: an int from 0 to 1,000,000."""
    return _int_in_range(field, v, 0, MAX_FAILURES)


def validate_limit(v: object) -> int:
    """Check the ``limit`` of an instance query: an int from 1 to 1000."""
    return _int_in_range("limit", v, 1, MAX_LIMIT)


def validate_offset(v: object) -> int:
    """Check the ``offset`` of an instance query: an int from 0 to 10,000,000."""
    return _int_in_range("offset", v, 0, MAX_OFFSET)


def validate_port(field: str, port: object) -> int:
    """Check a TCP port: an int from 1 to 65535."""
    return _int_in_range(field, port, 1, 65535)


def validate_batch_size(field: str, v: object) -> str:
    """Check a batch size and return it as text: an int >= 1, ``"N"`` or ``"N%"``.

    A percentage must be 1-100; an absolute size 1-1,000,000. Leading zeros
    are dropped (``"05%"`` -> ``"5%"``).
    """
    if isinstance(v, int) and not isinstance(v, bool):
        return str(_int_in_range(field, v, 1, MAX_BATCH_SIZE))
    if not isinstance(v, str):
        raise ValidationError(
            field, f"must be an integer or a string like '5' or '25%', not {type(v).__name__}"
        )
    m = _BATCH_SIZE.fullmatch(v)
    if m is None:
        raise ValidationError(field, "must be a number of instances 'N' or a percentage 'N%'")
    number, percent = int(m[1]), m[2]
    if percent:
        if not 1 <= number <= 100:
            raise ValidationError(field, f"percentage must be between 1 and 100, got {number}")
    elif not 1 <= number <= MAX_BATCH_SIZE:
        raise ValidationError(field, f"must be between 1 and {MAX_BATCH_SIZE}, got {number}")
    return f"{number}{percent}"


def validate_sha256(field: str, value: object) -> str:
    """Check an optional sha256 digest: empty, or 64 hex digits (returned lower-case)."""
    text = _require_str(field, value)
    if text and not _SHA256.fullmatch(text):
        raise ValidationError(field, "must be 64 hexadecimal characters (a sha256 digest)")
    return text.lower()


def validate_host(field: str, host: object) -> str:
    """Check a host: a DNS name, an IPv4 address or an IPv6 address; at most 253 characters.

    A DNS name is ASCII, dot-separated RFC 1123 labels (an international name is written in
    its IDNA ``xn--`` form). An IPv6 address may carry a zone after ``%`` made of interface
    name characters only (letters, digits, ``_``, ``.``, ``-``, at most 15). Nothing else
    reaches ``ansible_host``, which ends up on an ssh command line.
    """
    text = _require_str(field, host)
    if not text:
        raise ValidationError(field, "must not be empty")
    reject_control_characters(field, text)
    if len(text) > MAX_HOST_LENGTH:
        raise ValidationError(field, f"too long ({len(text)} characters, at most 253)")
    for ch in text:
        if not (ch.isascii() and ch.isprintable()):
            raise ValidationError(
                field,
                f"character {_describe_char(ch)} is not allowed: a host is ASCII "
                "(write an international name in its IDNA form, xn--...)",
            )
    if ":" in text or "%" in text:
        return _ipv6_host(field, text)
    try:
        ipaddress.IPv4Address(text)
        return text
    except ValueError:
        pass
    labels = text[:-1].split(".") if text.endswith(".") else text.split(".")
    for label in labels:
        if not _HOST_LABEL.fullmatch(label):
            raise ValidationError(
                field,
                f"{label!r} is not a valid hostname label (letters, digits, inner '-')",
            )
    if labels[-1].isdigit():
        # RFC 1123 2.1: a dotted all-numeric name must be a valid IPv4 address.
        raise ValidationError(field, "not a valid IPv4 address")
    return text


def _ipv6_host(field: str, text: str) -> str:
    """An IPv6 literal with an optional interface-name zone (``fe80::1%eth0``)."""
    address, percent, zone = text.partition("%")
    try:
        ipaddress.IPv6Address(address)
    except ValueError:
        raise ValidationError(field, "not a valid IPv6 address") from None
    if percent and (not _IPV6_ZONE.fullmatch(zone) or zone in (".", "..")):
        raise ValidationError(
            field,
            "invalid IPv6 zone after '%': it must be an interface name "
            "(1-15 letters, digits, '_', '.', '-')",
        )
    return text


def _check_url_part(field: str, part: str, text: str) -> None:
    """Refuse what a URL path, query or fragment may not hold unencoded."""
    for ch in text:
        if not ch.isascii():
            raise ValidationError(
                field,
                f"non-ASCII character {_describe_char(ch)} in the {part}: "
                f"percent-encode it (as UTF-8: {quote(ch, safe='')})",
            )
        if not _URL_PART_CHAR.fullmatch(ch):
            raise ValidationError(
                field,
                f"character {ch!r} in the {part} must be percent-encoded "
                f"({quote(ch, safe='')})",
            )
    bad = _BAD_PERCENT.search(text)
    if bad is not None:
        raise ValidationError(
            field,
            f"'%' in the {part} must start a percent-encoding of two hexadecimal digits "
            f"(got {text[bad.start():bad.start() + 3]!r}); write a literal '%' as %25",
        )


def validate_package_url(
    field: str, url: object, allowed_hosts: frozenset[str] = frozenset()
) -> str:
    """Check a package URL completely, before anything is stored or fetched.

    ``https://`` with a host and no credentials. The host must be ASCII: a non-ASCII host is
    refused (the message gives its IDNA form to use instead), so the name the allow-list is
    compared with is the name that is resolved, and look-alike letters cannot pass; it must
    then pass :func:`validate_host` (an IPv6 zone is not allowed). The port, when given, is
    1-65535. Path, query and fragment hold printable ASCII only, characters outside RFC 3986
    percent-encoded, and every ``%`` starts a well-formed ``%XX``. With ``allowed_hosts``,
    the host must be one of them (case-insensitive).
    """
    text = _require_str(field, url)
    if not text:
        raise ValidationError(field, "must not be empty")
    if len(text) > MAX_URL_LENGTH:
        raise ValidationError(field, f"too long ({len(text)} characters, at most {MAX_URL_LENGTH})")
    reject_control_characters(field, text)
    reject_template_syntax(field, text)
    if any(ch.isspace() for ch in text):
        raise ValidationError(field, "whitespace is not allowed")
    if "\\" in text:
        # Parsers disagree on backslashes ("https://a\\@b/"); refuse them all.
        raise ValidationError(field, "backslash is not allowed")
    try:
        parts = urlsplit(text)
    except ValueError as exc:  # "https://a]b/": an unbalanced IPv6 bracket
        raise ValidationError(field, f"not a valid URL: {exc}") from None
    if parts.scheme.lower() != "https" or not text.lower().startswith("https://"):
        raise ValidationError(field, "must be an https:// URL")
    if not parts.netloc:
        raise ValidationError(field, "a host is required")
    if "@" in parts.netloc:
        raise ValidationError(
            field,
            "credentials in the URL are not allowed; configure them for the package host instead",
        )
    hostname = parts.hostname or ""
    if not hostname:
        raise ValidationError(field, "a host is required")
    if not parts.netloc.isascii():
        raise ValidationError(field, f"non-ASCII host {hostname!r}: {_idna_hint(hostname)}")
    try:
        port = parts.port
    except ValueError:
        port = -1
    if (port is not None and not 1 <= port <= 65535) or parts.netloc.endswith(":"):
        raise ValidationError(field, "invalid port: give a number from 1 to 65535, or none")
    if "%" in hostname:
        raise ValidationError(field, "invalid host: an IPv6 zone ('%') is not allowed in a URL")
    try:
        validate_host(field, hostname)
    except ValidationError as exc:
        raise ValidationError(field, f"invalid host: {exc.reason}") from None
    for part, value in (("path", parts.path), ("query", parts.query),
                        ("fragment", parts.fragment)):
        _check_url_part(field, part, value)
    if allowed_hosts and hostname.lower() not in {h.lower() for h in allowed_hosts}:
        raise ValidationError(field, f"host {hostname!r} is not in the allowed package hosts")
    return text


def _idna_hint(hostname: str) -> str:
    """What to write instead of a non-ASCII host: its IDNA form, when it has one."""
    try:
        encoded = hostname.encode("idna").decode("ascii")
    except UnicodeError:
        return "write the host in ASCII (its IDNA form, xn--...)"
    return f"write the host in its IDNA form, {encoded!r}"


def _optional_package_url(field: str, url: object, allowed_hosts: frozenset[str]) -> str:
    if url == "":
        return ""
    return validate_package_url(field, url, allowed_hosts)


def validate_instance_ids(
    field: str, ids: object, max_count: int = MAX_INSTANCES_PER_RUN
) -> tuple[str, ...]:
    """Check a non-empty list of distinct instance IDs (at most ``max_count``).

    Each is an inventory name (:func:`validate_inventory_name`).
    """
    if not isinstance(ids, (list, tuple)):
        raise ValidationError(field, f"must be a list of instance IDs, not {type(ids).__name__}")
    if not ids:
        raise ValidationError(field, "must not be empty")
    if len(ids) > max_count:
        raise ValidationError(field, f"too many instances ({len(ids)}, at most {max_count})")
    seen: dict[str, int] = {}
    for i, item in enumerate(ids):
        name = validate_inventory_name(f"{field}[{i}]", item)
        if name in seen:
            raise ValidationError(f"{field}[{i}]", f"duplicate of {field}[{seen[name]}] {name!r}")
        seen[name] = i
    return tuple(ids)


def validate_metadata(field: str, md: object) -> dict[str, str]:
    """Check instance metadata: at most 64 safe string keys and values."""
    if not isinstance(md, dict):
        raise ValidationError(
            field, f"must be an object of string keys and values, not {type(md).__name__}"
        )
    if len(md) > MAX_METADATA_ENTRIES:
        raise ValidationError(
            field, f"too many entries ({len(md)}, at most {MAX_METADATA_ENTRIES})"
        )
    out: dict[str, str] = {}
    for key, value in md.items():
        if not isinstance(key, str):
            raise ValidationError(field, f"keys must be strings, not {type(key).__name__}")
        try:
            validate_text(field, key)
        except ValidationError as exc:
            raise ValidationError(field, f"key {key!r}: {exc.reason}") from None
        if not METADATA_KEY_PATTERN.fullmatch(key):
            raise ValidationError(
                field, f"key {key!r} must be 1-64 letters, digits, '_', '.' or '-'"
            )
        key_field = f"{field}.{key}"
        if key.lower().startswith(_RESERVED_METADATA_PREFIXES):
            raise ValidationError(
                key_field,
                "reserved key: connection variables come only from operator inventory files",
            )
        text = validate_text(key_field, value)
        if len(text) > MAX_METADATA_VALUE_LENGTH:
            raise ValidationError(
                key_field,
                f"too long ({len(text)} characters, at most {MAX_METADATA_VALUE_LENGTH})",
            )
        out[key] = text
    return out


def _bool(field: str, value: object) -> bool:
    if not isinstance(value, bool):
        raise ValidationError(field, f"must be a boolean, not {type(value).__name__}")
    return value


def _optional_id(field: str, value: object) -> str:
    return "" if value == "" else validate_id(field, value)


def _optional_name(field: str, value: object) -> str:
    return "" if value == "" else validate_name(field, value)


def _rollback_target(target_version: object, package_url: object) -> str:
    """A rollback's target: empty means the previous version (the service resolves it),
    except with a package URL, whose version floy cannot tell: the package would be
    installed as whatever version came before."""
    version = _optional_name("target_version", target_version)
    if not version and package_url != "":
        raise ValidationError("target_version", "a package_url needs the version it holds; "
                                                "give target_version too")
    return version


def validate_deploy_params(
    p: DeployParams, allowed_hosts: frozenset[str] = frozenset(),
    nodes: frozenset[str] = frozenset(),
) -> DeployParams:
    """Check every field of a deployment request; return it normalised."""
    return replace(
        p,
        service=validate_inventory_name("service", p.service),
        version=validate_name("version", p.version),
        instances=validate_instance_ids("instances", p.instances),
        package_url=validate_package_url("package_url", p.package_url, allowed_hosts),
        deploy_id=validate_id("deploy_id", p.deploy_id),
        timeout=validate_timeout("timeout", p.timeout),
        retry_count=validate_retry_count("retry_count", p.retry_count),
        batch_size=validate_batch_size("batch_size", p.batch_size),
        max_failures=validate_max_failures("max_failures", p.max_failures),
        package_sha256=validate_sha256("package_sha256", p.package_sha256),
        auto_rollback=_bool("auto_rollback", p.auto_rollback),
        node=validate_node("node", p.node, nodes),
    )


def validate_node(field: str, value: object, nodes: frozenset[str]) -> str:
    """An execution node's name: empty (the worker runs the playbook) or a configured one."""
    if not isinstance(value, str):
        raise ValidationError(field, f"must be a string, got {type(value).__name__}")
    if value and value not in nodes:
        known = ", ".join(sorted(nodes)) or "none is configured"
        raise ValidationError(field, f"{value!r} is not a configured execution node "
                                     f"(configured: {known})")
    return value


def validate_instance_rollback_params(
    p: InstanceRollbackParams, allowed_hosts: frozenset[str] = frozenset()
) -> InstanceRollbackParams:
    """Check a single-instance rollback request; an empty package_url is allowed, and an
    empty target_version (the service resolves the previous version)."""
    return replace(
        p,
        instance_id=validate_inventory_name("instance_id", p.instance_id),
        target_version=_rollback_target(p.target_version, p.package_url),
        package_url=_optional_package_url("package_url", p.package_url, allowed_hosts),
        force=_bool("force", p.force),
        timeout=validate_timeout("timeout", p.timeout),
        rollback_id=_optional_id("rollback_id", p.rollback_id),
    )


def validate_batch_rollback_params(
    p: BatchRollbackParams, allowed_hosts: frozenset[str] = frozenset()
) -> BatchRollbackParams:
    """Check a batch rollback request; an empty package_url is allowed, and an empty
    target_version (the service resolves the previous version)."""
    return replace(
        p,
        service=validate_inventory_name("service", p.service),
        target_version=_rollback_target(p.target_version, p.package_url),
        package_url=_optional_package_url("package_url", p.package_url, allowed_hosts),
        instances=validate_instance_ids("instances", p.instances),
        force=_bool("force", p.force),
        timeout=validate_timeout("timeout", p.timeout),
        batch_size=validate_batch_size("batch_size", p.batch_size),
        max_failures=validate_max_failures("max_failures", p.max_failures),
        rollback_id=_optional_id("rollback_id", p.rollback_id),
    )


def validate_instance_query(p: InstanceQueryParams) -> InstanceQueryParams:
    """Check an instance query; an empty ``version`` means no filter."""
    return replace(
        p,
        service_name=validate_inventory_name("service_name", p.service_name),
        version="" if p.version == "" else validate_name("version", p.version),
        limit=validate_limit(p.limit),
        offset=validate_offset(p.offset),
    )


def validate_instance_spec(s: InstanceSpec) -> InstanceSpec:
    """Check an instance to register: names, host, port and metadata."""
    return replace(
        s,
        instance_id=validate_inventory_name("instance_id", s.instance_id),
        service=validate_inventory_name("service", s.service),
        host=validate_host("host", s.host),
        port=validate_port("port", s.port),
        metadata=validate_metadata("metadata", s.metadata),
    )
