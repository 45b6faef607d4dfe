"""The fonts the PDF documents draw with, and the characters no font can draw.

People put emoji and every script in their names and course titles.  The documents set
text in DejaVu (Debian's default) and fall back, character by character, to the Noto
fonts of the ``manimgx-fonts`` package (a dependency: Noto Sans, Noto Emoji, Noto Sans
Symbols and Noto Sans for Arabic, Hebrew, the Indic scripts, Thai, Khmer, Ethiopic and
others; SIL Open Font License).  They are added to WeasyPrint's own font configuration,
so a fresh machine draws them without any system font package; WeasyPrint embeds only
the glyphs a document uses.

Chinese, Japanese and Korean need a system font (Debian: ``fonts-noto-cjk``).  A
character that no font on the machine can draw would come out as an empty box:
``undrawable`` finds such characters so that the export notes can name them.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import threading
import unicodedata
from collections.abc import Iterable, Iterator
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

__all__ = [
    "bundled_font_files",
    "document_characters",
    "patched_with",
    "register_fonts",
    "steady_font_instances",
    "undrawable",
    "undrawable_note",
]

# Characters that are not drawn as glyphs of their own: controls, format characters
# (joiners, direction marks), combining marks and variation selectors, separators.
_NOT_DRAWN = {"Cc", "Cf", "Cs", "Mn", "Me", "Zs", "Zl", "Zp"}


@cache
def bundled_font_files() -> tuple[Path, ...]:
    """The font files of the ``manimgx-fonts`` package (none when it is not installed)."""
    try:
        root = resources.files("manimgx_fonts")
    except ModuleNotFoundError:
        return ()
    files = [Path(str(entry)) for entry in root.iterdir() if entry.name.endswith((".ttf", ".otf"))]
    # Noto Sans first (a face for Latin when DejaVu is missing), then the rest by name
    return tuple(sorted(files, key=lambda p: (not p.name.startswith("NotoSans["), p.name)))


def register_fonts(font_config: Any) -> int:
    """Add the bundled fonts to a WeasyPrint ``FontConfiguration``; how many were added."""
    files = bundled_font_files()
    if not files:
        return 0
    steady_font_instances()
    from weasyprint.text.ffi import ffi, fontconfig, pangoft2

    added = 0
    for path in files:
        added += bool(fontconfig.FcConfigAppFontAddFile(font_config._config, str(path).encode()))
    if added:
        pangoft2.pango_fc_font_map_config_changed(ffi.cast("PangoFcFontMap *", font_config.font_map))
    return added


_FONT_TIME = 3_786_912_000  # 2024-01-01 00:00 UTC, in the seconds since 1904 that fonts count
_font_time_lock = threading.Lock()


def steady_font_instances() -> None:
    """Make WeasyPrint's static instances of variable fonts (the Noto fonts are variable)
    the same bytes every time: fontTools stamps the current time into a font it saves,
    so the same document rendered a second later came out different.  The embedded
    font's "modified" date is fixed instead.  Installed once per process."""
    try:
        from fontTools.ttLib.tables import _h_e_a_d
        from weasyprint.pdf.fonts import Font
    except ImportError:  # pragma: no cover - another WeasyPrint or fontTools
        return
    original = getattr(Font, "clean", None)
    if original is None or patched_with(original, "learnexit_steady") or not hasattr(_h_e_a_d, "timestampNow"):
        return

    def clean(self: Any, *args: Any, **kwargs: Any) -> Any:
        if "fvar" not in getattr(self, "tables", ()):
            return original(self, *args, **kwargs)
        with _font_time_lock:
            now = _h_e_a_d.timestampNow
            _h_e_a_d.timestampNow = lambda: _FONT_TIME
            try:
                return original(self, *args, **kwargs)
            finally:
                _h_e_a_d.timestampNow = now

    clean.learnexit_steady = True  # type: ignore[attr-defined]
    clean.__wrapped__ = original  # type: ignore[attr-defined]
    Font.clean = clean


def patched_with(func: Any, marker: str) -> bool:
    """Whether ``func`` or a function it wraps (``__wrapped__``) carries ``marker``: the
    steady ``clean`` and the font cache's both wrap WeasyPrint's ``Font.clean``, and each
    must see itself under the other (wrapped twice, the steady one took its lock twice)."""
    seen = 0
    while func is not None and seen < 16:
        if getattr(func, marker, False):
            return True
        func = getattr(func, "__wrapped__", None)
        seen += 1
    return False


class _FontSet(ctypes.Structure):
    _fields_ = (("nfont", ctypes.c_int), ("sfont", ctypes.c_int), ("fonts", ctypes.POINTER(ctypes.c_void_p)))


def _fontconfig() -> Any:
    """fontconfig, the library WeasyPrint finds fonts with (None: not on this machine).
    By its usual name first: ``find_library`` runs ``ldconfig -p`` (or a compiler) in a
    process of its own, only needed where that name is not found."""
    for name in _fontconfig_names():
        try:
            lib = ctypes.CDLL(name)
        except OSError:
            continue
        lib.FcInitLoadConfigAndFonts.restype = ctypes.c_void_p
        lib.FcInitLoadConfigAndFonts.argtypes = ()
        lib.FcConfigGetFonts.restype = ctypes.POINTER(_FontSet)
        lib.FcConfigGetFonts.argtypes = (ctypes.c_void_p, ctypes.c_int)
        lib.FcPatternGetString.restype = ctypes.c_int
        lib.FcPatternGetString.argtypes = (
            ctypes.c_void_p,
            ctypes.c_char_p,
            ctypes.c_int,
            ctypes.POINTER(ctypes.c_char_p),
        )
        lib.FcConfigDestroy.restype = None
        lib.FcConfigDestroy.argtypes = (ctypes.c_void_p,)
        return lib
    return None


def _fontconfig_names() -> Iterator[str]:
    yield "libfontconfig.so.1"
    found = ctypes.util.find_library("fontconfig")
    if found:
        yield found


def _system_font_files() -> list[Path]:
    """The font files fontconfig knows on this machine (the system fonts WeasyPrint
    sees), asked through ``ctypes``: importing WeasyPrint for this list cost an export
    whose PDFs are rendered by other processes half a second."""
    lib = _fontconfig()
    if lib is None:
        return []
    config = lib.FcInitLoadConfigAndFonts()
    if not config:
        return []
    files: list[Path] = []
    try:
        fonts = lib.FcConfigGetFonts(config, 0)  # (FcSetSystem)
        if fonts:
            found = ctypes.c_char_p()
            for i in range(fonts.contents.nfont):
                # (FcResultMatch is 0)
                if (
                    lib.FcPatternGetString(fonts.contents.fonts[i], b"file", 0, ctypes.byref(found)) == 0
                    and found.value
                ):
                    files.append(Path(found.value.decode("utf-8", "surrogateescape")))
    finally:
        lib.FcConfigDestroy(config)
    return sorted(set(files))


@cache
def _cmap(path: Path) -> frozenset[int]:
    """The code points one font file (every font of a collection) has glyphs for."""
    from fontTools.ttLib import TTCollection, TTFont

    points: set[int] = set()
    try:
        if path.suffix.lower() in (".ttc", ".otc"):
            fonts = list(TTCollection(str(path), lazy=True).fonts)
        else:
            fonts = [TTFont(str(path), lazy=True)]
        for font in fonts:
            points.update((font.getBestCmap() or {}).keys())
    except Exception:  # noqa: BLE001 - a font fontTools cannot read draws nothing for us
        return frozenset()
    return frozenset(points)


@cache
def _font_files() -> tuple[Path, ...]:
    return bundled_font_files() + tuple(_system_font_files())


_known: dict[str, bool] = {}  # character → some font draws it (this process)


def undrawable(chars: Iterable[str]) -> list[str]:
    """The characters of ``chars`` that no font available to the documents can draw,
    sorted.  ASCII and characters that are not drawn on their own are never listed."""
    missing = []
    for char in sorted(set(chars)):
        if ord(char) < 0x80 or unicodedata.category(char) in _NOT_DRAWN:
            continue
        if char not in _known:
            _known[char] = any(ord(char) in _cmap(path) for path in _font_files())
        if not _known[char]:
            missing.append(char)
    return missing


def undrawable_note(chars: Iterable[str], *, shown: int = 12) -> str | None:
    """An export note naming the characters no font can draw (None: every one is drawn)."""
    missing = undrawable(chars)
    if not missing:
        return None
    listed = ", ".join(f"{c} (U+{ord(c):04X})" for c in missing[:shown])
    more = f" and {len(missing) - shown} more" if len(missing) > shown else ""
    return (
        "characters in the data that no font on the machine that made the PDF documents can draw show there as "
        f"empty boxes (the CSV, JSON, XML, Excel and Word files have them): {listed}{more}"
    )


def _strings(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, tuple | list):
        for item in value:
            yield from _strings(item)
    elif hasattr(value, "__dataclass_fields__"):
        for name in value.__dataclass_fields__:
            yield from _strings(getattr(value, name))


def document_characters(doc: Any) -> set[str]:
    """Every character outside ASCII that a document model's texts hold."""
    chars: set[str] = set()
    for text in _strings(doc):
        if not text.isascii():
            chars.update(c for c in text if ord(c) >= 0x80)
    return chars
