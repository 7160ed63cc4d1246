"""The prompt coloured by each model's surprise, −log₂ p, and their disagreement."""
from __future__ import annotations

import html
from typing import Mapping, Sequence



from .common import char_span, display_token


def _surprise_colour(bits: float, max_bits: float = 8.0) -> str:
    """white (0 bits: certain) → red (≥ max_bits)."""
    if bits != bits:  # NaN: the first character has no prediction
        return "#eeeeee"
    a = min(max(bits / max_bits, 0.0), 1.0)
    g = int(255 - 200 * a)
    return f"rgb(255,{g},{g})"


def _diff_colour(d: float, max_bits: float = 4.0) -> str:
    """blue (first model more surprised) ← white → green (second model more surprised)."""
    if d != d:
        return "#eeeeee"
    a = min(abs(d) / max_bits, 1.0)
    shade = int(255 - 170 * a)
    return f"rgb({shade},{shade},255)" if d > 0 else f"rgb({shade},255,{shade})"


def surprise_html(chars: Sequence[str], bits: Mapping[str, Sequence[float]]) -> str:
    """The text coloured by each model's surprise, one block per model, then where they disagree.

    Hovering a character shows its surprise in bits. The last block colours
    d_t = s_t(first model) − s_t(second model): blue where the first model was more surprised, green
    where the second was. Returned as HTML (it wraps like text, which a plot would not).
    """
    names = list(bits)
    style = ("font-family:ui-monospace,monospace;font-size:15px;line-height:1.7;"
             "border:1px solid #ddd;border-radius:6px;padding:6px 8px;margin:4px 0 10px 0")
    parts = ['<div class="surprise-strip">']
    for name in names:
        b = list(bits[name])
        finite = [x for x in b if x == x]
        mean = sum(finite) / len(finite) if finite else float("nan")
        parts.append(f"<div><b>{html.escape(name)}</b> — mean {mean:.2f} bits/char "
                     f"(white = expected, red = surprised)</div><div style=\"{style}\">")
        for c, s in zip(chars, b):
            tip = f"{display_token(c)!r}: {s:.2f} bits" if s == s else f"{display_token(c)!r}: first character"
            parts.append(char_span(c, _surprise_colour(s), tip))
        parts.append("</div>")
    if len(names) == 2:
        a, b2 = (list(bits[n]) for n in names)
        parts.append(f"<div><b>Disagreement</b> — blue: {html.escape(names[0])} more surprised, "
                     f"green: {html.escape(names[1])} more surprised</div><div style=\"{style}\">")
        for c, x, y in zip(chars, a, b2):
            d = x - y
            tip = (f"{display_token(c)!r}: {names[0]} {x:.2f} − {names[1]} {y:.2f} = {d:+.2f} bits"
                   if d == d else f"{display_token(c)!r}: first character")
            parts.append(char_span(c, _diff_colour(d), tip))
        parts.append("</div>")
    parts.append("</div>")
    return "".join(parts)
