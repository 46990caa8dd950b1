"""The timeline as server-side SVG: stacked bars per hour, no script and no chart library.

Drawn with presentation attributes only (no style attributes), so the dashboard's
Content-Security-Policy (style-src 'self') lets it through.
"""

import datetime
from html import escape

from storage.lifecycle import Status

SERIES = (("delivered", "#2e7d32"), ("failed", "#ef6c00"), ("dead", "#c62828"))
#: how a delivery's status counts on the timeline; pending, in-flight, skipped and cancelled
#: rows are left out of the bars (the table under the chart lists them)
COUNTED = {Status.DELIVERED: "delivered", Status.RETRYING: "failed", Status.DEAD: "dead"}
WIDTH, HEIGHT, LEFT, BOTTOM, TOP = 960, 260, 48, 28, 12


def hourly(rows, start, hours):
    """[(hour, {series: n})] for every hour from ``start``; ``rows`` are (hour, status, n)."""
    buckets = {start + datetime.timedelta(hours=i): {name: 0 for name, _ in SERIES} for i in range(hours)}
    for hour, status, n in rows:
        hour = _as_datetime(hour)
        if hour in buckets and status in COUNTED:
            buckets[hour][COUNTED[status]] += n
    return sorted(buckets.items())


def _as_datetime(value):
    # PostgreSQL's date_trunc gives a datetime, SQLite's strftime the text of one
    return datetime.datetime.fromisoformat(value) if isinstance(value, str) else value


def svg(buckets, title):
    """The chart; ``buckets`` as hourly() makes them."""
    plot_w, plot_h = WIDTH - LEFT - 8, HEIGHT - TOP - BOTTOM
    peak = max([sum(counts.values()) for _, counts in buckets] + [1])
    step = plot_w / max(len(buckets), 1)
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" class="timeline" viewBox="0 0 {WIDTH} {HEIGHT}" '
             f'role="img" aria-label="{escape(title)}">', f"<title>{escape(title)}</title>"]
    for fraction in (0, 0.5, 1):  # gridlines with their counts
        y = TOP + plot_h * (1 - fraction)
        parts.append(f'<line x1="{LEFT}" y1="{y:.1f}" x2="{WIDTH - 8}" y2="{y:.1f}" stroke="#ddd"/>')
        parts.append(f'<text x="{LEFT - 6}" y="{y + 4:.1f}" text-anchor="end" font-size="11" '
                     f'fill="#555">{round(peak * fraction)}</text>')
    for i, (hour, counts) in enumerate(buckets):
        x, y = LEFT + i * step, TOP + plot_h
        for name, colour in SERIES:
            h = plot_h * counts[name] / peak
            if h > 0:
                y -= h
                parts.append(f'<rect x="{x + 0.5:.1f}" y="{y:.1f}" width="{max(step - 1, 1):.1f}" '
                             f'height="{h:.1f}" fill="{colour}"><title>{hour:%Y-%m-%d %H:00} UTC: '
                             f'{counts[name]} {name}</title></rect>')
        if hour.hour == 0:  # a day's first hour: a tick with the date
            parts.append(f'<line x1="{x:.1f}" y1="{TOP}" x2="{x:.1f}" y2="{TOP + plot_h + 4}" stroke="#999"/>')
            parts.append(f'<text x="{x + 2:.1f}" y="{HEIGHT - 8}" font-size="11" fill="#555">'
                         f'{hour:%a %d %b}</text>')
    parts.append("</svg>")
    return "".join(parts)
