"""Replay stage: replays captured traffic onto a target from the snapshot's start point.

Start point: the `capture_position` an upstream snapshot stage recorded when it began
(writes before it are in the snapshot, writes after it are replayed); `startPosition`
overrides it; without a snapshot position among the direct dependencies, the capture
stage's start position (earlier, so nothing is missed); with none of these, the whole
log is replayed and a warning says so.

`follow: false` (default): the replayer runs inside `mactl apply` and the stage is done
once the exit criteria hold (lag under `maxLagSeconds` for `lagWindowSeconds` with no
status mismatch); after `timeoutSeconds` without that, the stage fails (offsets stay
committed, so a rerun resumes). `follow: true`: a detached `mactl replay run --follow`
process is started (PID file in the workdir), the stage completes once that process
reports in sync, and the process keeps replaying until switchover/teardown or rollback.

Auth: none and basic as for every stage; for a `sigv4` target the replayer signs each
request with AWS SigV4 (credentials from the default AWS chain of the process that runs
it; `auth.region` and `auth.service` from the config).

`executor: {type: kubernetes}` (a kafka log only): the replayers are the pods of an
Indexed Job sharing the stage's consumer group; apply sets the group's start offsets,
judges the exit criteria itself (lag from the group's committed offsets, status matches
from the pods' status documents on the target: `mactl.executors.kubernetes_replay`), and
deletes the Job once in sync, or with `follow: true` leaves it to switchover/teardown.

Rollback stops a follow replayer (or deletes the Job) and forgets the committed offsets,
so a redo starts from the snapshot position again. Speed and throughput limits, and the
executor's `replicas`, update in place; a new log or transform replaces.
"""

from __future__ import annotations

import json
import os
import re
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from mactl.providers.base import BaseProvider, Fact, PreflightContext, Progress, StageContext
from mactl.providers.capture import resolved_log
from mactl.state.workdir import StageFiles

from mactl.capture.spec import PASSWORD_ENV, ReplaySpec
from mactl.errors import ProviderError
from mactl.schema.executor import KubernetesExecutor
from mactl.schema.replay import ReplayInputs

Context = StageContext[ReplayInputs]


def group_name(address: str) -> str:
    """The consumer group of one replay stage: its offsets are its own."""
    return "mactl-replay-" + re.sub(r"[^A-Za-z0-9_.-]+", "-", address)


def find_start_position(ctx: Context) -> dict[str, Any] | None:
    """The start point recorded by an upstream snapshot stage, normalised.

    Accepts `capture_position` or `capturePosition`, holding either a log position
    (`{"kind": "file"|"kafka", "offsets": ...}`), one wrapped as `{"position": {...}}`,
    or only a time (`{"kind": "time", "time": ...}`: replay records captured from then).
    `startPosition` in the inputs overrides all of them.
    """
    inputs = ctx.inputs
    if inputs.startPosition is not None:
        return _normalise(inputs.startPosition)
    recorded = [
        _normalise(dict(pos))
        for outputs in ctx.upstream.values()
        if outputs and (pos := outputs.get("capture_position") or outputs.get("capturePosition"))
    ]
    if recorded:
        return _earliest(recorded)
    # Without a snapshot position (an imported snapshot records none), the capture
    # stage's own start position is earlier still, so nothing is missed, and replaying
    # the extra writes is idempotent for writes by `_id`.
    for outputs in ctx.upstream_of_type("capture"):
        if outputs and isinstance(outputs.get("position"), dict) and "offsets" in outputs["position"]:
            return {**outputs["position"], "from": "capture start"}
    return None


def _earliest(positions: list[dict[str, Any]]) -> dict[str, Any]:
    """The position to start from when several snapshots of the source recorded one.

    Writes after the EARLIEST snapshot began may be missing from that snapshot, so replay
    starts there: per partition the smallest offset; for time-only positions the earliest
    time. Later snapshots simply see some writes twice, which is idempotent by `_id`.
    """
    if len(positions) == 1:
        return positions[0]
    with_offsets = [p for p in positions if "offsets" in p]
    if len(with_offsets) == len(positions):
        merged: dict[str, Any] = {**with_offsets[0], "offsets": {}}
        for pos in with_offsets:
            for partition, offset in pos["offsets"].items():
                current = merged["offsets"].get(partition)
                merged["offsets"][partition] = offset if current is None else min(current, offset)
        return merged
    if with_offsets:  # a mix: an offset position is exact, prefer the earliest of those
        return _earliest(with_offsets)
    return min(positions, key=lambda p: float(p.get("time") or 0))


def _normalise(pos: dict[str, Any]) -> dict[str, Any]:
    inner = pos.get("position")
    if isinstance(inner, dict) and "offsets" in inner:
        return {**inner, "recordedAt": pos.get("time")}
    return pos


def _start_time(position: dict[str, Any] | None) -> float | None:
    """For a time-only position: the epoch seconds from which records are replayed."""
    if not position or "offsets" in position or position.get("time") is None:
        return None
    value = position["time"]
    if isinstance(value, (int, float)):
        return float(value)
    from datetime import datetime

    return datetime.fromisoformat(str(value).replace("Z", "+00:00")).timestamp()


def _spec(ctx: Context, start: dict[str, int], resume: bool) -> ReplaySpec:
    """The replayer job spec (its JSON form leaves the target's password out)."""
    return ReplaySpec.from_inputs(
        ctx.inputs,
        log=resolved_log(ctx.inputs.log),
        group=group_name(ctx.address),
        start=start,
        resume=resume,
        workdir=ctx.workdir,
        config_dir=ctx.config_dir,
        start_time=_start_time(find_start_position(ctx)),
    )


class ReplayProvider(BaseProvider[ReplayInputs]):
    type = "replay"
    Inputs = ReplayInputs
    replace_on = frozenset({"source", "target", "log", "transforms"})
    available = True

    def validate(self, inputs: ReplayInputs) -> list[str]:
        problems = []
        if inputs.maxSpeedupFactor <= 0:
            problems.append("maxSpeedupFactor: must be greater than 0")
        if inputs.maxThroughputMbps is not None and inputs.maxThroughputMbps <= 0:
            problems.append("maxThroughputMbps: must be greater than 0")
        if inputs.maxLagSeconds <= 0 or inputs.lagWindowSeconds < 0:
            problems.append("maxLagSeconds must be > 0 and lagWindowSeconds >= 0")
        if inputs.target.auth.type == "sigv4" and not inputs.target.auth.region:
            # credentials are looked up when the replayer starts (default AWS chain)
            problems.append("target.auth.region: sigv4 auth needs the AWS region of the domain (e.g. us-east-1)")
        if inputs.workers < 1:
            problems.append("workers: at least 1")
        if isinstance(inputs.executor, KubernetesExecutor):
            problems += _kubernetes_problems(inputs)
        return problems

    def preflight(self, inputs: ReplayInputs, ctx: PreflightContext) -> list[str]:
        from mactl.providers.preflight import cluster_problem, kubernetes_problems

        problem = cluster_problem(inputs.target, "target", ctx)
        problems = [problem] if problem else []
        if isinstance(inputs.executor, KubernetesExecutor):
            problems += kubernetes_problems(inputs.executor, ctx)
        return problems

    def apply(self, ctx: Context) -> dict[str, Any]:
        from mactl.capture.log import position_offsets

        inputs = ctx.inputs
        ctx.workdir.mkdir(parents=True, exist_ok=True)
        resume = bool(ctx.checkpoint_data and ctx.checkpoint_data.get("group")) or ctx.prior_outputs is not None
        position = find_start_position(ctx)
        if position is None:
            ctx.log(
                f"replay {ctx.address}: warning: no capture_position from an upstream snapshot stage; "
                "replaying the capture log from its beginning"
            )
            start: dict[str, int] = {}
        elif "offsets" in position:
            start = position_offsets(position)
        else:
            start = {}
            ctx.log(
                f"replay {ctx.address}: the snapshot recorded a time, not a log position: "
                "replaying records captured from that time on"
            )
        ctx.checkpoint({"group": group_name(ctx.address), "start": start})
        spec = _spec(ctx, start, resume)
        files = StageFiles(ctx.workdir)
        common = {
            "group": spec.group,
            "startPosition": position,
            "tuples": str(files.replay_tuples),
            "deadLetters": str(files.replay_dead_letters),
            "statusFile": str(files.replayer_status),
            "follow": inputs.follow,
        }
        _write_spec(files.replayer_spec, spec.model_copy(update={"resume": True}))
        from mactl.capture import fleet

        kubernetes = inputs.executor if isinstance(inputs.executor, KubernetesExecutor) else None
        job: dict[str, Any] = {}
        if kubernetes is not None:
            from mactl.executors.kubernetes_replay import registry_entry

            job = registry_entry(ctx.address, spec, kubernetes, ctx.config_dir)
        else:
            before = fleet.read_registry(ctx.workdir, inputs.source.name).get(f"replayer:{ctx.address}") or {}
            if before.get("kubernetes"):
                # The executor changed to local: the Job's pods must not replay beside this one.
                from mactl.executors.kubernetes_replay import delete_registered

                if delete_registered(ctx.address, before):
                    ctx.log(f"replay {ctx.address}: deleted the Kubernetes Job; the replayer runs locally now")
        # What the later stages of this source (switchover, teardown) need of this replay,
        # with the same paths as its outputs: they read them here, never rebuild them.
        fleet.update_registry(
            ctx.workdir,
            inputs.source.name,
            **{
                f"replayer:{ctx.address}": {
                    "pidFile": str(files.replayer_pid),
                    "specFile": str(files.replayer_spec),
                    "statusFile": common["statusFile"],
                    "follow": inputs.follow,
                    **job,
                }
            },
        )
        if kubernetes is not None:
            # The pods' tuples and dead letters are in a Kafka topic (`tuplesLog`), not files here.
            common.update(tuples=None, deadLetters=None)
            return {**common, **self._run_job(ctx, spec, kubernetes, start, resume)}
        if inputs.follow:
            return {**common, **self._follow(ctx, spec)}
        return {**common, **self._run_inline(ctx, spec)}

    def _run_inline(self, ctx: Context, spec: ReplaySpec) -> dict[str, Any]:
        from mactl.capture.replayer import Replayer, Status, options_from_spec

        inputs = ctx.inputs
        replayer = Replayer(spec.log, spec.group, options_from_spec(spec, ctx.workdir))

        def stop_when_cancelled() -> None:
            ctx.cancelled.wait()
            replayer.stop.set()

        watcher = threading.Thread(target=stop_when_cancelled, daemon=True)
        watcher.start()
        started = time.monotonic()

        def report(st: Status) -> None:
            rate = st.replayed / max(1e-6, time.monotonic() - started)
            ctx.progress(
                Progress(
                    done=st.replayed,
                    unit="requests",
                    message=f"{rate:.0f} req/s, lag {st.lag_s:.1f}s, mismatches {st.mismatches}, "
                    f"dead letters {st.dead_lettered}{', in sync' if st.in_sync else ''}",
                )
            )

        status = replayer.run(
            spec.start, resume=spec.resume, until_in_sync=True, timeout_s=inputs.timeoutSeconds, on_status=report
        )
        if not status.in_sync:
            why = "cancelled" if ctx.cancelled.is_set() else f"not in sync after {inputs.timeoutSeconds:.0f}s"
            raise ProviderError(
                f"replay {ctx.address}: {why} (lag {status.lag_s:.1f}s, {status.mismatches} status mismatches, "
                f"{status.target_4xx} target 4xx); see {StageFiles(ctx.workdir).replay_tuples}",
                hint="offsets are committed: re-apply resumes where it stopped",
            )
        report(status)
        return {"status": status.to_json(), "inSync": True}

    def _run_job(
        self, ctx: Context, spec: ReplaySpec, executor: KubernetesExecutor, start: dict[str, int], resume: bool
    ) -> dict[str, Any]:
        """The replayers as a Kubernetes Job: started, judged from outside, deleted once in
        sync (`follow: false`) or left running for switchover/teardown (`follow: true`)."""
        from mactl.capture import fleet
        from mactl.executors.kubernetes_replay import Look, ReplayJobRun, job_summary, status_of, tuples_log

        inputs = ctx.inputs
        files = StageFiles(ctx.workdir)
        # A local follow replayer of this stage (the executor changed): the pods take over.
        if fleet.stop(fleet.read_pid(files.replayer_pid)):
            ctx.log(f"replay {ctx.address}: stopped the local follow replayer; the Job's pods take over")
        run = ReplayJobRun(ctx.address, spec, executor, ctx.config_dir, ctx.log)

        def report(seen: Look) -> None:
            totals = seen.totals()
            ctx.progress(
                Progress(
                    done=totals["replayed"],
                    unit="requests",
                    message=f"{seen.fresh}/{executor.replicas} pods, lag {seen.lag_s:.1f}s, "
                    f"{seen.behind} records behind, mismatches {totals['mismatches']}, "
                    f"dead letters {totals['deadLettered']}",
                )
            )

        run.start(start, resume)
        try:
            seen = run.wait_in_sync(inputs.timeoutSeconds, ctx.cancelled, report)
        except BaseException:
            if not inputs.follow:
                run.delete()
                ctx.log(f"replay {ctx.address}: deleted the Job; offsets stay committed, a re-apply resumes")
            raise
        if not inputs.follow:
            run.delete()
            ctx.log(f"replay {ctx.address}: in sync; deleted Job {run.objects.namespace}/{run.objects.name}")
            seen = run.final_look(seen)
            run.board.delete()
        status = status_of(seen, in_sync=True)
        _write_json(files.replayer_status, status)
        report(seen)
        return {
            "status": status,
            "inSync": True,
            "job": job_summary(ctx.address, executor),
            "statusIndex": run.board.index if inputs.follow else None,
            # the pods' request tuples and dead letters (keys `tuple`, `dead`): validate reads them
            "tuplesLog": tuples_log(spec.log, ctx.address),
        }

    def _follow(self, ctx: Context, spec: ReplaySpec) -> dict[str, Any]:
        from mactl.capture import fleet

        inputs = ctx.inputs
        files = StageFiles(ctx.workdir)
        pid_file = files.replayer_pid
        pid = fleet.read_pid(pid_file)
        status_file = files.replayer_status
        if pid is None or not fleet.is_mactl_process(pid):
            spec_file = files.replayer_follow_spec
            _write_spec(spec_file, spec)
            status_file.unlink(missing_ok=True)
            password = spec.password()
            fleet.spawn(
                ["replay", "run", "--spec", str(spec_file), "--follow", "--pid-file", str(pid_file)],
                files.replayer_log,
                env={PASSWORD_ENV: password} if password else None,
            )
            deadline = time.monotonic() + 30
            while (pid := fleet.read_pid(pid_file)) is None and time.monotonic() < deadline:
                time.sleep(0.05)
            if pid is None:
                raise ProviderError(f"replay {ctx.address}: replayer did not start: {fleet.tail(files.replayer_log)}")
        deadline = time.monotonic() + inputs.timeoutSeconds
        while True:
            st = _read_status(status_file)
            if st.get("inSync"):
                ctx.progress(Progress(done=st.get("replayed", 0), unit="requests", message="in sync (following)"))
                return {"pid": pid, "pidFile": str(pid_file), "status": st, "inSync": True}
            if not fleet.is_mactl_process(pid):
                raise ProviderError(f"replay {ctx.address}: replayer exited: {fleet.tail(files.replayer_log)}")
            if time.monotonic() >= deadline or ctx.cancelled.is_set():
                raise ProviderError(
                    f"replay {ctx.address}: follow replayer not in sync after {inputs.timeoutSeconds:.0f}s "
                    f"(lag {st.get('lagSeconds')}s, mismatches {st.get('mismatches')}); it keeps running (pid {pid})"
                )
            ctx.progress(
                Progress(
                    done=st.get("replayed", 0),
                    unit="requests",
                    message=f"lag {st.get('lagSeconds', '?')}s, mismatches {st.get('mismatches', 0)}",
                )
            )
            time.sleep(0.5)

    def rollback(self, ctx: Context) -> None:
        from mactl.capture import fleet
        from mactl.capture import log as capture_log

        inputs = ctx.inputs
        stopped = fleet.stop(fleet.read_pid(StageFiles(ctx.workdir).replayer_pid))
        if isinstance(inputs.executor, KubernetesExecutor):
            # The pods first: none may commit after the group's offsets are forgotten.
            from mactl.executors.kubernetes_replay import forget_group, undo_job

            stopped = (
                undo_job(ctx.address, inputs.target, resolved_log(inputs.log), inputs.executor, ctx.config_dir)
                or stopped
            )
            forget_group(resolved_log(inputs.log), group_name(ctx.address))
        else:
            capture_log.delete_group(resolved_log(inputs.log), group_name(ctx.address))
        ctx.log(f"replay {ctx.address}: {'stopped the replayer; ' if stopped else ''}committed offsets forgotten")

    def read(self, ctx: Context) -> dict[str, Any] | None:
        from mactl.capture import fleet

        if ctx.prior_outputs is None:
            return None
        out = dict(ctx.prior_outputs)
        files = StageFiles(ctx.workdir)
        st = _read_status(files.replayer_status)
        if st:
            out["status"] = st
        if out.get("follow") and out.get("job"):
            from mactl.executors.kubernetes_replay import job_running

            try:
                out["running"] = job_running(ctx.address, {"kubernetes": ctx.inputs.executor, **_config_dir(ctx)})
            except Exception:  # noqa: BLE001 - the cluster out of reach: not known, not an error here
                out["running"] = None
        elif out.get("follow"):
            out["running"] = fleet.is_mactl_process(fleet.read_pid(files.replayer_pid) or -1)
        return out

    def facts(self, outputs: Mapping[str, Any]) -> dict[str, Fact]:
        """None: the replayer's status, lag and counters change by themselves, and a follow
        replayer is stopped on purpose by switchover and teardown. `status` shows them."""
        return {}


def _kubernetes_problems(inputs: ReplayInputs) -> list[str]:
    """What a Job's pods cannot reach that a local replayer can: a capture log on this host's
    disk, and template files beside the config."""
    problems: list[str] = []
    if inputs.log.type != "kafka":
        problems.append(f"executor: a Kubernetes replayer needs a kafka capture log; log.type is {inputs.log.type}")
    for i, transform in enumerate(inputs.transforms):
        if transform.file:
            problems.append(
                f"transforms[{i}]: a template file ({transform.file}) is not in the replayer pods; "
                "with executor kubernetes write the template inline"
            )
    return problems


def _config_dir(ctx: Context) -> dict[str, Any]:
    return {"configDir": str(ctx.config_dir)} if ctx.config_dir is not None else {}


def _write_json(path: Path, data: Mapping[str, Any]) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data))
    tmp.replace(path)


def _write_spec(path: Path, spec: ReplaySpec) -> None:
    """The job spec, owner-only; it never holds the target's password (`ReplaySpec.to_json`)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        json.dump(spec.to_json(), fh)


def _read_status(path: Path) -> dict[str, Any]:
    try:
        status: dict[str, Any] = json.loads(path.read_text())
        return status
    except (OSError, ValueError):
        return {}
