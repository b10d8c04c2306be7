"""What the app's screen shows, cell by cell: text and the resolved colours.

Reads the screen's composited strips (what Textual writes to the terminal),
so a test sees the colours after the theme, the stylesheet, transparency and
inline Rich styles were all applied.
"""

from __future__ import annotations

from typing import Iterator

from rich.cells import cell_len
from rich.color import Color
from rich.style import Style
from textual.geometry import Region


def cells(app, region: Region | None = None) -> Iterator[tuple[int, int, str, Style]]:
    """(x, y, character, style) of every cell of the screen (or of ``region``)."""
    strips = app.screen._compositor.render_strips()
    for y, strip in enumerate(strips):
        if region is not None and not region.y <= y < region.bottom:
            continue
        x = 0
        for segment in strip:
            style = segment.style or Style.null()
            for char in segment.text:
                if region is None or region.x <= x < region.right:
                    yield x, y, char, style
                x += cell_len(char)


def screen_text(app, region: Region | None = None) -> str:
    """The screen's (or ``region``'s) text, one line per row."""
    rows: dict[int, list[str]] = {}
    for _, y, char, _ in cells(app, region):
        rows.setdefault(y, []).append(char)
    return "\n".join("".join(rows[y]) for y in sorted(rows))


def _luminance(color: Color) -> float:
    """WCAG 2.x relative luminance of an sRGB colour."""

    def channel(value: int) -> float:
        c = value / 255
        return c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4

    r, g, b = color.get_truecolor()
    return 0.2126 * channel(r) + 0.7152 * channel(g) + 0.0722 * channel(b)


def contrast_ratio(foreground: Color, background: Color) -> float:
    """WCAG 2.x contrast ratio, 1.0 to 21.0."""
    lighter, darker = sorted((_luminance(foreground), _luminance(background)), reverse=True)
    return (lighter + 0.05) / (darker + 0.05)


def text_colors(style: Style) -> tuple[Color | None, Color | None]:
    """(text colour, background colour) a cell is painted with (reverse applied)."""
    fg, bg = style.color, style.bgcolor
    return (bg, fg) if style.reverse else (fg, bg)
