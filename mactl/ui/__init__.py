"""The web console (`mactl ui`): the workflow map, stage pages, plan, audit and history in a browser.

It sits just below the CLI: `mactl.cli.ui_cmd` hands it the CLI's own code paths (load the
config, collect the statuses `mactl status` shows, build the plan `mactl plan` shows,
record an approval as `mactl approve` does) as a `ConsoleSources`, so the console never
has a second way of doing any of them. It reads the state under no lock and writes it
only through that approval. Pages are rendered on the server from Jinja2 templates; a
little plain JavaScript (served by mactl, no build step, no CDN) recolours the map live.
"""

from __future__ import annotations
