"""Small inline SVG charts for the HTML audit: grouped bars and line plots, no scripts.

Hand-written rather than a plotting library: three chart shapes, a few dozen lines, and
the page must stay self-contained (no JS, no CDN).
"""

from __future__ import annotations

from collections.abc import Sequence
from html import escape

W, H, PAD_L, PAD_B, PAD_T, PAD_R = 640, 240, 56, 48, 16, 16
COLORS = ("#4e79a7", "#f28e2b", "#59a14f", "#e15759")


def _fmt(v: float) -> str:
    return f"{v:.0f}" if abs(v) >= 100 or v == int(v) else f"{v:.2f}"


def _axes(ymax: float, ylabel: str) -> list[str]:
    out = [
        f'<line x1="{PAD_L}" y1="{H - PAD_B}" x2="{W - PAD_R}" y2="{H - PAD_B}" stroke="#555"/>',
        f'<line x1="{PAD_L}" y1="{PAD_T}" x2="{PAD_L}" y2="{H - PAD_B}" stroke="#555"/>',
    ]
    for k in range(5):
        v = ymax * k / 4
        y = H - PAD_B - (H - PAD_B - PAD_T) * k / 4
        out.append(f'<text x="{PAD_L - 6}" y="{y + 4:.1f}" text-anchor="end" font-size="10">{_fmt(v)}</text>')
        out.append(f'<line x1="{PAD_L}" y1="{y:.1f}" x2="{W - PAD_R}" y2="{y:.1f}" stroke="#eee"/>')
    out.append(
        f'<text x="12" y="{PAD_T + 8}" font-size="10" transform="rotate(-90 12 {PAD_T + 8})" '
        f'text-anchor="end">{escape(ylabel)}</text>'
    )
    return out


def bars(title: str, labels: Sequence[str], series: Sequence[tuple[str, Sequence[float | None]]], ylabel: str) -> str:
    """Grouped bars: one group per label, one bar per series (e.g. source vs target counts)."""
    values = [v for _, vs in series for v in vs if v is not None]
    ymax = max(values or [1]) or 1
    plot_w = W - PAD_L - PAD_R
    group = plot_w / max(1, len(labels))
    bar = group * 0.8 / max(1, len(series))
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" role="img" aria-label="{escape(title)}">',
        f"<title>{escape(title)}</title>",
        *_axes(ymax, ylabel),
    ]
    for gi, label in enumerate(labels):
        x0 = PAD_L + gi * group + group * 0.1
        for si, (name, vs) in enumerate(series):
            v = vs[gi]
            if v is None:
                continue
            h = (H - PAD_B - PAD_T) * (v / ymax)
            out.append(
                f'<rect x="{x0 + si * bar:.1f}" y="{H - PAD_B - h:.1f}" width="{bar - 2:.1f}" height="{h:.1f}" '
                f'fill="{COLORS[si % len(COLORS)]}"><title>{escape(label)} {escape(name)}: {_fmt(v)}</title></rect>'
            )
        out.append(
            f'<text x="{x0 + group * 0.4:.1f}" y="{H - PAD_B + 14}" text-anchor="middle" font-size="10">'
            f"{escape(label[:24])}</text>"
        )
    out += _legend([name for name, _ in series])
    out.append("</svg>")
    return "\n".join(out)


def lines(title: str, series: Sequence[tuple[str, Sequence[Sequence[float]]]], ylabel: str) -> str:
    """Line plots over time: x is seconds since the first point of any series."""
    pts = [p for _, ps in series for p in ps]
    if not pts:
        return f'<p class="empty">{escape(title)}: no data recorded.</p>'
    t0 = min(p[0] for p in pts)
    xmax = max(p[0] for p in pts) - t0 or 1.0
    ymax = max(p[1] for p in pts) or 1.0
    pw, ph = W - PAD_L - PAD_R, H - PAD_B - PAD_T
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" role="img" aria-label="{escape(title)}">',
        f"<title>{escape(title)}</title>",
        *_axes(ymax, ylabel),
    ]
    for k in range(5):
        x = PAD_L + pw * k / 4
        out.append(
            f'<text x="{x:.1f}" y="{H - PAD_B + 14}" text-anchor="middle" font-size="10">{_fmt(xmax * k / 4)}s</text>'
        )
    for si, (name, ps) in enumerate(series):
        if not ps:
            continue
        coords = " ".join(f"{PAD_L + pw * (p[0] - t0) / xmax:.1f},{H - PAD_B - ph * p[1] / ymax:.1f}" for p in ps)
        color = COLORS[si % len(COLORS)]
        out.append(
            f'<polyline fill="none" stroke="{color}" stroke-width="1.5" points="{coords}">'
            f"<title>{escape(name)}</title></polyline>"
        )
        for xy in coords.split():  # points too: a short run may have only one or two
            cx, cy = xy.split(",")
            out.append(f'<circle cx="{cx}" cy="{cy}" r="2.5" fill="{color}"/>')
    out += _legend([name for name, _ in series])
    out.append("</svg>")
    return "\n".join(out)


def _legend(names: Sequence[str]) -> list[str]:
    out = []
    for i, name in enumerate(names):
        x = PAD_L + i * 170
        out.append(f'<rect x="{x}" y="{H - 16}" width="10" height="10" fill="{COLORS[i % len(COLORS)]}"/>')
        out.append(f'<text x="{x + 14}" y="{H - 7}" font-size="10">{escape(name[:26])}</text>')
    return out
