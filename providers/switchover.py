"""The 'switchover' stage of the seed's idealized workflow: swing the proxies to the target.

Every capture proxy of the source is told to send client traffic to the target
(`POST /__mactl/route?to=target`, with the target's URL and, for basic auth, the
Authorization header it must use there). For a sigv4 target the proxies get the region
and service (`"sigv4": {"region", "service"}`) and sign every forwarded request
themselves, with the AWS credentials of their own process (the default chain of the
environment the capture stage started them in, i.e. that `mactl apply`'s): no credential
is sent to them or stored. This apply checks first that it finds credentials itself, so
a missing setup fails before any proxy is touched; a proxy that still finds none refuses
the route (400) and the stage fails with its message. From then on the proxies stop
recording: those writes never reach the source. Rollback swings them back to the
source. The proxies are found as `mactl.capture.fleet_lookup` describes.

Follow-mode replayers of this source must be in sync before the swing (otherwise the
stage refuses, naming them). After it the log no longer grows, and every replay of the
source is brought to its end: a follow replayer is waited for and stopped; for a replay
that ran inside apply (and stopped at its exit criteria), the requests captured since
are replayed here. So no captured write is left behind; a write sent straight to the
target in the seconds of that tail can still be overtaken by an older replayed one.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from mactl.providers.base import BaseProvider, Progress, StageContext

from mactl.errors import ConfigError, ProviderError
from mactl.schema.switchover import SwitchoverInputs

Context = StageContext[SwitchoverInputs]


class SwitchoverProvider(BaseProvider[SwitchoverInputs]):
    type = "switchover"
    Inputs = SwitchoverInputs
    replace_on = frozenset({"source", "target"})
    available = True

    def validate(self, inputs: SwitchoverInputs) -> list[str]:
        problems = []
        if inputs.target is None:
            problems.append("target: switchover needs the target the proxies should send traffic to")
        elif inputs.target.auth.type == "sigv4":
            from mactl.sigv4 import sigv4_region

            try:
                sigv4_region(inputs.target.auth, "target.auth")
            except ConfigError as exc:  # AWS credentials are the proxies' own, looked up at apply
                problems.append(exc.message)
        return problems

    def apply(self, ctx: Context) -> dict[str, Any]:
        from mactl.capture import fleet
        from mactl.capture.fleet_lookup import find_proxies
        from mactl.capture.replayer import authorization_for

        inputs = ctx.inputs
        if inputs.target is None:
            raise ConfigError(f"{ctx.address}: `target` is required for a switchover")
        body: dict[str, Any] = {"to": "target", "url": inputs.target.endpoint, "insecure": inputs.target.insecure}
        if inputs.target.auth.type == "sigv4":
            from mactl.sigv4 import aws_credentials, sigv4_region

            # the proxies sign with their own credentials; check ours before touching one
            # (they were started from an apply like this one, so they would find none either)
            sigv4 = {
                "region": sigv4_region(inputs.target.auth, "target.auth"),
                "service": inputs.target.auth.service,
            }
            aws_credentials("target.auth")
            body["sigv4"] = sigv4
        elif (auth := authorization_for(inputs.target.auth)) is not None:
            body["authorization"] = auth
        proxies = find_proxies(ctx, inputs.source.name, inputs.proxies)
        replayers = _replayers(ctx, inputs.source.name)
        lagging = [addr for addr, st in replayers.items() if st.get("follow") and not _in_sync(addr, st)]
        if lagging:
            raise ProviderError(
                f"{ctx.address}: replay not in sync yet: {', '.join(lagging)}",
                hint="wait for the replay stage to report in sync, then apply again",
            )
        routed = []
        for i, p in enumerate(proxies):
            doc = fleet.control(p["url"], "route", body)
            routed.append({"id": p.get("id"), "url": p["url"], "route": doc.get("route")})
            ctx.progress(Progress(done=i + 1, total=len(proxies), unit="proxies", message=f"{p['url']} → target"))
        drained = self._drain_replayers(ctx, replayers)
        return {"proxies": routed, "route": "target", "target": inputs.target.endpoint, "stoppedReplayers": drained}

    def _drain_replayers(self, ctx: Context, replayers: dict[str, dict[str, Any]]) -> list[str]:
        """Bring every replay of this source to the end of the (now final) log.

        A follow replayer is waited for, then stopped. A replay stage that ran inside
        apply has stopped at its exit criteria, so what was captured since is replayed
        here, from its committed offsets to the end of the log.
        """
        import time

        from mactl.capture import fleet
        from mactl.capture.replayer import Replayer, options_from_spec
        from mactl.capture.spec import ReplaySpec

        stopped = []
        for address, entry in replayers.items():
            if entry.get("follow") and entry.get("kubernetes"):
                from mactl.executors.kubernetes_replay import drain_and_delete

                if drain_and_delete(address, entry):
                    stopped.append(address)
                continue
            if not entry.get("follow"):
                spec = ReplaySpec.load(json.loads(Path(entry["specFile"]).read_text()))
                # the file holds no password: the config gives the target's, now
                spec = spec.with_password(ctx.target_password(spec.target.name or ""))
                work = Path(spec.workdir) if spec.workdir else Path(entry["specFile"]).parent
                tail = Replayer(spec.log, spec.group, options_from_spec(spec, work))
                st = tail.run(spec.start, resume=True, until_in_sync=False, until_caught_up=True, timeout_s=600)
                ctx.log(f"{ctx.address}: replayed the last {st.replayed} captured requests for {address}")
                continue
            pid = fleet.read_pid(Path(entry["pidFile"]))
            deadline = time.monotonic() + 120
            while fleet.is_mactl_process(pid or -1) and time.monotonic() < deadline:
                status = _status(entry)
                if status.get("caughtUp") and time.time() - float(status.get("updatedAt", 0)) < 2:
                    break
                time.sleep(0.2)
            else:
                if fleet.is_mactl_process(pid or -1):
                    raise ProviderError(f"{ctx.address}: replayer {address} did not reach the end of the log in 120s")
            if fleet.stop(pid):
                stopped.append(address)
        return stopped

    def rollback(self, ctx: Context) -> None:
        from mactl.capture import fleet
        from mactl.capture.fleet_lookup import find_proxies

        inputs = ctx.inputs
        for p in find_proxies(ctx, inputs.source.name, inputs.proxies):
            if fleet.health(p["url"]) is not None:
                fleet.control(p["url"], "route", {"to": "source"})
        ctx.log(f"{ctx.address}: proxies route to the source again")

    def read(self, ctx: Context) -> dict[str, Any] | None:
        from mactl.capture import fleet

        if ctx.prior_outputs is None:
            return None
        out = dict(ctx.prior_outputs)
        docs = [fleet.health(p["url"]) for p in out.get("proxies", [])]
        if any(d is not None and d.get("route") != "target" for d in docs):
            return None  # someone swung a proxy back: the switchover is no longer true
        return out


def _replayers(ctx: Context, source_name: str) -> dict[str, dict[str, Any]]:
    """This source's replay stages, from the fleet registry: running follow replayers,
    and in-apply replays whose job spec is still in their workdir."""
    from mactl.capture import fleet

    found = {}
    for key, value in fleet.read_registry(ctx.workdir, source_name).items():
        if not key.startswith("replayer:") or not value:
            continue
        running = fleet.is_mactl_process(fleet.read_pid(Path(value["pidFile"])) or -1)
        if value.get("follow") and value.get("kubernetes"):
            from mactl.executors.kubernetes_replay import job_running

            running = job_running(key.split(":", 1)[1], value)
        if running or (not value.get("follow") and Path(value.get("specFile", "")).is_file()):
            found[key.split(":", 1)[1]] = value
    return found


def _in_sync(address: str, entry: dict[str, Any]) -> bool:
    """A follow replayer's own word (its status file), or for a Kubernetes Job the lag of its
    consumer group, measured now."""
    if entry.get("kubernetes"):
        from mactl.executors.kubernetes_replay import group_lag

        return group_lag(entry)[0] < float(entry.get("maxLagSeconds") or 5.0)
    return bool(_status(entry).get("inSync"))


def _status(entry: dict[str, Any]) -> dict[str, Any]:
    """The replayer's status, from the file the replay stage recorded (`statusFile`, as in
    its outputs). A registry written before it recorded one: the file in its stage folder."""
    from mactl.state.workdir import StageFiles

    path = entry.get("statusFile") or StageFiles(Path(entry["pidFile"]).parent).replayer_status
    try:
        status: dict[str, Any] = json.loads(Path(path).read_text())
        return status
    except (OSError, ValueError):
        return {}
