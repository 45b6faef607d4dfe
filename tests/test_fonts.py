"""Every character of the data is drawn in the PDF documents on a fresh machine, or named.

The Noto fonts of the ``manimgx-fonts`` dependency draw emoji and the scripts DejaVu
lacks without any system font package (no ``fonts-symbola``): WeasyPrint then finds a
glyph for every character and never re-encodes a font for missing ones (``/WP-Encod``).
A character that no font on the machine has (Chinese without a CJK font, an unassigned
code point) is listed in the export notes, which the customer reads in the summary.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

from helpers import pdf_text

from learnexit.demo import build_example
from learnexit.documents.fonts import bundled_font_files, document_characters, undrawable, undrawable_note
from learnexit.documents.model import Certificate, Paragraph, Report, Table
from learnexit.documents.render import render_file

# emoji (with a flag and a variation selector), Arabic, Hebrew, Devanagari, Thai, Greek,
# Cyrillic, symbols: no CJK (that needs a system font)
WORLD = "Åsa Öberg 🎓🚀✅🇪🇸 ❤️ مرحبا שלום नमस्ते สวัสดี Ωμέγα Жанна → € ☃"


def test_the_font_package_is_installed() -> None:
    names = {p.name for p in bundled_font_files()}
    assert "NotoEmoji[wght].ttf" in names and "NotoSansArabic[wght].ttf" in names


def test_every_character_is_drawn_without_system_emoji_fonts(tmp_path: Path) -> None:
    certificate = Certificate(
        lang="en",
        organisation="Acme 🎓",
        vendor="Vendor",
        person=WORLD,
        course="Kurs ✅ مرحبا",
        issued="1 December 2026",
        number="C-1",
    )
    report = Report(
        lang="en",
        title="Statistics 📊",
        subtitle=WORLD,
        organisation="Acme",
        vendor="Vendor",
        generated="today",
        blocks=(Paragraph(WORLD), Table(("name", "course"), ((WORLD, "🔐 Säkerhet"),))),
    )
    for name, doc in (("certificate", certificate), ("report", report)):
        target = tmp_path / f"{name}.pdf"
        render_file(doc, "pdf", target)
        raw = target.read_bytes()
        assert b"/WP-Encod" not in raw, f"{name}: a glyph had no font"
        text = " ".join(pdf_text(target).split())
        for word in ("Åsa", "🎓🚀✅", "नमस्ते", "Ωμέγα", "Жанна", "€", "☃"):
            assert word in text, (name, word, text)


def test_the_same_document_gives_the_same_bytes_a_second_later(tmp_path: Path) -> None:
    """The Noto fonts are variable fonts, made static per document by WeasyPrint with
    fontTools, which stamps the time into them: the stamp is fixed."""
    doc = Certificate(
        lang="en", organisation="A", vendor="V", person="Zoë 🚀 مرحبا", course="K", issued="-", number="1"
    )
    render_file(doc, "pdf", tmp_path / "first.pdf")
    time.sleep(1.1)
    render_file(doc, "pdf", tmp_path / "second.pdf")
    assert (tmp_path / "first.pdf").read_bytes() == (tmp_path / "second.pdf").read_bytes()


def test_undrawable_names_only_characters_no_font_has() -> None:
    unassigned = "\u0378"  # no character at all: no font can have it
    assert undrawable(["é", "🎓", "→", "م", unassigned, "\u200d", "\ufe0f", " "]) == [unassigned]
    note = undrawable_note([unassigned, "é"])
    assert note is not None and note.endswith(": \u0378 (U+0378)")
    assert undrawable_note(["é", "🎓"]) is None
    many = undrawable_note(chr(0x0378 + i) for i in range(2)) or ""
    assert "U+0379" in many
    doc = Certificate(lang="en", organisation="A", vendor="V", person="Lí 🎓", course="x", issued="-", number="1")
    assert document_characters(doc) == {"í", "🎓"}


def test_the_export_notes_name_the_characters_no_font_draws(tmp_path: Path) -> None:
    """globex's Chinese name: drawn where a CJK font is installed, else named."""
    build_example(tmp_path / "ex", activity_rows=100)
    env = {**os.environ, "LEARNEXIT_NOW": "2026-12-01"}
    run = subprocess.run(
        [sys.executable, "-m", "learnexit", "--config", str(tmp_path / "ex" / "learnexit.toml"), "--json"]
        + ["export", "globex", "--format", "pdf"],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )
    assert run.returncode == 0, run.stderr
    notes = json.loads(run.stdout)["notes"]
    boxes = [n for n in notes if "show there as empty boxes" in n]
    missing = undrawable("小李龙")
    if missing:
        assert boxes and all(f"U+{ord(c):04X}" in boxes[0] for c in missing), notes
    else:
        assert not boxes, notes
    assert not any("U+1F" in n for n in boxes), "emoji are drawn by the bundled fonts"


def _weasyprints_system_fonts() -> list[Path]:
    """The oracle: the system font files as WeasyPrint's own fontconfig binding lists them."""
    from weasyprint.text.ffi import ffi, fontconfig

    config = ffi.gc(fontconfig.FcInitLoadConfigAndFonts(), fontconfig.FcConfigDestroy)
    fonts = fontconfig.FcConfigGetFonts(config, fontconfig.FcSetSystem)
    found = ffi.new("FcChar8 **")
    files = set()
    for i in range(fonts.nfont):
        if fontconfig.FcPatternGetString(fonts.fonts[i], b"file", 0, found) == fontconfig.FcResultMatch:
            files.add(Path(ffi.string(found[0]).decode("utf-8", "surrogateescape")))
    return sorted(files)


def test_the_system_fonts_are_those_weasyprint_sees() -> None:
    from learnexit.documents import fonts

    listed = fonts._system_font_files()  # noqa: SLF001 - compared with WeasyPrint's own listing
    assert listed == _weasyprints_system_fonts()
    assert any(p.name == "DejaVuSans.ttf" for p in listed)  # (Debian's default face, on every CI machine)


def test_naming_undrawable_characters_does_not_import_weasyprint() -> None:
    """An export whose PDFs other processes render asks which characters no font draws:
    that is fontconfig's list and the fonts' character maps, not WeasyPrint (half a second)."""
    code = (
        "import sys\n"
        "from learnexit.documents.fonts import undrawable\n"
        "print(undrawable(['é', '😀', '\\u0378']))\n"
        "print('weasyprint' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split("\n")
    assert out[0] == "['\\u0378']"
    assert out[1] == "False"
