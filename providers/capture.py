"""Capture stage: capture proxies in front of the source, recording to a capture log.

The stage runs the seed's inner "start capture" workflow, each step reported through
`ctx.progress` and listed in the outputs' `steps`:
1. `init_log`: create the log folder or Kafka topic;
2. `rollout_proxies`: start one `mactl capture-proxy` per `proxies` entry as a detached
   process (PID file in the stage's workdir); a proxy already answering healthy for this
   source is kept, so re-applying is idempotent;
3. `all_healthy_not_capturing`: every proxy answers its health endpoint;
4. `signal_write`: `POST /__mactl/capture/start` to each;
5. `all_capturing`: every proxy reports `capturing: true`.
Outputs carry the proxy endpoints and PIDs, the log block (`log`, what
`mactl.capture.log.current_position` takes) and the log position when capture began.
Rollback stops the proxies; it deletes the topic (or log folder) only when
`deleteTopicOnRollback` is true.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from mactl.providers.base import BaseProvider, Fact, PreflightContext, Progress, StageContext
from mactl.state.workdir import StageFiles

from mactl.errors import ProviderError
from mactl.schema.capture import CaptureInputs, CaptureLog

Context = StageContext[CaptureInputs]


STEPS = ("init_log", "rollout_proxies", "all_healthy_not_capturing", "signal_write", "all_capturing")


def resolved_log(log: CaptureLog | Mapping[str, Any]) -> dict[str, Any]:
    """The log block with a file log's path made absolute (stages run from one cwd)."""
    from mactl.capture.log import log_config

    cfg = log_config(log)
    if cfg["type"] == "file":
        cfg["path"] = str(Path(cfg["path"]).expanduser().resolve())
    return cfg


def proxy_id(source_name: str, index: int) -> str:
    return f"{source_name}-{index}"


def proxy_url(listen: str) -> str:
    host, _, port = listen.rpartition(":")
    if host in ("", "0.0.0.0", "::", "[::]"):
        host = "127.0.0.1"
    return f"http://{host}:{port}"


class CaptureProvider(BaseProvider[CaptureInputs]):
    type = "capture"
    Inputs = CaptureInputs
    replace_on = frozenset({"source", "log", "proxies"})
    available = True

    def validate(self, inputs: CaptureInputs) -> list[str]:
        import re

        problems = []
        listens = [p.listen for p in inputs.proxies]
        if not listens:
            problems.append("proxies: at least one proxy is needed")
        if len(set(listens)) != len(listens):
            problems.append("proxies: two proxies listen on the same address")
        for i, listen in enumerate(listens):
            host, sep, port = listen.rpartition(":")
            if not sep or not port.isdigit() or not 0 < int(port) < 65536:
                problems.append(f"proxies[{i}].listen: expected HOST:PORT, got {listen!r}")
        for name, pattern in {
            **inputs.filters.skipHeaders,
            **{str(i): p for i, p in enumerate(inputs.filters.skipPaths)},
        }.items():
            try:
                re.compile(pattern)
            except re.error as exc:
                problems.append(f"filters: bad regex for {name}: {exc}")
        return problems

    def preflight(self, inputs: CaptureInputs, ctx: PreflightContext) -> list[str]:
        from mactl.providers.preflight import cluster_problem

        problem = cluster_problem(inputs.source, "source", ctx)
        return [problem] if problem else []

    def apply(self, ctx: Context) -> dict[str, Any]:
        from mactl.capture import fleet
        from mactl.capture import log as capture_log

        inputs = ctx.inputs
        ctx.workdir.mkdir(parents=True, exist_ok=True)
        log_cfg = resolved_log(inputs.log)
        steps: list[dict[str, Any]] = []

        def step(index: int, name: str, message: str) -> None:
            steps.append({"step": name, "done": True, "at": time.time(), "detail": message})
            ctx.progress(Progress(done=index, total=len(STEPS), unit="steps", message=f"{name}: {message}"))
            ctx.log(f"capture {ctx.address}: step {index}/{len(STEPS)} {name}: {message}")

        description = capture_log.init_log(log_cfg)
        step(1, "init_log", f"{description['type']} log ready")

        proxies: list[dict[str, Any]] = []
        for i, spec in enumerate(inputs.proxies):
            pid_ = proxy_id(inputs.source.name, i)
            url = proxy_url(spec.listen)
            pid_file = StageFiles(ctx.workdir).proxy_pid(pid_)
            doc = fleet.health(url)
            if (
                doc is not None
                and doc.get("proxyId") == pid_
                and doc.get("source", "").rstrip("/") == _origin(inputs.source.endpoint)
                and doc.get("log") == description
            ):
                pid = int(doc["pid"])
                reused = True
            else:
                if doc is not None:
                    # Same id and source is not enough: a proxy of another migration (another
                    # state, another log) would capture into a log this stage never reads.
                    theirs = doc.get("log") or {}
                    where = theirs.get("path") or theirs.get("topic") or "an unknown log"
                    raise ProviderError(
                        f"proxies[{i}].listen {spec.listen}: a capture proxy of another migration already "
                        f"listens there ({doc.get('proxyId')}, recording to {where}); stop it "
                        "(`mactl destroy` in its config's folder) or choose another listen address"
                    )
                args = [
                    "capture-proxy",
                    "--listen",
                    spec.listen,
                    "--log",
                    _json(log_cfg),
                    "--id",
                    pid_,
                    "--pid-file",
                    str(pid_file),
                    "--state-file",
                    str(StageFiles(ctx.workdir).proxy_state(pid_)),
                ]
                if inputs.source.insecure:
                    args.append("--insecure")
                for pattern in inputs.filters.skipPaths:
                    args += ["--skip-path", pattern]
                # The source URL may hold a password and a skipped header's pattern a token:
                # both go through the environment, never the `ps`-visible command line.
                pid = fleet.spawn(
                    args,
                    StageFiles(ctx.workdir).proxy_log(pid_),
                    env={
                        "MACTL_CAPTURE_SOURCE": inputs.source.endpoint,
                        "MACTL_CAPTURE_SKIP_HEADERS": json.dumps(dict(inputs.filters.skipHeaders)),
                    },
                )
                reused = False
            proxies.append(
                {
                    "id": pid_,
                    "listen": spec.listen,
                    "url": url,
                    "pid": pid,
                    "reused": reused,
                    "logFile": str(StageFiles(ctx.workdir).proxy_log(pid_)),
                }
            )
        started = sum(not p["reused"] for p in proxies)
        step(2, "rollout_proxies", f"{started} started, {len(proxies) - started} already running")
        fleet.update_registry(ctx.workdir, inputs.source.name, proxies=proxies, log=log_cfg, captureAddress=ctx.address)

        healths = self._wait(ctx, proxies, inputs.healthTimeoutSeconds, lambda d: True, "healthy")
        already = [p["id"] for p, d in zip(proxies, healths) if d.get("capturing")]
        step(
            3,
            "all_healthy_not_capturing",
            f"{len(proxies)} healthy"
            + (f"; already capturing: {', '.join(already)}" if already else ", none capturing"),
        )

        for p in proxies:
            fleet.control(p["url"], "capture/start")
        step(4, "signal_write", f"signalled {len(proxies)} proxies")

        self._wait(ctx, proxies, inputs.healthTimeoutSeconds, lambda d: bool(d.get("capturing")), "capturing")
        position = capture_log.current_position(log_cfg)
        step(5, "all_capturing", f"{len(proxies)} capturing")
        return {
            "proxies": proxies,
            "log": log_cfg,
            "logDescription": description,
            "position": position,
            "capturingSince": position["time"],
            "steps": steps,
        }

    def _wait(
        self,
        ctx: Context,
        proxies: list[dict[str, Any]],
        timeout: float,
        ok: Callable[[dict[str, Any]], bool],
        what: str,
    ) -> list[dict[str, Any]]:
        from mactl.capture import fleet

        deadline = time.monotonic() + timeout
        while True:
            docs = [fleet.health(p["url"]) for p in proxies]
            if all(d is not None and ok(d) for d in docs):
                return docs  # type: ignore[return-value]
            if time.monotonic() >= deadline or ctx.cancelled.is_set():
                bad = [p for p, d in zip(proxies, docs) if d is None or not ok(d)]
                detail = "; ".join(
                    f"{p['id']} at {p['listen']}: {fleet.tail(Path(p['logFile']), 3) or 'no answer'}" for p in bad
                )
                raise ProviderError(f"capture: proxies not {what} after {timeout:.0f}s: {detail}")
            time.sleep(0.1)

    def rollback(self, ctx: Context) -> None:
        from mactl.capture import fleet
        from mactl.capture import log as capture_log

        inputs = ctx.inputs
        prior = dict(ctx.prior_outputs or {})
        proxies = prior.get("proxies") or fleet.read_registry(ctx.workdir, inputs.source.name).get("proxies", [])
        for p in proxies:
            if fleet.health(p["url"]) is not None:
                try:
                    fleet.control(p["url"], "capture/stop")
                except ProviderError:
                    pass
            pid_file = StageFiles(ctx.workdir).proxy_pid(p["id"])
            fleet.stop(fleet.read_pid(pid_file) or p.get("pid"))
            StageFiles(ctx.workdir).proxy_state(p["id"]).unlink(missing_ok=True)
        ctx.log(f"capture {ctx.address}: stopped {len(proxies)} proxies")
        if inputs.deleteTopicOnRollback:
            deleted = capture_log.delete_log(prior.get("log") or resolved_log(inputs.log))
            ctx.log(f"capture {ctx.address}: capture log {'deleted' if deleted else 'was already gone'}")
        fleet.update_registry(ctx.workdir, inputs.source.name, proxies=[])

    def read(self, ctx: Context) -> dict[str, Any] | None:
        """The outputs with each proxy's live health (`healthy`, `capturing`: status).

        Only the proxies this source's fleet registry still lists are asked: a later stage
        (teardown) that stopped them took them off it, so they are not expected to answer.
        """
        from mactl.capture import fleet

        if ctx.prior_outputs is None:
            return None
        out = dict(ctx.prior_outputs)
        registered = fleet.read_registry(ctx.workdir, ctx.inputs.source.name).get("proxies")
        expected = None if registered is None else {p.get("id") for p in registered}
        proxies = []
        for p in out.get("proxies", []):
            if expected is not None and p["id"] not in expected:
                proxies.append(p)
                continue
            doc = fleet.health(p["url"])
            proxies.append({**p, "healthy": doc is not None, "capturing": bool(doc and doc.get("capturing"))})
        out["proxies"] = proxies
        return out

    def facts(self, outputs: Mapping[str, Any]) -> dict[str, Fact]:
        """One fact per proxy: `running` or `not answering` (applying again restarts it).
        Whether it records is status: a `disable_capture` stage stops that on purpose."""
        return {
            f"proxy {p['id']}": Fact("running" if p.get("healthy", True) else "not answering")
            for p in outputs.get("proxies", [])
        }


def _origin(url: str) -> str:
    from mactl.capture.proxy import Upstream

    return Upstream.parse(url).url


def _json(data: dict[str, Any]) -> str:
    import json

    return json.dumps(data, sort_keys=True)
