"""What to export as: the formats (from the command line or the config) and the age
recipients to encrypt for; ``available_formats`` for ``--list-formats``."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from ..config import Settings
from ..errors import BadInput
from ..exporters.base import Exporter, load_builtin


def split_formats(values: Iterable[str]) -> list[str]:
    """``["csv,xlsx", "json"]`` → ``["csv", "xlsx", "json"]`` (order kept, no repeats)."""
    names: list[str] = []
    for value in values:
        for part in value.split(","):
            name = part.strip().lower()
            if name and name not in names:
                names.append(name)
    return names


def resolve_formats(requested: Sequence[str] | None, settings: Settings) -> list[Exporter]:
    """The exporters to run, from ``requested`` or the config; unknown names are exit 2."""
    registry = load_builtin()
    names = split_formats(requested) if requested else list(settings.export.formats)
    if not names:
        raise BadInput("no export format chosen")
    unknown = [n for n in names if n not in registry]
    if unknown:
        source = "--format" if requested else f"{settings.label}: [export] formats"
        available = ", ".join(sorted(registry)) or "none"
        raise BadInput(f"{source}: unknown or unavailable format {unknown[0]!r} (available: {available})")
    return [registry[n] for n in names]


def parse_recipients(values: Sequence[str]) -> list[Any]:
    """age recipients (``age1…`` or ``ssh-…`` public keys, or a file of them, one a line)."""
    if not values:
        return []
    import pyrage

    texts: list[str] = []
    for value in values:
        value = value.strip()
        if value and not value.startswith(("age1", "ssh-")) and Path(value).is_file():
            lines = Path(value).read_text(encoding="utf-8").splitlines()
            texts.extend(line.strip() for line in lines if line.strip() and not line.lstrip().startswith("#"))
        else:
            texts.append(value)
    recipients = []
    for text in texts:
        try:
            if text.startswith("ssh-"):
                recipients.append(pyrage.ssh.Recipient.from_str(text))
            else:
                recipients.append(pyrage.x25519.Recipient.from_str(text))
        except pyrage.RecipientError as exc:
            raise BadInput(f"--encrypt-to: not an age recipient {text[:24]!r}…: {exc}") from None
    if not recipients:
        raise BadInput("--encrypt-to: no recipient given")
    return recipients


def available_formats() -> list[dict[str, str]]:
    """Every registered format: name, description, folder (for ``--list-formats``)."""
    return [
        {"name": e.name, "description": e.description, "folder": getattr(e, "folder", "")}
        for e in sorted(load_builtin().values(), key=lambda e: e.name)
    ]


__all__ = ["available_formats", "parse_recipients", "resolve_formats", "split_formats"]
