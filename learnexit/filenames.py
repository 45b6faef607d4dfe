"""File names the customer sees: the original names of media files, the documents' and
letters' names.  Safe on Linux, macOS and Windows: separators, control and bidi characters
and the characters Windows forbids become ``_``, leading dots and trailing dots/spaces go,
the name is cut to ``MAX_NAME_BYTES`` of UTF-8 (keeping the extension), and reserved
Windows names get a leading ``_``.  Letters and scripts other than Latin are kept.
"""

from __future__ import annotations

import re
import unicodedata

MAX_NAME_BYTES = 200
_WINDOWS_FORBIDDEN = set('<>:"|?*')
_BIDI = {chr(c) for c in (*range(0x202A, 0x202F), *range(0x2066, 0x206A), 0x200E, 0x200F, 0x061C)}
_RESERVED = re.compile(r"(?i)(con|prn|aux|nul|com[0-9¹²³]|lpt[0-9¹²³])(\..*)?")


def safe_filename(name: str, *, max_bytes: int = MAX_NAME_BYTES, fallback: str = "file") -> str:
    """``name`` made safe as one file name on Linux, macOS and Windows (see module doc)."""
    text = unicodedata.normalize("NFC", str(name))
    out = []
    for ch in text:
        category = unicodedata.category(ch)
        if ch in "/\\" or ch in _WINDOWS_FORBIDDEN or ch in _BIDI or category in ("Cc", "Zl", "Zp", "Cs"):
            out.append("_")
        else:
            out.append(ch)
    cleaned = "".join(out).strip().lstrip(".").rstrip(". ").strip()
    if not cleaned:
        cleaned = fallback
    if _RESERVED.fullmatch(cleaned):
        cleaned = "_" + cleaned
    return fit_name(cleaned, max_bytes)


def split_extension(name: str) -> tuple[str, str]:
    """``("report", ".pdf")``; an "extension" longer than 16 bytes is part of the stem."""
    stem, dot, ext = name.rpartition(".")
    if dot and stem and 0 < len(ext.encode("utf-8")) <= 16 and " " not in ext:
        return stem, "." + ext
    return name, ""


def fit_name(name: str, max_bytes: int) -> str:
    """``name`` cut to ``max_bytes`` of UTF-8, keeping its extension."""
    if len(name.encode("utf-8")) <= max_bytes:
        return name
    stem, ext = split_extension(name)
    budget = max_bytes - len(ext.encode("utf-8"))
    kept = []
    used = 0
    for ch in stem:
        size = len(ch.encode("utf-8"))
        if used + size > budget:
            break
        kept.append(ch)
        used += size
    return "".join(kept).rstrip(". ") + ext
