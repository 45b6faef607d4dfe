"""Database URLs as the config gives them: the driver picked, a relative SQLite path made
relative to the config file, the password remembered so that no output ever shows it.

``config`` re-exports ``scrub``, ``mask_url``, ``register_secret`` and
``normalise_driver``: most modules import them from there.
"""

from __future__ import annotations

import re
from pathlib import Path

from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from .errors import ConfigError

_SECRETS: set[str] = set()


def has_control(text: str) -> bool:
    """Does ``text`` hold a control character other than a tab (NUL, line breaks, ESC)?"""
    return any((ord(ch) < 32 and ch != "\t") or ord(ch) == 127 for ch in text)


def register_secret(value: str | None) -> None:
    """Remember a secret (a database password) so output can be scrubbed of it."""
    if value and len(value) >= 3:
        _SECRETS.add(value)


def scrub(text: str) -> str:
    """Replace every registered secret in ``text`` by ``***``."""
    for secret in sorted(_SECRETS, key=len, reverse=True):
        text = text.replace(secret, "***")
    return text


def mask_url(url: str) -> str:
    """The URL with its password replaced by ``***`` (never print a password)."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # unparsable: hide what lies between the user's ':' and the last '@'
        found = re.match(r"([A-Za-z][A-Za-z0-9+.-]*:/*)(.*)", url, re.S)
        scheme, rest = (found.group(1), found.group(2)) if found else ("", url)
        userinfo, at, host = rest.rpartition("@")
        if not at or ":" not in userinfo:
            return url
        return f"{scheme}{userinfo.split(':', 1)[0]}:***@{host}"


def normalise_driver(url: str) -> str:
    """Pick the installed driver when the URL names none (postgresql:// → psycopg 3)."""
    scheme, sep, rest = url.partition("://")
    if sep and scheme in ("postgresql", "postgres"):
        return "postgresql+psycopg://" + rest
    if sep and scheme in ("mysql", "mariadb"):
        return "mysql+pymysql://" + rest
    return url


def backend(url: str) -> str:
    """The kind of database a (checked) URL names: ``sqlite``, ``postgresql``, ``mysql``."""
    return make_url(url.replace("{customer}", "customer")).get_backend_name()


def resolve_url(url: str, base_dir: Path, label: str, key: str) -> str:
    """``url`` checked (ConfigError naming ``label`` and ``key``), its password registered
    as a secret, a relative SQLite path made relative to ``base_dir`` (the config's folder:
    cron runs from ``/``)."""
    if has_control(url):  # the URL may come from the environment, not only the file
        raise ConfigError(f"{label}: {key}: the URL contains a control character")
    try:
        parsed = make_url(url.replace("{customer}", "customer"))
    except (ArgumentError, ValueError):  # (ValueError: a port that is not a number)
        raise ConfigError(f"{label}: {key}: not a database URL: {mask_url(url)!r}") from None
    if not parsed.drivername.startswith("sqlite"):
        register_secret(parsed.password if isinstance(parsed.password, str) else None)
        return url
    head, sep, rest = url.partition(":///")
    path_part, qmark, query = rest.partition("?")
    if not sep or not path_part or path_part == ":memory:" or path_part.startswith(("/", "file:")):
        return url
    return f"{head}:///{base_dir / path_part}{qmark}{query}"


__all__ = ["backend", "has_control", "mask_url", "normalise_driver", "register_secret", "resolve_url", "scrub"]
