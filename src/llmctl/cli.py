"""The `llmctl` command line: one thin command per stage, plus inspect/lineage/summary.

    llmctl --help
    llmctl clean data/sample --out runs/demo/clean --config recipes/clean/default.yaml

Commands only parse and dispatch; stage packages are imported inside the command, so
`llmctl --help` stays fast. Exit codes: 0 success, 2 user error, 1 runtime failure.
"""

from __future__ import annotations

import functools
import json
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer

from llmctl import __version__
from llmctl.errors import Incomplete, UserError

F = TypeVar("F", bound=Callable[..., Any])

app = typer.Typer(
    name="llmctl",
    help="From raw text to an aligned, quantized, evaluated language model, one stage at a time.\n\n"
    "Each stage reads artifacts from disk and writes one artifact directory (manifest.json last).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)

# ---------------------------------------------------------------- options shared by the stages

OutOpt = Annotated[
    Path,
    typer.Option(
        "--out", "-o", help="Artifact directory to create. Written via a staging dir; manifest.json last."
    ),
]
ConfigOpt = Annotated[
    Path | None,
    typer.Option(
        "--config",
        "-c",
        help="Recipe YAML (recipes/STAGE/NAME.yaml).",
        exists=True,
        dir_okay=False,
        show_default="none: built-in defaults",
    ),
]
SetOpt = Annotated[
    list[str] | None,
    typer.Option("--set", "-s", help="Override a recipe key, KEY=VALUE (repeatable).", show_default="none"),
]
ForceOpt = Annotated[
    bool,
    typer.Option("--force", help="Rebuild even if a complete artifact exists at --out.", show_default="off"),
]
ResumeOpt = Annotated[
    bool,
    typer.Option("--resume", help="Continue from the staging directory of a killed run.", show_default="off"),
]
WorkersOpt = Annotated[int | None, typer.Option(help="Worker processes; 0 = all cores.", show_default="0")]
NumShardsOpt = Annotated[
    int | None,
    typer.Option(
        help="Split the input files into N shards (SLURM job array); default $SLURM_ARRAY_TASK_COUNT or 1.",
        show_default="1",
    ),
]
ShardIndexOpt = Annotated[
    int | None,
    typer.Option(help="The shard this process runs; default $SLURM_ARRAY_TASK_ID or 0.", show_default="0"),
]
DeviceOpt = Annotated[
    str | None,
    typer.Option(help="Where the model runs: auto (CUDA when present), cpu or cuda.", show_default="auto"),
]
DtypeOpt = Annotated[
    str | None,
    typer.Option(
        help="Model weights dtype: float32, bfloat16, float16, or auto (bfloat16 on a GPU, float32 on CPU).",
        show_default="float32",
    ),
]
VerifyOpt = Annotated[
    bool | None,
    typer.Option(
        "--verify-inputs/--no-verify-inputs",
        help="Check input artifacts' files against their manifests by sha256: all files, or none "
        "(sizes are always checked).",
        show_default="sha256 of files under 64 MiB, 1 GiB per artifact",
    ),
]
QuietOpt = Annotated[
    bool, typer.Option("--quiet", "-q", help="No progress bars or info lines.", show_default="off")
]


def _guard(fn: F) -> F:
    """User errors -> one line and exit 2; other failures -> exit 1 (traceback with LLMCTL_DEBUG=1)."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        from llmctl.console import err

        debug = os.environ.get("LLMCTL_DEBUG") == "1"
        try:
            return fn(*args, **kwargs)
        except UserError as e:
            if "llmctl.artifacts" in sys.modules:  # a run stopped by a user error leaves no lock file
                sys.modules["llmctl.artifacts"].release_all_locks()
            if debug:
                raise
            err.print(f"[red]error:[/red] {e}", markup=True, soft_wrap=True)
            raise typer.Exit(2) from None
        except Incomplete as e:
            err.print(f"[yellow]incomplete:[/yellow] {e}", soft_wrap=True)
            raise typer.Exit(3) from None
        except KeyboardInterrupt:
            from llmctl.artifacts import active_staging

            staging = active_staging()
            where = f"staging kept at {staging}" if staging else "nothing written"
            err.print(f"interrupted; {where}; `--resume` continues", soft_wrap=True)
            raise typer.Exit(130) from None
        except (typer.Exit, typer.Abort):
            raise
        except Exception as e:
            if debug:
                raise
            full = _no_space(e)
            if full is not None:  # a full disk is a runtime failure, but one line says it all
                from llmctl.artifacts import no_space_message

                err.print(f"[red]failed:[/red] {no_space_message(full)}", soft_wrap=True)
                raise typer.Exit(1) from None
            err.print(f"[red]failed:[/red] {type(e).__name__}: {e}", soft_wrap=True)
            err.print("(run with LLMCTL_DEBUG=1 for the traceback)")
            raise typer.Exit(1) from None

    return wrapper  # type: ignore[return-value]


def _no_space(e: BaseException | None) -> OSError | None:
    """The ENOSPC OSError behind an exception (itself, or what it was raised from), if any."""
    import errno

    for _ in range(5):
        if e is None:
            return None
        if isinstance(e, OSError) and e.errno == errno.ENOSPC:
            return e
        e = e.__cause__ or e.__context__
    return None


def _verify(mode: bool | None) -> None:
    from llmctl import artifacts

    artifacts.set_verify_inputs(mode)


def _default(cls: type, key: str) -> str:
    from llmctl.config import default_of

    value = default_of(cls, key)
    if isinstance(value, list):
        return ",".join(map(str, value))
    return str(value)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"llmctl {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version and exit.")
    ] = False,
) -> None:
    """From raw text to an aligned, quantized, evaluated language model, one stage at a time."""


# ---------------------------------------------------------------- stages

from llmctl.clean.config import CleanConfig  # noqa: E402  (dataclasses only: cheap to import)


@app.command()
@_guard
def clean(
    inputs: Annotated[
        list[Path],
        typer.Argument(
            help="Files (.jsonl, .jsonl.gz, .jsonl.zst, .parquet), directories of .txt files, or artifacts.",
            show_default=False,
        ),
    ] = None,  # type: ignore[assignment]
    out: OutOpt = None,  # type: ignore[assignment]
    config: ConfigOpt = None,
    set_: SetOpt = None,
    languages: Annotated[
        str | None,
        typer.Option(
            help="Comma-separated languages to keep.",
            show_default=_default(CleanConfig, "language.languages"),
        ),
    ] = None,
    workers: WorkersOpt = None,
    text_field: Annotated[
        str | None,
        typer.Option(help="Field holding the text.", show_default=_default(CleanConfig, "input.text_field")),
    ] = None,
    id_field: Annotated[
        str | None,
        typer.Option(help="Field holding the id.", show_default=_default(CleanConfig, "input.id_field")),
    ] = None,
    strict: Annotated[
        bool | None,
        typer.Option(
            "--strict/--no-strict",
            help="Exit 2 at the first malformed record instead of rejecting it.",
            show_default="no-strict",
        ),
    ] = None,
    num_shards: NumShardsOpt = None,
    shard_index: ShardIndexOpt = None,
    merge: Annotated[
        bool,
        typer.Option("--merge", help="Only merge finished shards into the artifact (after a job array)."),
    ] = False,
    device: DeviceOpt = None,
    dtype: DtypeOpt = None,
    force: ForceOpt = False,
    resume: ResumeOpt = False,
    verify_inputs: VerifyOpt = None,
    quiet: QuietOpt = False,
) -> None:
    """Quality filtering and privacy reduction: language, Gopher/C4 statistics, repetition,
    keywords, perplexity, HTML extraction, normalization, PII placeholders."""
    from llmctl.clean import run

    _verify(verify_inputs)

    flags = {
        "language.languages": languages,
        "workers": workers,
        "input.text_field": text_field,
        "input.id_field": id_field,
        "strict": strict,
        "num_shards": num_shards,
        "shard_index": shard_index,
        "perplexity.device": device,  # the perplexity scorer's
        "perplexity.dtype": dtype,
    }
    cfg = _data_stage_config("clean", CleanConfig, inputs, out, config, set_, quiet, flags)
    manifest = run(
        cfg,
        list(inputs),
        out,
        force=force,
        resume=resume,
        merge_only=merge,
        recipe_dir=config.parent if config else None,
    )
    if manifest is not None:
        _print_summary([out])


from llmctl.dedup.config import DedupConfig  # noqa: E402


@app.command()
@_guard
def dedup(
    inputs: Annotated[
        list[Path],
        typer.Argument(
            help="A clean artifact, or document files/directories in any format clean reads.",
            show_default=False,
        ),
    ] = None,  # type: ignore[assignment]
    out: OutOpt = None,  # type: ignore[assignment]
    config: ConfigOpt = None,
    set_: SetOpt = None,
    against: Annotated[
        list[Path] | None,
        typer.Option(
            help="Evaluation set (JSONL) to remove contaminated training documents for (repeatable).",
            show_default="none",
        ),
    ] = None,
    threshold: Annotated[
        float | None,
        typer.Option(
            help="Jaccard threshold of near-duplicates.",
            show_default=_default(DedupConfig, "minhash.threshold"),
        ),
    ] = None,
    workers: WorkersOpt = None,
    max_memory: Annotated[
        str | None,
        typer.Option(
            help="Refuse to start above this estimated peak memory (e.g. 8G).",
            show_default=_default(DedupConfig, "max_memory"),
        ),
    ] = None,
    num_shards: NumShardsOpt = None,
    shard_index: ShardIndexOpt = None,
    merge: Annotated[
        bool,
        typer.Option(
            "--merge", help="Only run the steps after the signatures (after a job array).", show_default="off"
        ),
    ] = False,
    step: Annotated[
        str,
        typer.Option(
            help="all, or one step of chained SLURM jobs: signatures, buckets (this shard's bands), finish."
        ),
    ] = "all",
    force: ForceOpt = False,
    resume: ResumeOpt = False,
    verify_inputs: VerifyOpt = None,
    quiet: QuietOpt = False,
) -> None:
    """De-duplication: exact and MinHash near-duplicate documents, repeated boilerplate lines,
    and training documents that overlap evaluation sets (contamination)."""
    from llmctl.dedup import run

    _verify(verify_inputs)

    flags = {
        "minhash.threshold": threshold,
        "workers": workers,
        "max_memory": max_memory,
        "num_shards": num_shards,
        "shard_index": shard_index,
    }
    cfg = _data_stage_config("dedup", DedupConfig, inputs, out, config, set_, quiet, flags)
    manifest = run(
        cfg, list(inputs), out, against=against, force=force, resume=resume, merge_only=merge, step=step
    )
    if manifest is not None:
        _print_summary([out])


from llmctl.tokenize.config import TokenizeConfig  # noqa: E402


@app.command()
@_guard
def tokenize(
    inputs: Annotated[
        list[Path] | None,
        typer.Argument(help="Artifacts or document files of one source named 'corpus'.", show_default=False),
    ] = None,
    out: OutOpt = None,  # type: ignore[assignment]
    config: ConfigOpt = None,
    set_: SetOpt = None,
    source: Annotated[
        list[str] | None,
        typer.Option(
            "--input",
            "-i",
            help="A named source of the mixture, NAME=PATH[:WEIGHT] (repeatable).",
            show_default="none",
        ),
    ] = None,
    tokenizer: Annotated[
        Path | None,
        typer.Option(
            "--tokenizer",
            help="Reuse this tokenizer (tokenizer.json or a Hugging Face directory).",
            show_default="none: train one",
        ),
    ] = None,
    model: Annotated[
        str | None,
        typer.Option(
            help="Tokenizer model to train: bpe, wordpiece, unigram.",
            show_default=_default(TokenizeConfig, "tokenizer.model"),
        ),
    ] = None,
    vocab_size: Annotated[
        int | None,
        typer.Option(
            help="Vocabulary size to train.", show_default=_default(TokenizeConfig, "tokenizer.vocab_size")
        ),
    ] = None,
    workers: WorkersOpt = None,
    force: ForceOpt = False,
    resume: ResumeOpt = False,
    verify_inputs: VerifyOpt = None,
    quiet: QuietOpt = False,
) -> None:
    """Train a tokenizer (byte-level BPE, WordPiece, Unigram) or reuse one, and write megatron-core
    .bin/.idx token data per source plus blend.json for pretrain."""
    from llmctl import config as cfgmod
    from llmctl.console import set_quiet
    from llmctl.tokenize import run

    set_quiet(quiet)
    _verify(verify_inputs)
    if out is None:
        raise UserError("tokenize needs --out DIR")
    cfg0 = cfgmod.load(TokenizeConfig, config, set_, {})
    sources = {name: {"paths": s.paths, "weight": s.weight} for name, s in cfg0.sources.items()}
    given: set[str] = set()
    for spec in source or []:
        name, paths, weight = _parse_source(spec)
        if name in given:
            raise UserError(f"--input {spec}: the source name '{name}' is used twice")
        given.add(name)
        sources[name] = {"paths": paths, "weight": weight}
    if inputs:
        if "corpus" in given:
            raise UserError("positional INPUTs form the source 'corpus'; do not also pass --input corpus=...")
        sources["corpus"] = {"paths": [str(p) for p in inputs], "weight": 1.0}
    flags = {
        "tokenizer.path": str(tokenizer) if tokenizer else None,
        "tokenizer.model": model,
        "tokenizer.vocab_size": vocab_size,
        "workers": workers,
    }
    cfg = cfgmod.load(TokenizeConfig, config, set_, {**flags, "sources": sources or None})
    run(cfg, out, force=force, resume=resume)
    _print_summary([out])


def _parse_source(spec: str) -> tuple[str, list[str], float]:
    """NAME=PATH[:WEIGHT] -> (name, [path], weight); PATH may hold commas for several paths."""
    if "=" not in spec:
        raise UserError(f"--input {spec}: expected NAME=PATH[:WEIGHT], e.g. web=runs/clean_web:0.7")
    name, rest = spec.split("=", 1)
    if not name.isidentifier():
        raise UserError(f"--input {spec}: the source name must be a word (letters, digits, _), got {name!r}")
    weight = 1.0
    path, sep, tail = rest.rpartition(":")
    if sep:
        try:
            weight = float(tail)
        except ValueError:
            raise UserError(f"--input {spec}: the weight {tail!r} is not a number") from None
    else:
        path = rest
    if not weight > 0:
        raise UserError(f"--input {spec}: the weight must be a positive number, got {tail}")
    return name, [p for p in path.split(",") if p], weight


from llmctl.pretrain.config import PretrainConfig  # noqa: E402


@app.command()
@_guard
def pretrain(
    tokenized: Annotated[
        Path, typer.Argument(help="A tokenize artifact (blend.json, data/, tokenizer/).", show_default=False)
    ],
    out: OutOpt = None,  # type: ignore[assignment]
    config: ConfigOpt = None,
    set_: SetOpt = None,
    nproc: Annotated[
        int | None,
        typer.Option(
            help="Local processes, started through torchrun; a multiple of TP x PP.",
            show_default=_default(PretrainConfig, "nproc"),
        ),
    ] = None,
    steps: Annotated[
        int | None,
        typer.Option(help="Optimizer steps.", show_default=_default(PretrainConfig, "train.steps")),
    ] = None,
    force: ForceOpt = False,
    resume: ResumeOpt = False,
    verify_inputs: VerifyOpt = None,
    quiet: QuietOpt = False,
) -> None:
    """Pre-train a LLaMA-style GPT with megatron-core (tensor, pipeline and data parallelism), then
    export hf/ for transformers. Exit code 3: stopped early on purpose; --resume continues.

    Multi-node: run it under torchrun yourself (`srun torchrun --nnodes N ... -m llmctl pretrain ...`,
    see recipes/slurm/pretrain.sbatch); each process is then one rank and --nproc is ignored."""
    from llmctl import config as cfgmod
    from llmctl.console import set_quiet
    from llmctl.pretrain import run, under_torchrun, world_size

    set_quiet(quiet)
    _verify(verify_inputs)
    if out is None:
        raise UserError("pretrain needs --out DIR")
    if under_torchrun():  # one rank of a torchrun launch: the launcher decides the process count
        if nproc is not None and nproc != world_size():
            raise UserError(f"--nproc {nproc} under torchrun, which started {world_size()} processes")
        nproc = world_size()
    cfg = cfgmod.load(PretrainConfig, config, set_, {"nproc": nproc, "train.steps": steps})
    if run(cfg, tokenized, out, force=force, resume=resume) is not None:  # None: a rank other than 0
        _print_summary([out])


from llmctl.eval.config import EvalConfig  # noqa: E402


def _gen_default(key: str) -> str:
    return _default(EvalConfig, f"generation.{key}")


@app.command("eval")
@_guard
def eval_(
    models: Annotated[
        list[Path],
        typer.Argument(
            help="Hugging Face causal-LM directories or llmctl artifacts holding one (pretrain's hf/, "
            "export). Several give a side-by-side comparison.",
            show_default=False,
        ),
    ],
    out: OutOpt = None,  # type: ignore[assignment]
    tasks: Annotated[
        str | None,
        typer.Option(
            help="Comma-separated tasks: shipped task names (llmctl/eval/tasks_data/), task YAML files, or "
            "perplexity:PATH (a document artifact, JSONL or text).",
            show_default=False,
        ),
    ] = None,
    config: ConfigOpt = None,
    set_: SetOpt = None,
    limit: Annotated[
        int | None, typer.Option(help="Score only the first N items of each task.", show_default="all")
    ] = None,
    batch_size: Annotated[
        int | None,
        typer.Option(help="Sequences per forward pass.", show_default=_default(EvalConfig, "batch_size")),
    ] = None,
    num_fewshot: Annotated[
        int | None,
        typer.Option(help="In-context demonstrations per item (seeded).", show_default="each task's own"),
    ] = None,
    seed: Annotated[
        int | None,
        typer.Option(help="Seed for demonstrations and sampling.", show_default=_default(EvalConfig, "seed")),
    ] = None,
    decoding: Annotated[
        str | None,
        typer.Option(help="Generation: greedy, beam or sample.", show_default=_gen_default("strategy")),
    ] = None,
    num_beams: Annotated[
        int | None, typer.Option(help="Beams for --decoding beam.", show_default=_gen_default("num_beams"))
    ] = None,
    length_penalty: Annotated[
        float | None,
        typer.Option(
            help="Beam search length penalty (> 1 favours longer).",
            show_default=_gen_default("length_penalty"),
        ),
    ] = None,
    temperature: Annotated[
        float | None, typer.Option(help="Sampling temperature.", show_default=_gen_default("temperature"))
    ] = None,
    top_k: Annotated[
        int | None, typer.Option(help="Top-k sampling (0 = off).", show_default=_gen_default("top_k"))
    ] = None,
    top_p: Annotated[
        float | None,
        typer.Option(help="Nucleus sampling mass (1 = off).", show_default=_gen_default("top_p")),
    ] = None,
    repetition_penalty: Annotated[
        float | None,
        typer.Option(help="Repetition penalty (1 = off).", show_default=_gen_default("repetition_penalty")),
    ] = None,
    max_new_tokens: Annotated[
        int | None,
        typer.Option(help="Tokens generated at most.", show_default=_gen_default("max_new_tokens")),
    ] = None,
    stop: Annotated[
        list[str] | None,
        typer.Option(help="Stop string (repeatable); replaces the default.", show_default=r"\n\n"),
    ] = None,
    contamination_index: Annotated[
        Path | None,
        typer.Option(
            help="A dedup artifact whose n-gram index marks contaminated items.",
            show_default="found in the model's lineage",
        ),
    ] = None,
    device: DeviceOpt = None,
    dtype: DtypeOpt = None,
    force: ForceOpt = False,
    resume: Annotated[
        bool,
        typer.Option(
            "--resume",
            help="Continue a killed run: the (model, task) pairs it finished are not scored again.",
            show_default="off",
        ),
    ] = False,
    verify_inputs: VerifyOpt = None,
    quiet: QuietOpt = False,
) -> None:
    """Evaluate models: perplexity (token and bits per byte), multiple choice by log-likelihood
    (acc, acc_norm; zero- or k-shot), generation (exact match, contains, regex) with greedy, beam
    or sampled decoding. Scores on all, clean and contaminated items; results.json, report.md,
    charts/."""
    from llmctl import config as cfgmod
    from llmctl.console import set_quiet
    from llmctl.eval import run

    set_quiet(quiet)
    _verify(verify_inputs)
    if out is None:
        raise UserError("eval needs --out DIR")
    flags = {
        "tasks": [t.strip() for t in tasks.split(",") if t.strip()] if tasks else None,
        "limit": limit,
        "batch_size": batch_size,
        "num_fewshot": num_fewshot,
        "seed": seed,
        "generation.strategy": decoding,
        "generation.num_beams": num_beams,
        "generation.length_penalty": length_penalty,
        "generation.temperature": temperature,
        "generation.top_k": top_k,
        "generation.top_p": top_p,
        "generation.repetition_penalty": repetition_penalty,
        "generation.max_new_tokens": max_new_tokens,
        "generation.stop": stop or None,
        "contamination_index": str(contamination_index) if contamination_index else None,
        "device": device,
        "dtype": dtype,
    }
    cfg = cfgmod.load(EvalConfig, config, set_, flags)
    run(cfg, models, out, force=force, resume=resume)
    _print_summary([out])


@app.command("export")
@_guard
def export_(
    checkpoint: Annotated[
        Path,
        typer.Argument(
            help="A pretrain checkpoint: PRETRAIN_DIR/checkpoints/iter_NNNNNNN.", show_default=False
        ),
    ],
    out: OutOpt = None,  # type: ignore[assignment]
    force: ForceOpt = False,
    verify_inputs: VerifyOpt = None,
    quiet: QuietOpt = False,
) -> None:
    """Export a megatron checkpoint (any TP/PP layout) as a Hugging Face LlamaForCausalLM directory,
    checked by logits parity against megatron."""
    from llmctl.console import set_quiet
    from llmctl.pretrain import export

    set_quiet(quiet)
    _verify(verify_inputs)
    if out is None:
        raise UserError("export needs --out HF_DIR")
    export(checkpoint, out, force=force)
    _print_summary([out])


def _data_stage_config(
    name: str,
    cls: type,
    inputs: list[Path] | None,
    out: Path | None,
    recipe: Path | None,
    overrides: list[str] | None,
    quiet: bool,
    flags: dict[str, Any],
) -> Any:
    """What every data stage command does first: --quiet, required arguments, the SLURM array
    defaults of --num-shards/--shard-index, then the resolved config."""
    from llmctl import config as cfgmod
    from llmctl.console import set_quiet

    set_quiet(quiet)
    if not inputs:
        raise UserError(f"{name} needs at least one INPUT (an artifact, document files or directories)")
    if out is None:
        raise UserError(f"{name} needs --out DIR")
    flags["num_shards"], flags["shard_index"] = _array_defaults(flags["num_shards"], flags["shard_index"])
    return cfgmod.load(cls, recipe, overrides, flags)


def _array_defaults(num_shards: int | None, shard_index: int | None) -> tuple[int | None, int | None]:
    """--num-shards/--shard-index default to the SLURM job array's task count and id."""
    env = os.environ
    if num_shards is None and "SLURM_ARRAY_TASK_COUNT" in env:
        num_shards = int(env["SLURM_ARRAY_TASK_COUNT"])
    if shard_index is None and "SLURM_ARRAY_TASK_ID" in env:
        shard_index = int(env["SLURM_ARRAY_TASK_ID"]) - int(env.get("SLURM_ARRAY_TASK_MIN", "0"))
    return num_shards, shard_index


# ---------------------------------------------------------------- artifacts


@app.command()
@_guard
def inspect(
    directory: Annotated[Path, typer.Argument(help="An artifact directory.", show_default=False)],
    as_json: Annotated[bool, typer.Option("--json", help="Print the raw manifest JSON.")] = False,
    reasons: Annotated[
        bool,
        typer.Option(
            "--reasons",
            help="Explain the rejections instead: per rule the count and two excerpts of rejected "
            "documents, and the personal data replaced (clean's report.md; built from rejected/ for "
            "other data stages).",
        ),
    ] = False,
) -> None:
    """Print an artifact's manifest: stage, config, inputs, outputs, metrics, versions.

    Example: llmctl inspect runs/demo/clean --reasons"""
    from llmctl.artifacts import Manifest
    from llmctl.report import print_manifest

    m = Manifest.read(directory)
    if reasons:
        from llmctl.rejections import for_artifact

        sys.stdout.write(for_artifact(directory))
    elif as_json:
        sys.stdout.write(m.to_json())
    else:
        print_manifest(directory, m)


@app.command()
@_guard
def lineage(
    directory: Annotated[Path, typer.Argument(help="An artifact directory.", show_default=False)],
    as_json: Annotated[bool, typer.Option("--json", help="Print the chain as JSON.")] = False,
) -> None:
    """Walk an artifact's inputs back to the raw data; flag inputs changed since they were used.

    Exits 1 when an input changed or disappeared."""
    from llmctl.artifacts import lineage as walk
    from llmctl.artifacts import problems
    from llmctl.report import lineage_json, print_lineage

    root = walk(directory)
    if as_json:
        sys.stdout.write(json.dumps(lineage_json(root), indent=2) + "\n")
    else:
        print_lineage(root)
    if problems(root):
        raise typer.Exit(1)


@app.command()
@_guard
def summary(
    directories: Annotated[list[Path], typer.Argument(help="Artifact directories.", show_default=False)],
) -> None:
    """One table row per artifact: stage, duration and key metrics."""
    _print_summary(directories)


def _print_summary(directories: list[Path]) -> None:
    from llmctl.report import print_summary

    print_summary(directories)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
