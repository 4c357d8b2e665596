"""`devpulse ai` (devices, and the before-load check) and `devpulse models` (the catalog)."""

from __future__ import annotations

import json
from typing import Any

import click

from devpulse.commands.inputs import MAX_TOKENS
from devpulse.core.exitcodes import ExitCode
from devpulse.plugins.preflight.catalog import BITS_PER_WEIGHT, WORKLOADS
from devpulse.plugins.preflight.estimator import (
    ModelUnknown,
    estimate,
    kv_cache_bytes,
    llama_fit_params,
)
from devpulse.plugins.preflight.memory import Memory
from devpulse.plugins.preflight.servers import routed_backend

EXIT = {"fits": ExitCode.OK, "tight": ExitCode.TIGHT, "no_fit": ExitCode.NO_FIT}
MIB = 1024 * 1024


def ai_command(memory: Memory) -> click.Command:
    @click.command("ai")
    @click.option(
        "--before-load",
        "spec",
        metavar="MB|MODEL|FILE.gguf",
        help="Check whether this model would fit in memory now.",
    )
    @click.option(
        "--ctx", "ctx_len", type=click.IntRange(1, MAX_TOKENS), help="Context length to plan for."
    )
    @click.option("--json", "as_json", is_flag=True, help="Print JSON.")
    @click.pass_context
    def ai(click_ctx: click.Context, spec: str | None, ctx_len: int | None, as_json: bool) -> None:
        """Local AI memory: devices and loaded models, or a before-load check.

        Exit codes: 0 shown, or with --before-load the model fits; 10 tight (fits only in
        the safety margin or after unloading idle models); 20 does not fit; 2 usage or
        config error (a model nobody can describe, an empty name, a size not above 0).
        """
        if spec is None:
            if ctx_len is not None:
                raise click.UsageError("--ctx goes with --before-load: it sizes that model")
            _show_devices(memory, as_json)
            return
        if not spec.strip():
            raise click.UsageError(
                "--before-load: give a size in MB above 0, a model name or a FILE.gguf"
            )
        # As the router's preflight judges it: a model a route names is looked up on that
        # route's backend (a single-model llama-server answers any name with its model), and
        # one its server already holds fits, its own memory never counted as reclaimable.
        backend = routed_backend(memory.config, spec)
        try:
            est = memory.estimate_for(spec, ctx_len, backend=backend)
        except ModelUnknown as exc:
            raise click.UsageError(str(exc)) from None
        served_by = est.details.get("served_by")
        backend = backend or (served_by if isinstance(served_by, str) else None)
        verdict = memory.judge(est.need_mb, backend=backend, model=spec)
        payload = {"status": "ok", **verdict.as_dict(), "estimate": est.as_dict()}
        cross = llama_fit_params(spec, est.ctx)
        if cross is not None:
            payload["llama_fit_params"] = cross
        if as_json:
            click.echo(json.dumps(payload))
        else:
            click.echo(f"{verdict.verdict}: {verdict.reasons[0]}")
            for reason in verdict.reasons[1:]:
                click.echo(f"  {reason}")
            parts = est.as_dict()
            if est.source == "architecture":
                click.echo(
                    f"  need {est.need_mb} MB at ctx {est.ctx} = weights "
                    f"{parts['weights_mb']} + KV {parts['kv_cache_mb']} + compute "
                    f"{parts['compute_mb']} + runtime {parts['overhead_mb']}"
                )
        click_ctx.exit(int(EXIT[verdict.verdict]))

    return ai


def _show_devices(memory: Memory, as_json: bool) -> None:
    devices = memory.devices(fresh=True)
    loaded, notes = memory.loaded()
    if as_json:
        click.echo(
            json.dumps(
                {
                    "status": "ok",
                    "devices": [d.as_dict() for d in devices],
                    "target": memory.target().device,
                    "loaded": [m.as_dict() for m in loaded],
                    "notes": notes,
                }
            )
        )
        return
    for d in devices:
        click.echo(f"{d.device}: {d.free_mb} MB free of {d.total_mb} MB, budget {d.budget_mb} MB")
        for note in d.notes:
            click.echo(f"  {note}")
        for proc in d.processes:  # NVML's compute processes: who holds the GPU
            used = proc.get("used_mb")
            click.echo(f"  pid {proc.get('pid')}: {'?' if used is None else used} MB")
    click.echo(f"models load on: {memory.target().device}")
    for m in loaded:
        held = "" if m.unloadable else " (single-model server: loaded while it runs)"
        click.echo(f"loaded: {m.backend}/{m.model} {m.size_mb} MB{held}")
    for note in notes:
        click.echo(f"note: {note}")


def models_command(memory: Memory) -> click.Command:
    @click.command("models")
    @click.option(
        "--ctx", type=click.IntRange(1, MAX_TOKENS), help="Context length for the fit check."
    )
    @click.option("--json", "as_json", is_flag=True, help="Print JSON.")
    def models(ctx: int | None, as_json: bool) -> None:
        """Open models per workload: weights per quantization, KV per 1k tokens, fits now?

        Exit codes: 0 shown, 2 usage or config error.
        """
        ctx = ctx or memory.config.preflight.default_ctx
        overhead = memory.config.preflight.runtime_overhead_mb
        rows: list[dict[str, Any]] = []
        for workload, (label, entries) in WORKLOADS.items():
            for m in entries:
                quants = {}
                for quant in BITS_PER_WEIGHT:
                    arch = m.architecture(quant)
                    est = estimate(
                        arch,
                        ctx,
                        cache_type=memory.config.preflight.kv_cache_type,
                        overhead_mb=overhead,
                        gpu=memory.target().kind == "nvidia",
                    )
                    quants[quant] = {
                        "weights_mb": round(est.weights_mb),
                        "need_mb": est.need_mb,
                        "fits_now": memory.judge(est.need_mb, with_reclaimable=False).verdict,
                    }
                kv_1k = (
                    kv_cache_bytes(
                        m.architecture("F16"), 1024, memory.config.preflight.kv_cache_type
                    )
                    / MIB
                )
                rows.append(
                    {
                        "workload": workload,
                        "workload_label": label,
                        "model": m.name,
                        "ollama": m.ollama,
                        "params_b": m.params_b,
                        "kv_mb_per_1k_tokens": round(kv_1k, 1),
                        "ctx": ctx,
                        "quantizations": quants,
                    }
                )
        if as_json:
            click.echo(
                json.dumps({"status": "ok", "device": memory.target().device, "models": rows})
            )
            return
        click.echo(f"fit checks on {memory.target().device} at ctx {ctx}")
        for r in rows:
            q = r["quantizations"]
            cells = "  ".join(
                f"{k} {v['weights_mb'] / 1024:.1f} GB ({v['fits_now']})" for k, v in q.items()
            )
            click.echo(
                f"{r['workload']:<18} {r['model']:<30} KV {r['kv_mb_per_1k_tokens']:>6} "
                f"MB/1k  {cells}"
            )

    return models
