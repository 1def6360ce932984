"""The validation audit: the checks a validate stage runs, its report, and the renderers.

`checks` compares the target with the snapshot, the source and the replay tuples;
`model` finds reports in the state; `render` turns one into text, JSON, markdown or a
self-contained HTML page (inline SVG plots, no scripts, nothing fetched). Rendering
never talks to a cluster: `mactl audit` works from the state alone.
"""

from mactl.audit.model import AuditError, reports_from_state
from mactl.audit.render import render_html, render_json, render_markdown, render_text

__all__ = ["AuditError", "reports_from_state", "render_html", "render_json", "render_markdown", "render_text"]
