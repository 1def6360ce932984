"""Stand-in providers for the engine's tests ONLY (never shipped in the package).

Each stand-in keeps the real provider's `Inputs` and `replace_on` (so plans are the
real plans) but does no network work: it records every call as a JSON line in the
file named by the control document, and behaves as the control document says. The
control document is a JSON file named by `MACTL_STANDIN_CONTROL`, re-read on every
call so a test can change it between runs:

    {"calls": "/tmp/x/calls.jsonl",
     "fail": {"ADDR": "message"},           # apply raises ProviderError(message)
     "fail_rollback": {"ADDR": "message"},
     "rollback_sleep": {"ADDR": seconds},   # rollback works this long (a kill can land in it)
     "sleep": {"ADDR": seconds},            # apply works this long, reporting progress
     "checkpoint": ["ADDR"],                # checkpoints {"done": n} every step while sleeping
     "ignore_cancel": ["ADDR"],             # keeps working after ctx.cancelled is set
     "read": {"ADDR": {...} | null},        # what refresh reads (default: what the state says)
     "outputs": {"ADDR": {...}},            # merged into what apply returns
     "preflight": {"ADDR": ["problem"]},    # what the preflight hook reports (default: nothing)
     "log_secret": "text",                  # ctx.log()s this text (masking tests)
     "instances": {"ADDR": {"key": "digest"}}}  # what plan_instances says; apply records it
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
import time
from pathlib import Path
from typing import Any

from mactl.providers import registry
from mactl.providers.base import BaseProvider, PreflightContext, Progress, StageContext

from mactl.errors import ProviderError

_write_lock = threading.Lock()


def control() -> dict[str, Any]:
    path = os.environ.get("MACTL_STANDIN_CONTROL")
    if not path or not Path(path).is_file():
        return {}
    return json.loads(Path(path).read_text())


def _record(op: str, ctx: StageContext, **extra: Any) -> None:
    calls = control().get("calls")
    if not calls:
        return
    line = {"op": op, "address": ctx.address, "pid": os.getpid(), "t": time.time(), **extra}
    with _write_lock, open(calls, "a") as file:
        file.write(json.dumps(line) + "\n")
        file.flush()
        os.fsync(file.fileno())


def _record_preflight(ctx: PreflightContext) -> None:
    calls = control().get("calls")
    if calls:
        line = {"op": "preflight", "address": ctx.address, "redone": sorted(ctx.redone), "t": time.time()}
        with _write_lock, open(calls, "a") as file:
            file.write(json.dumps(line) + "\n")


class StandinProvider(BaseProvider):
    available = True

    def apply(self, ctx: StageContext) -> dict[str, Any]:
        c = control()
        _record("apply", ctx, checkpoint=ctx.checkpoint_data, prior=ctx.prior_outputs is not None)
        if c.get("log_secret"):
            ctx.log(f"connecting with {c['log_secret']}")
        seconds = float(c.get("sleep", {}).get(ctx.address, 0))
        start = int((ctx.checkpoint_data or {}).get("done", 0))
        steps = max(1, round(seconds / 0.05)) if seconds else 0
        for i in range(start, steps):
            if ctx.cancelled.is_set() and ctx.address not in c.get("ignore_cancel", []):
                break
            time.sleep(0.05)
            ctx.progress(Progress(done=(i + 1) * 10, total=steps * 10, unit="docs"))
            if ctx.address in c.get("checkpoint", []):
                ctx.checkpoint({"done": i + 1})
        if ctx.address in c.get("fail", {}):
            raise ProviderError(c["fail"][ctx.address])
        _record("applied", ctx, scope=None if ctx.instances is None else dict(ctx.instances))
        outputs = {
            "applied": ctx.address,
            "upstream": sorted(ctx.upstream),
            "resumed_from": (ctx.checkpoint_data or {}).get("done"),
            **c.get("outputs", {}).get(ctx.address, {}),
        }
        wanted = c.get("instances", {}).get(ctx.address)
        if wanted is not None:
            outputs["instances"] = _instances_after(ctx, wanted)
        return outputs

    def plan_instances(self, ctx: StageContext) -> dict[str, str] | None:
        found = control().get("instances", {}).get(ctx.address)
        return dict(found) if found is not None else None

    def preflight(self, inputs: Any, ctx: PreflightContext) -> list[str]:
        _record_preflight(ctx)
        return list(control().get("preflight", {}).get(ctx.address, []))

    def rollback(self, ctx: StageContext) -> None:
        c = control()
        auth = getattr(getattr(ctx.inputs, "target", None), "auth", None)
        password = auth.password.get_secret_value() if auth is not None and auth.password is not None else None
        _record(
            "rollback",
            ctx,
            password_is_real=password not in (None, "(sensitive)"),
            password_sha256=hashlib.sha256(password.encode()).hexdigest() if password else None,
        )
        seconds = float(c.get("rollback_sleep", {}).get(ctx.address, 0))
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline and not ctx.cancelled.is_set():
            time.sleep(0.05)
        if ctx.address in c.get("fail_rollback", {}):
            raise ProviderError(c["fail_rollback"][ctx.address])

    def read(self, ctx: StageContext) -> dict[str, Any] | None:
        c = control()
        _record("read", ctx)
        reads = c.get("read", {})
        if ctx.address in reads:
            return reads[ctx.address]
        return dict(ctx.prior_outputs) if ctx.prior_outputs is not None else None


def _instances_after(ctx: StageContext, wanted: dict[str, str]) -> dict[str, Any]:
    """The instances a real provider would record: all of them, or the prior ones with the scope redone."""
    if ctx.instances is None:
        return {k: {"digest": d, "status": "complete"} for k, d in wanted.items()}
    found = dict((ctx.prior_outputs or {}).get("instances") or {})
    for key, action in ctx.instances.items():
        if action == "rollback":
            found.pop(key, None)
        else:
            found[key] = {"digest": wanted[key], "status": "complete"}
    return found


def _make(stage_type: str) -> type[StandinProvider]:
    real = registry._load(registry.BUILTIN[stage_type])
    return type(
        f"Standin_{stage_type}",
        (StandinProvider,),
        {
            "type": stage_type,
            "Inputs": real.Inputs,
            "replace_on": real.replace_on,
            "instance_fields": real.instance_fields,
            "__module__": __name__,
        },
    )


_REAL_BUILTIN = dict(registry.BUILTIN)
STANDINS: dict[str, type[StandinProvider]] = {t: _make(t) for t in _REAL_BUILTIN}
for _cls in STANDINS.values():
    globals()[_cls.__name__] = _cls


def targets() -> dict[str, str]:
    """BUILTIN entries pointing at the stand-ins."""
    return {t: f"{__name__}:{cls.__name__}" for t, cls in STANDINS.items()}


def install_globally() -> None:
    """For a subprocess: point every built-in stage type at its stand-in."""
    registry.BUILTIN.update(targets())
    registry.get_provider.cache_clear()
