"""`llmctl plan`: how big, how many tokens, will it fit, how long, before a GPU is rented.

llmctl plan budget --flops 5.76e23
llmctl plan memory recipes/pretrain/llama-7b-tp2-pp2.yaml --gpus 64 --gpu-memory 80GB --search
llmctl plan time recipes/pretrain/llama-1b.yaml --gpus 8 --gpu h100 --mfu 0.4
llmctl plan fit runs/a runs/b runs/c runs/d runs/e --flops 1e21 --plot fit.png

The arithmetic is `llmctl.plan`; this module parses options and prints rich tables or --json.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from llmctl.cli.common import SetOpt, guard

app = typer.Typer(
    help="Scaling laws, per-GPU memory, training time and loss fits, before a GPU is rented.\n\n"
    "Example: llmctl plan time recipes/pretrain/llama-1b.yaml --gpus 8 --gpu h100 --mfu 0.4",
    no_args_is_help=True,
    context_settings={"help_option_names": ["-h", "--help"]},
)

JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON on stdout instead of tables.")]
PlotOpt = Annotated[Path | None, typer.Option("--plot", help="Write a PNG here.", show_default="none")]
WriteOpt = Annotated[
    Path | None,
    typer.Option(
        "--write-recipe",
        help="Write the answer as a pretrain recipe (YAML); budget with --law all writes chinchilla's, "
        "memory --search the best layout's.",
        show_default="none",
    ),
]
RecipeArg = Annotated[
    Path, typer.Argument(help="A pretrain recipe (recipes/pretrain/NAME.yaml).", show_default=False)
]
GpusOpt = Annotated[int | None, typer.Option("--gpus", help="GPUs in all.", show_default="recipe nproc")]
GpuOpt = Annotated[
    str, typer.Option("--gpu", help="GPU type: h100, h200, a100, a100-40gb, l40s, a10, rtx4090.")
]
MfuOpt = Annotated[float, typer.Option("--mfu", help="Assumed model FLOPs utilisation.")]
VocabOpt = Annotated[
    int, typer.Option("--vocab-size", help="Vocabulary size (recipes leave it to the tokenizer).")
]


def _command() -> str:
    return "llmctl plan " + " ".join(sys.argv[2:] if sys.argv[1:2] == ["plan"] else sys.argv[1:])


def _emit(data: Any, as_json: bool, table: Any) -> None:
    from llmctl.console import out

    if as_json:
        print(json.dumps(data, indent=2))
    else:
        out.print(table)


def _table(title: str, columns: list[str], rows: list[list[str]]):
    from rich.table import Table

    t = Table(title=title, title_justify="left")
    for i, c in enumerate(columns):
        t.add_column(c, justify="left" if i == 0 else "right")
    for r in rows:
        t.add_row(*r)
    return t


def _gb(x: float) -> str:
    return f"{x / 1e9:,.2f}"


@app.command("budget")
@guard
def budget(
    flops: Annotated[float | None, typer.Option("--flops", help="Training budget C in FLOPs.")] = None,
    gpu_hours: Annotated[
        float | None, typer.Option("--gpu-hours", help="Budget in GPU-hours (with --gpu, --mfu).")
    ] = None,
    gpu: GpuOpt = "h100",
    mfu: MfuOpt = 0.4,
    law: Annotated[
        str, typer.Option("--law", help="chinchilla, chinchilla-fit, besiroglu, kaplan, or all.")
    ] = "all",
    params: Annotated[float | None, typer.Option("--params", help="Fix N; D follows.")] = None,
    tokens: Annotated[float | None, typer.Option("--tokens", help="Fix D; N follows.")] = None,
    vocab_size: VocabOpt = 32000,
    seq_length: Annotated[
        int, typer.Option("--seq-length", help="Sequence length of --write-recipe.")
    ] = 2048,
    global_batch: Annotated[
        int, typer.Option("--global-batch", help="Sequences per step of --write-recipe.")
    ] = 512,
    write_recipe: WriteOpt = None,
    plot: PlotOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Compute-optimal parameters N and tokens D (C = 6ND) and the predicted loss, every law side by side.

    Example: llmctl plan budget --flops 5.76e23   (Gopher's budget);
    llmctl plan budget --gpu-hours 100000 --gpu h100 --mfu 0.4 --law besiroglu --write-recipe r.yaml"""
    from llmctl.errors import UserError
    from llmctl.plan import laws, timing

    if flops is not None and gpu_hours is not None:
        raise UserError("give --flops or --gpu-hours, not both")
    if gpu_hours is not None:
        flops = timing.flops_from_gpu_hours(gpu_hours, gpu, mfu)
    names = list(laws.LAWS) if law == "all" else [laws.check_law(law)]
    answers = [laws.optimum(n, flops, params, tokens) for n in names]
    if write_recipe is not None:
        from llmctl.plan import runs

        chosen = answers[0] if law != "all" else laws.optimum("chinchilla", flops, params, tokens)
        tree = runs.budget_recipe(chosen.params, chosen.tokens, vocab_size, seq_length, global_batch)
        runs.write_recipe(
            write_recipe,
            tree,
            _command(),
            f"{chosen.law}: N ~ {chosen.params:.3g} parameters, D ~ {chosen.tokens:.3g} tokens",
        )
    if plot is not None:
        from llmctl.plan import plots

        shown = law if law in laws.PARAMETRIC else "chinchilla-fit"
        plots.budget(plot, laws.PARAMETRIC[shown], shown, answers[0].flops, answers)
    rows = [
        [
            a.law,
            f"{a.params:.3g}",
            f"{a.tokens:.3g}",
            f"{a.tokens_per_param:.3g}",
            f"{a.flops:.3g}",
            "-" if a.loss is None else f"{a.loss:.3f}",
            a.loss_note,
        ]
        for a in answers
    ]
    table = _table(
        "compute-optimal size and tokens",
        ["law", "N params", "D tokens", "D/N", "FLOPs", "loss", "loss from"],
        rows,
    )
    _emit(
        {"answers": [a.to_dict() for a in answers], "recipe": str(write_recipe) if write_recipe else None},
        as_json,
        table,
    )


def _memory_rows(e: Any) -> list[list[str]]:
    return [
        [name, _gb(v)]
        for name, v in (
            ("weights", e.weights),
            ("gradients", e.grads),
            ("optimizer states", e.optimizer),
            (f"activations ({e.in_flight} micro-batch(es) in flight)", e.activations),
            ("fp32 logits (last stage)", e.logits),
            ("total", e.total),
        )
    ]


@app.command("memory")
@guard
def memory(
    recipe: RecipeArg,
    gpus: GpusOpt = None,
    gpu_memory: Annotated[
        str, typer.Option("--gpu-memory", help="Memory per GPU: 80GB, 141GB, 80GiB.")
    ] = "80GB",
    tp: Annotated[
        int | None, typer.Option("--tp", help="Tensor-parallel size.", show_default="recipe")
    ] = None,
    pp: Annotated[
        int | None, typer.Option("--pp", help="Pipeline-parallel size.", show_default="recipe")
    ] = None,
    micro_batch: Annotated[
        int | None, typer.Option("--micro-batch", help="Sequences per micro-batch.", show_default="recipe")
    ] = None,
    recompute: Annotated[
        str, typer.Option("--recompute", help="Activations: none, selective, full.")
    ] = "none",
    sequence_parallel: Annotated[
        bool | None,
        typer.Option(
            "--sequence-parallel/--no-sequence-parallel",
            help="Shard activations along the sequence.",
            show_default="recipe",
        ),
    ] = None,
    distributed_optimizer: Annotated[
        bool | None,
        typer.Option(
            "--distributed-optimizer/--no-distributed-optimizer", help="ZeRO-1.", show_default="recipe"
        ),
    ] = None,
    precision: Annotated[
        str, typer.Option("--precision", help="bf16 (18 B/param), bf16-bf16grad (16), fp16 (20), fp32 (16).")
    ] = "bf16",
    fp32_activations: Annotated[
        bool, typer.Option("--fp32-activations", help="Activations in fp32 (a CPU run): twice the bytes.")
    ] = False,
    search: Annotated[
        bool, typer.Option("--search", help="List the TP/PP/DP layouts that fit, best first.")
    ] = False,
    gpus_per_node: Annotated[int, typer.Option("--gpus-per-node", help="TP stays within a node.")] = 8,
    vocab_size: VocabOpt = 32000,
    set_: SetOpt = None,
    write_recipe: WriteOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Per-GPU memory of a recipe's model at a TP/PP/DP layout, and the layouts that fit.

    Weights, gradients, optimizer states (with or without the distributed optimizer, ZeRO-1),
    activations per Korthikanti et al. 2022 (recomputation, sequence parallelism) and the pipeline's
    in-flight micro-batches, on the fullest GPU.

    Example: llmctl plan memory recipes/pretrain/llama-7b-tp2-pp2.yaml --gpus 64 --gpu-memory 80GB --search"""
    from llmctl.errors import UserError
    from llmctl.plan import memory as mem
    from llmctl.plan import runs

    cfg = runs.load_recipe(recipe, set_)
    model = runs.model_of(cfg, vocab_size)
    gpus = gpus or cfg.nproc
    par = cfg.parallel
    layout = runs.layout_of(
        cfg,
        gpus,
        tp or par.tensor,
        pp or par.pipeline,
        micro_batch or cfg.train.micro_batch_size,
        par.sequence_parallel if sequence_parallel is None else sequence_parallel,
        par.distributed_optimizer if distributed_optimizer is None else distributed_optimizer,
        recompute,
        precision,
    )
    t, p = layout.tp, layout.pp
    budget_bytes = mem.parse_bytes(gpu_memory)
    e = mem.estimate(model, layout, fp32_activations)
    data: dict[str, Any] = {
        "params": model.params(),
        "gpu_memory": budget_bytes,
        "estimate": e.to_dict(),
        "fits": e.total <= budget_bytes,
    }
    tables = [
        _table(
            f"{recipe.name}: {model.params():,} params, TP{t} PP{p} DP{layout.dp}, stage {e.stage}, "
            f"GB per GPU (of {_gb(budget_bytes)})",
            ["", "GB"],
            _memory_rows(e),
        )
    ]
    chosen = layout if e.total <= budget_bytes else None
    if search:
        found = mem.search(model, gpus, layout, budget_bytes, gpus_per_node, fp32_activations)
        data["search"] = [{**f.to_dict(), "relative_throughput": s} for f, s in found]
        tables.append(
            _table(
                f"layouts of {gpus} GPUs that fit, best first",
                ["TP x PP x DP", "recompute", "micro-batches", "bubble", "rel. throughput", "GB per GPU"],
                [
                    [
                        f"{f.layout.tp} x {f.layout.pp} x {f.layout.dp}",
                        f.layout.recompute,
                        str(f.layout.micro_batches),
                        f"{f.layout.bubble:.3f}",
                        f"{s:.3f}",
                        _gb(f.total),
                    ]
                    for f, s in found
                ],
            )
        )
        chosen = found[0][0].layout if found else None
    if write_recipe is not None:
        if chosen is None:
            raise UserError(f"--write-recipe {write_recipe}: no layout fits {gpu_memory} per GPU")
        runs.write_recipe(
            write_recipe,
            runs.layout_recipe(cfg, chosen, gpus),
            _command(),
            f"{recipe.name} at TP{chosen.tp} PP{chosen.pp} DP{chosen.dp} "
            f"(recompute: {chosen.recompute}, not a recipe key)",
        )
        data["recipe"] = str(write_recipe)
    if as_json:
        print(json.dumps(data, indent=2))
    else:
        from llmctl.console import out

        for table in tables:
            out.print(table)
        out.print("fits" if data["fits"] else "[red]does not fit[/red]")


@app.command("time")
@guard
def time_(
    recipe: RecipeArg,
    gpus: GpusOpt = None,
    gpu: GpuOpt = "h100",
    mfu: MfuOpt = 0.4,
    measured: Annotated[
        Path | None,
        typer.Option(
            "--measured",
            help="A pretrain artifact: use the tokens/s it recorded instead of --mfu.",
            show_default="none",
        ),
    ] = None,
    vocab_size: VocabOpt = 32000,
    set_: SetOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Wall-clock time and GPU-hours of a recipe's tokens (steps x global batch x sequence length).

    Example: llmctl plan time recipes/pretrain/llama-1b.yaml --gpus 8 --gpu h100 --mfu 0.4;
    llmctl plan time recipes/pretrain/tiny.yaml --measured runs/demo/pretrain"""
    from llmctl.plan import runs, timing

    cfg = runs.load_recipe(recipe, set_)
    model = runs.model_of(cfg, vocab_size)
    gpus = gpus or cfg.nproc
    tokens = runs.recipe_tokens(cfg)
    if measured is not None:
        run = runs.read_run(measured)
        t = timing.measured(
            tokens,
            model.flops_per_token(),
            gpus,
            run.tokens_per_s,
            run.flops_per_token,
            run.devices,
            str(measured),
        )
    else:
        t = timing.estimate(tokens, model.flops_per_token(), gpus, gpu, mfu)
    d = t.to_dict()
    rows = [
        ["tokens", f"{tokens:.4g}"],
        ["FLOPs per token", f"{t.flops_per_token:.4g}"],
        ["training FLOPs", f"{d['flops']:.4g}"],
        ["FLOP/s per GPU", f"{t.flops_per_gpu:.4g}"],
        ["tokens/s", f"{t.tokens_per_s:,.0f}"],
        ["wall clock", _duration(t.seconds)],
        ["GPU-hours", f"{t.gpu_hours:,.3g}"],
    ]
    _emit(
        {**d, "params": model.params()},
        as_json,
        _table(f"{recipe.name} on {gpus} GPU(s): {t.source}", ["", ""], rows),
    )


def _duration(seconds: float) -> str:
    if seconds < 3600:
        return f"{seconds:,.1f} s"
    if seconds < 3 * 86400:
        return f"{seconds / 3600:,.2f} hours"
    return f"{seconds / 86400:,.2f} days"


@app.command("fit")
@guard
def fit_(
    artifacts: Annotated[
        list[Path], typer.Argument(help="Pretrain artifacts (5 or more, several sizes).", show_default=False)
    ],
    flops: Annotated[
        float | None,
        typer.Option("--flops", help="Extrapolate to this budget.", show_default="100 x largest run"),
    ] = None,
    grid: Annotated[
        str, typer.Option("--grid", help="Initialisations: coarse (72) or paper (4,500).")
    ] = "coarse",
    vocab_size: VocabOpt = 32000,
    seq_length: Annotated[
        int, typer.Option("--seq-length", help="Sequence length of --write-recipe.")
    ] = 2048,
    global_batch: Annotated[
        int, typer.Option("--global-batch", help="Sequences per step of --write-recipe.")
    ] = 512,
    plot: PlotOpt = None,
    write_recipe: WriteOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Fit L(N, D) = E + A/N^α + B/D^β to your pretrain runs and extrapolate the optimum.

    Huber loss (δ = 1e-3) on log L with L-BFGS from a grid of starts, as Hoffmann et al. 2022;
    N = metrics.parameters, D = steps x global batch x sequence length, L = metrics.valid_loss.

    Example: llmctl plan fit runs/pt-* --flops 1e21 --plot fit.png"""
    from llmctl.errors import UserError
    from llmctl.plan import fit, runs

    found = [runs.read_run(a) for a in artifacts]
    missing = [str(r.path) for r in found if r.loss is None]
    if missing:
        raise UserError(f"{missing[0]}: no validation loss recorded (metrics.valid_loss)")
    n, d, loss = [r.params for r in found], [r.tokens for r in found], [float(r.loss) for r in found]  # type: ignore[arg-type]
    result = fit.fit(n, d, loss, grid)
    from llmctl.console import warn

    for message in result.warnings:
        warn(message)
    c = flops or 100 * max(6 * a * b for a, b in zip(n, d, strict=True))
    n_opt, d_opt = result.law.optimum(c)
    answer = {"flops": c, "params": n_opt, "tokens": d_opt, "loss": result.law.loss(n_opt, d_opt)}
    if plot is not None:
        from llmctl.plan import plots

        plots.fitted(plot, n, d, loss, result.law, c)
    if write_recipe is not None:
        runs.write_recipe(
            write_recipe,
            runs.budget_recipe(n_opt, d_opt, vocab_size, seq_length, global_batch),
            _command(),
            f"fitted optimum at C = {c:.3g}: N ~ {n_opt:.3g}, D ~ {d_opt:.3g}",
        )
    p = result.law
    rows = [
        [str(r.path), f"{r.params:.3g}", f"{r.tokens:.3g}", f"{r.loss:.4f}", f"{res:+.4f}"]
        for r, res in zip(found, result.residuals, strict=True)
    ]
    tables = [
        _table(
            f"fit: L = {p.E:.4g} + {p.A:.4g}/N^{p.alpha:.4f} + {p.B:.4g}/D^{p.beta:.4f}",
            ["run", "N", "D", "valid loss", "log residual"],
            rows,
        ),
        _table(
            f"extrapolated optimum at C = {c:.3g} FLOPs",
            ["N", "D", "D/N", "loss"],
            [[f"{n_opt:.3g}", f"{d_opt:.3g}", f"{d_opt / n_opt:.1f}", f"{answer['loss']:.4f}"]],
        ),
    ]
    if as_json:
        print(json.dumps({"fit": result.to_dict(), "optimum": answer}, indent=2))
    else:
        from llmctl.console import out

        for t in tables:
            out.print(t)
