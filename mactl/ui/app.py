"""The console's web application: routes, each reading through `ConsoleSources` and rendering a template.

Starlette (a small ASGI toolkit) serves it under uvicorn. Handlers are plain functions
(Starlette runs them on its thread pool) because everything they call (config loading,
state reads, `dot`) blocks.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote

from jinja2 import Environment, PackageLoader, select_autoescape
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from mactl.errors import MactlError
from mactl.graph.render import KNOWN_STYLES
from mactl.state.masking import mask_url_password
from mactl.ui import views
from mactl.ui.access import Access, AccessMiddleware, same
from mactl.ui.layout import MapCache, StageMap, node_statuses
from mactl.ui.sources import ConsoleSources, Opened, StageRow

STATIC = Path(__file__).parent / "static"
APPROVED_DETAIL = "approved from the web console (mactl ui)"


def _config_stamp(path: Path) -> tuple[float, int]:
    """When the config (a file, or a folder of files) last changed, and how many files it has."""
    try:
        if path.is_dir():
            stamps = [p.stat().st_mtime for p in path.rglob("*") if p.is_file()]
            return (max(stamps, default=0.0), len(stamps))
        return (path.stat().st_mtime, 1)
    except OSError:
        return (0.0, 0)


class Console:
    """One migration's console: the config (loaded again when it changes on disk) and its map."""

    def __init__(
        self,
        sources: ConsoleSources,
        access: Access,
        poll_ms: int = 1000,
        opened: Opened | None = None,
        maps: MapCache | None = None,
    ) -> None:
        self.sources = sources
        self.access = access
        self.poll_ms = poll_ms
        self.maps = maps or MapCache()
        self._stamp: tuple[float, int] | None = _config_stamp(sources.config_path) if opened is not None else None
        self._opened: Opened | None = opened  # the command loaded it already: not again for the first page
        self.env = Environment(
            loader=PackageLoader("mactl.ui", "templates"),
            autoescape=select_autoescape(default=True),
            trim_blocks=True,
            lstrip_blocks=True,
        )
        self.env.filters["when"] = views.when
        self.env.filters["label"] = lambda s: views.STATUS_LABELS.get(s, s)
        self.env.filters["urlpath"] = lambda s: quote(s, safe="")

    # -- reading ------------------------------------------------------------------------

    def opened(self) -> Opened:
        """The config as it is on disk now (loaded again only when a file of it changed)."""
        stamp = _config_stamp(self.sources.config_path)
        if self._opened is None or stamp != self._stamp:
            self._opened = self.sources.open()
            self._stamp = stamp
        return self._opened

    def rows(self, opened: Opened) -> tuple[Any, list[StageRow], set[str]]:
        doc = opened.backend.read()
        rows = list(self.sources.statuses(opened.graph, doc, opened.backend.workdir))
        return doc, rows, views.rolled_back_addresses(doc)

    def map_status(self, opened: Opened, stage_map: StageMap) -> views.MapStatus:
        doc, rows, rolled = self.rows(opened)
        statuses = {r.address: views.shown_status(r, rolled) for r in rows}
        summary: dict[str, int] = {}
        for r in rows:
            if r.in_config:
                s = statuses[r.address]
                summary[s] = summary.get(s, 0) + 1
        counts = node_statuses(stage_map, statuses)
        by_address = {r.address: r for r in rows}
        nodes: dict[str, dict[str, Any]] = {}
        for node in stage_map.nodes:
            c = counts[node.id]
            entry: dict[str, Any] = {"status": views.group_status(c), "counts": c}
            if len(node.members) == 1:
                row = by_address.get(node.members[0])
                entry["progress"] = views.progress_text(row.progress) if row is not None else ""
            nodes[node.id] = entry
        return views.MapStatus(
            serial=doc.serial if doc is not None else 0,
            nodes=nodes,
            stages={} if stage_map.grouped else statuses,
            pending_approvals=[r.address for r in rows if r.approval == "pending"],
            summary=summary,
        )

    # -- pages --------------------------------------------------------------------------

    def page(self, template: str, request: Request, status_code: int = 200, **values: Any) -> HTMLResponse:
        html = self.env.get_template(template).render(
            request=request,
            csrf=self.access.csrf,
            config=str(self.sources.config_path),
            styles=KNOWN_STYLES,
            labels=views.STATUS_LABELS,
            **values,
        )
        return HTMLResponse(html, status_code=status_code)

    def map_page(self, request: Request) -> Response:
        opened = self.opened()
        stage_map = self.maps.layout(opened.graph)
        status = self.map_status(opened, stage_map)
        # a group's members are fetched on click (/api/node): a 12k-stage page does not carry them all
        nodes = [
            {"id": n.id, "label": n.label, "address": n.members[0] if len(n.members) == 1 else None}
            for n in stage_map.nodes
        ]
        return self.page(
            "map.html",
            request,
            svg=stage_map.svg,
            grouped=stage_map.grouped,
            stage_count=len(opened.graph.stages),
            initial=_script_json({"nodes": nodes, "status": asdict(status), "pollMs": self.poll_ms}),
            state=opened.backend.describe(),
        )

    def api_status(self, request: Request) -> Response:
        opened = self.opened()
        stage_map = self.maps.layout(opened.graph)
        return JSONResponse(asdict(self.map_status(opened, stage_map)))

    def api_node(self, request: Request) -> Response:
        """The click detail of a map node: its stages, their statuses, progress and per-index counts."""
        opened = self.opened()
        stage_map = self.maps.layout(opened.graph)
        node = next((n for n in stage_map.nodes if n.id == request.path_params["node"]), None)
        if node is None:
            return JSONResponse({"error": "no such node"}, status_code=404)
        doc, rows, rolled = self.rows(opened)
        by_address = {r.address: r for r in rows}
        records = doc.stages if doc is not None else {}
        stages = []
        for address in node.members[:500]:
            row = by_address.get(address)
            ledger, _reasons = views.ledger_table(row.ledger if row else None)
            stages.append(
                {
                    "address": address,
                    "status": views.shown_status(row, rolled) if row else "pending",
                    "progress": views.progress_text(row.progress) if row else "",
                    "approval": row.approval if row else None,
                    "ledger": ledger,
                    "items": views.metadata_items(records[address].outputs if address in records else None, 100),
                    "errors": row.errors if row else None,
                }
            )
        return JSONResponse({"id": node.id, "label": node.label, "count": len(node.members), "stages": stages})

    def stage(self, request: Request, error: str | None = None, status_code: int = 200) -> Response:
        address = request.path_params["address"]
        opened = self.opened()
        doc, rows, rolled = self.rows(opened)
        row = next((r for r in rows if r.address == address), None)
        try:
            data = views.stage_page(
                address,
                opened.graph,
                doc,
                row,
                opened.backend.workdir,
                set(opened.loaded.sensitive_values),
                self.sources.cli_args,
                rolled,
            )
        except KeyError:
            return self.page("error.html", request, 404, message=f"no stage {address!r} in the config or the state")
        return self.page("stage.html", request, status_code, s=data, error=error)

    def approve(self, request: Request, body: bytes) -> Response:
        form = {k: v[0] for k, v in parse_qs(body.decode(errors="replace")).items()}
        if not same(form.get("csrf"), self.access.csrf):
            return self.page("error.html", request, 403, message="refused: the form's CSRF token is missing or wrong")
        address = request.path_params["address"]
        opened = self.opened()
        try:
            self.sources.approve(opened, address, self.sources.who(), APPROVED_DETAIL)
        except MactlError as err:
            return self.stage(request, error=mask_url_password(err.message)[0], status_code=409)
        return RedirectResponse(f"/stage/{quote(address, safe='')}?approved=1", status_code=303)

    def plan(self, request: Request) -> Response:
        refresh = request.query_params.get("refresh") == "true"
        try:
            opened = self.opened()
            plan = self.sources.plan(opened, refresh)
        except MactlError as err:
            return self.page("plan.html", request, error=mask_url_password(str(err))[0], plan=None)
        from mactl.plan.render_text import render_text

        stage_map = self.maps.layout(opened.graph)
        actions = {c.address: c.action for c in plan.changes}
        nodes: dict[str, str] = {}
        for node in stage_map.nodes:
            acts = {actions.get(a, "noop") for a in node.members}
            order = ("rollback", "replace", "update", "create", "read", "noop")
            nodes[node.id] = next((a for a in order if a in acts), "noop")
        return self.page(
            "plan.html",
            request,
            plan=plan,
            error=None,
            text=render_text(plan),
            svg=stage_map.svg,
            refresh=refresh,
            initial=_script_json(
                {"actions": nodes, "addresses": {n.id: n.members[0] for n in stage_map.nodes if len(n.members) == 1}}
            ),
            changes=[c for c in plan.changes if c.action != "noop"],
        )

    def audit(self, request: Request) -> Response:
        from mactl.audit import reports_from_state

        opened = self.opened()
        try:
            reports_from_state(opened.backend.read())
        except MactlError as err:
            return self.page("audit.html", request, error=err.message, hint=err.hint)
        return self.page("audit.html", request, error=None, hint=None)

    def audit_report(self, request: Request) -> Response:
        """The audit's own HTML report (`mactl audit --html`), the one code path for both."""
        from mactl.audit import render_html, reports_from_state

        try:
            reports = reports_from_state(self.opened().backend.read())
        except MactlError as err:
            return HTMLResponse(f"<p>{err.message}</p>", status_code=404)
        return HTMLResponse(render_html(reports))

    def history(self, request: Request) -> Response:
        from mactl.masking import mask_text

        opened = self.opened()
        doc = opened.backend.read()
        secrets = opened.loaded.sensitive_values
        entries = list(reversed(doc.history)) if doc is not None else []
        for i, e in enumerate(entries):
            if e.detail:
                entries[i] = e.model_copy(update={"detail": mask_text(e.detail, secrets)})
        return self.page("history.html", request, entries=entries)


def _script_json(value: Any) -> str:
    """JSON safe to put inside a <script> element."""
    return json.dumps(value).replace("</", "<\\/")


def build_app(
    sources: ConsoleSources,
    access: Access,
    poll_ms: int = 1000,
    opened: Opened | None = None,
    maps: MapCache | None = None,
) -> AccessMiddleware:
    """The console as an ASGI app; `opened` and `maps` are what the command already loaded and laid out."""
    console = Console(sources, access, poll_ms, opened, maps)

    async def approve(request: Request) -> Response:
        from starlette.concurrency import run_in_threadpool

        body = await request.body()
        response: Response = await run_in_threadpool(console.approve, request, body)
        return response

    def wrap(handler: Any) -> Any:
        def endpoint(request: Request) -> Response:
            try:
                response: Response = handler(request)
            except MactlError as err:
                text = mask_url_password(err.message + (f" ({err.hint})" if err.hint else ""))[0]
                return console.page("error.html", request, 500, message=text)
            response.headers["cache-control"] = "no-store"
            return response

        return endpoint

    routes = [
        Route("/", wrap(console.map_page)),
        Route("/api/status", wrap(console.api_status)),
        Route("/api/node/{node}", wrap(console.api_node)),
        Route("/stage/{address:path}", wrap(console.stage)),
        Route("/approve/{address:path}", approve, methods=["POST"]),
        Route("/plan", wrap(console.plan)),
        Route("/audit", wrap(console.audit)),
        Route("/audit/report", wrap(console.audit_report)),
        Route("/history", wrap(console.history)),
        Mount("/static", StaticFiles(directory=STATIC), name="static"),
    ]
    app = Starlette(routes=routes, debug=bool(os.environ.get("MACTL_DEBUG")))
    return AccessMiddleware(app, access)
