"""WeasyPrint's font work for a PDF, reused when it recurs (installed by the renderer).

Embedding a font in a PDF means subsetting it to the glyphs the document uses and, for
a variable font (the Noto fonts are), making a static instance of it at the weight,
size and style used.  Documents of one export, and certificates above all, embed the
same fonts with the same glyphs again and again; the work depends only on the font
and those inputs, so the bytes are reused, per process, in bounded LRU caches.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from typing import Any

from .fonts import patched_with

__all__ = ["CLEAN_CACHE_SIZE", "SUBSET_CACHE_SIZE", "cache_font_cleaning", "cache_font_subsets", "clear", "sizes"]

SUBSET_CACHE_SIZE = 512  # font subsets kept per process (a few kB each)
_subsets: OrderedDict[tuple[Any, ...], bytes] = OrderedDict()


def cache_font_subsets() -> None:
    """Make WeasyPrint reuse a font subset already made for the same glyphs of the same font.

    Subsetting (HarfBuzz) is a third of what a certificate costs once it is laid out,
    and most subsets recur: the fixed lines of every certificate, a course's name on
    every certificate of that course, a person's on all of theirs.  The subset depends
    only on the font and the glyphs (and two flags), so the bytes are the same.
    Installed once per process; a WeasyPrint without ``Font.subset(to_unicode,
    hinting)`` is left alone.
    """
    _patch_font("subset", _caching_subset)


def _caching_subset(original: Any) -> Any:
    def subset(self: Any, to_unicode: dict[int, str], hinting: bool, *more: Any, **options: Any) -> None:
        content = self.file_content
        if more or options or not to_unicode or not isinstance(content, bytes):  # (a newer signature: as it is)
            return original(self, to_unicode, hinting, *more, **options)
        key = _font_key(self, content, to_unicode, hinting)
        cached = _subsets.get(key)
        if cached is not None:
            _subsets.move_to_end(key)
            self.file_content = cached
            return None
        original(self, to_unicode, hinting)
        if isinstance(self.file_content, bytes) and self.file_content is not content:
            _keep(_subsets, key, self.file_content, SUBSET_CACHE_SIZE)
        return None

    return subset


def _font_key(font: Any, content: bytes, to_unicode: dict[int, str], hinting: bool) -> tuple[Any, ...]:
    """What a subset of ``font`` depends on: the font (WeasyPrint's hash of its
    description, its file's size and ends), the glyphs, and two flags."""
    return (
        font.hash,
        getattr(font, "index", None),
        getattr(font, "glyph_count", None),
        len(content),
        hashlib.md5(content[:2048] + content[-2048:], usedforsecurity=False).digest(),
        bool(hinting),
        bool(getattr(font, "missing", None)),
        tuple(sorted(to_unicode)),
    )


CLEAN_CACHE_SIZE = 256  # fonts made ready for embedding kept per process (a subset each)
_cleaned: OrderedDict[tuple[Any, ...], tuple[bytes, dict[str, Any]]] = OrderedDict()


def cache_font_cleaning() -> None:
    """Make WeasyPrint reuse a font it has made ready for embedding already.

    ``Font.clean`` subsets the font, turns a variable font (the Noto fonts are) into a
    static instance at the weight, size and style used, and blanks colour glyphs: about
    36 ms for a variable font, and in an export most documents embed the same fonts
    with the same glyphs (287 of 364 cleanings of the example's documents repeated one
    before).  The result depends only on what the key holds (the font, the glyphs, the
    variations, weight, size, style, its tables and colour kinds), and the font's
    timestamp is fixed (``fonts.steady_font_instances``), so the bytes are the same.
    Installed once per process, over the steady ``clean``; a WeasyPrint without
    ``Font.clean(to_unicode, hinting)`` is left alone."""
    _patch_font("clean", _caching_clean)


def _caching_clean(original: Any) -> Any:
    def clean(self: Any, to_unicode: dict[int, str], hinting: bool, *more: Any, **options: Any) -> None:
        content = self.file_content
        variations = getattr(self, "variations", None)
        if more or options or not isinstance(content, bytes) or not isinstance(variations, dict):
            return original(self, to_unicode, hinting, *more, **options)
        key = _font_key(self, content, to_unicode, hinting) + (
            tuple(sorted(variations.items())),
            getattr(self, "weight", None),
            getattr(self, "font_size", None),
            getattr(self, "style", None),
            bool(getattr(self, "png", None)),
            bool(getattr(self, "svg", None)),
            bool(getattr(self, "colr", None)),
            tuple(getattr(self, "tables", ())),
        )
        cached = _cleaned.get(key)
        if cached is not None:
            _cleaned.move_to_end(key)
            self.file_content = cached[0]
            variations.update(cached[1])  # (what ``clean`` adds: the axes it pinned)
            return None
        original(self, to_unicode, hinting)
        if isinstance(self.file_content, bytes):
            _keep(_cleaned, key, (self.file_content, dict(variations)), CLEAN_CACHE_SIZE)
        return None

    return clean


def _patch_font(name: str, caching: Any) -> None:
    """Put ``caching(original)`` in place of WeasyPrint's ``Font.<name>``, once per process
    (marked, and found under any patch put over it later); a WeasyPrint without it is
    left alone."""
    try:
        from weasyprint.pdf.fonts import Font
    except ImportError:  # pragma: no cover - another WeasyPrint
        return
    original = getattr(Font, name, None)
    if original is None or patched_with(original, "learnexit_cached"):
        return
    wrapper = caching(original)
    wrapper.learnexit_cached = True
    wrapper.__wrapped__ = original
    setattr(Font, name, wrapper)


def _keep(cache: OrderedDict[tuple[Any, ...], Any], key: tuple[Any, ...], value: Any, limit: int) -> None:
    """Remember ``value`` as the newest of at most ``limit`` (the oldest goes)."""
    cache[key] = value
    if len(cache) > limit:
        cache.popitem(last=False)


def clear() -> None:
    """Forget every reused subset and font (the next documents do the work afresh)."""
    _subsets.clear()
    _cleaned.clear()


def sizes() -> tuple[int, int]:
    """(subsets, fonts made ready for embedding) kept now."""
    return len(_subsets), len(_cleaned)
