"""`llmctl eval`: score models on tasks; contamination-aware; a report to compare them.

    llmctl eval runs/demo/pretrain --out runs/demo/eval --tasks capitals,arith,sotu-ppl
    llmctl eval modelA modelB --out cmp --tasks capitals --num-fewshot 5 --limit 100
    llmctl eval runs/sft runs/dpo --out cmp --tasks sotu-quotes,truthful-unsolvable --judge runs/rm

Outputs: `results.json` (scores with standard errors per model and task: on all items, on the
clean subset and on the contaminated subset; task versions, each model's lineage hash, the
config and seed), `report.md` (comparison tables), `charts/TASK.png` (per-task bars across
models) and `items/MODEL/TASK.jsonl` (every item's score, prediction and contamination flag).
Contamination: every n-gram index in the model's lineage (dedup's, and the training text of sft,
rm, dpo, ppo; llmctl.contamination), each item attributed to the stages whose data hold it.
True/false items: mc1 / mc2 (llmctl.eval.mc). --judge: reward-model judging (llmctl.eval.judge).
"""

from __future__ import annotations

import json
import math
from functools import partial
from pathlib import Path
from typing import Any

from llmctl import artifacts, contamination
from llmctl.artifacts import Manifest
from llmctl.config import to_dict
from llmctl.console import info, warn
from llmctl.errors import UserError
from llmctl.eval import chat, chunks, mc, prefix
from llmctl.eval import judge as judgemod
from llmctl.eval import lm as lmmod
from llmctl.eval.config import EvalConfig
from llmctl.eval.report import write_report
from llmctl.eval.tasks import Item, Task, load_tasks
from llmctl.hf import dtype_name, model_dir, resolve_device


def run(cfg: EvalConfig) -> Manifest:
    """Score every model (`cfg.run.inputs`) on every task; with `cfg.run.resume`, the (model, task)
    pairs a killed run finished (their items/MODEL/TASK.jsonl, written atomically) are read back,
    not scored again."""
    models = cfg.run.inputs
    out = cfg.run.out_dir("eval")
    if not models:
        raise UserError("eval needs at least one MODEL")
    tasks = load_tasks(
        cfg.tasks,
        limit=cfg.limit,
        num_fewshot=cfg.num_fewshot,
        seed=cfg.seed,
        text_field=cfg.perplexity.text_field,
    )
    chat.configure(tasks, cfg.chat, cfg.system)
    resolve_device(cfg.device)  # --device cuda without one: exit 2 before any work
    dirs = [model_dir(m) for m in models]
    for d in dirs:
        lmmod.check_loadable(d)
    judges = judgemod.check(cfg.judge)  # a judge that is not a reward model: exit 2 before scoring
    chat.check_templates(tasks, dirs)
    labels = _labels(dirs)
    indexes = {label: _contamination_index(cfg, d) for label, d in zip(labels, dirs, strict=True)}
    model_inputs = [lmmod.artifact_root(d) or d for d in dirs]  # an artifact is recorded by its manifest
    inputs: list[str | Path] = list(model_inputs)
    for t in tasks:
        inputs += [p for p in t.files() if p not in inputs]
    inputs += [p for p in judges.values() if p not in inputs]
    recorded = to_dict(cfg)
    art = artifacts.begin(
        "eval", out, config=recorded, inputs=inputs, force=cfg.run.force, resume=cfg.run.resume
    )
    if art.done:
        return art.manifest
    with artifacts.discard_on_user_error(art):
        return _evaluate(cfg, art, tasks, dirs, labels, model_inputs, indexes, judges)


def _evaluate(
    cfg: EvalConfig,
    art: artifacts.StageRun,
    tasks: list[Task],
    dirs: list[Path],
    labels: list[str],
    model_inputs: list[Path],
    indexes: dict[str, list[contamination.Source]],
    judges: dict[str, Path] | None = None,
) -> Manifest:
    """Score every model on every task, write results.json and the report, commit."""
    recorded = art.config
    staging = art.staging
    model_info, scores = {}, {}
    outputs: dict[str, dict[str, list[dict[str, Any]]]] = {}  # model -> task -> per-item rows (for --judge)
    for label, d, src in zip(labels, dirs, model_inputs, strict=True):
        entry = next(e for e in art.inputs if Path(e["path"]) == Path(src).resolve())
        sources = indexes[label]
        model_info[label] = {
            "path": str(d.resolve()),
            "lineage_sha256": entry["sha256"],
            "lineage_kind": entry["kind"],
            "contamination_index": str(sources[0].path) if sources else None,  # the nearest
            "contamination_indexes": [s.describe() for s in sources],
            "weight_bytes": weight_bytes(d),
            "quantized_from": _quantized_from(entry),
        }
        model: lmmod.LM | None = None
        params_file = staging / "items" / label / _PARAMS
        scores[label] = {}
        for task in tasks:
            # per item, the stages whose training data hold it (llmctl.contamination); None: no index
            flags = contamination.check(sources, [it.text for it in task.items]) if sources else None
            items_file = staging / "items" / label / f"{task.name}.jsonl"
            per_item = _read_items(items_file, task) if art.resumed else None
            if per_item is not None:
                info(f"{label} · {task.name}: scored before the interruption; reusing {items_file.name}")
            else:
                if model is None:
                    info(f"{label}: loading {d}")
                    model = lmmod.LM(d, dtype=cfg.dtype, batch_size=cfg.batch_size, device=cfg.device)
                    params_file.parent.mkdir(parents=True, exist_ok=True)
                    # device and dtype as resolved from auto
                    loaded = {"parameters": model.parameters, "device": model.device}
                    params_file.write_text(json.dumps(loaded | {"dtype": dtype_name(model.dtype)}))
                scorer = partial(_score_chunk, model, cfg, f"{label} · {task.name}")
                per_item = chunks.score(task, items_file, cfg.chunk_items, art.resumed, scorer)
                _write_items(items_file, task, per_item, flags)
                chunks.discard(items_file)
            scores[label][task.name] = _aggregate(task, per_item, flags)
            outputs.setdefault(label, {})[task.name] = per_item
            _announce(label, task, scores[label][task.name])
        model_info[label] |= json.loads(params_file.read_text())
        params_file.unlink()
        del model
    results = {
        "models": model_info,
        "tasks": {t.name: t.describe() for t in tasks},
        "scores": scores,
        "config": recorded,
        "seed": cfg.seed,
    }
    if judges:  # reward-model judge: mean reward per model, pairwise win rates (llmctl.eval.judge)
        results["judge"] = judgemod.evaluate(judges, tasks, outputs, cfg, staging)
    artifacts.write_atomic(staging / "results.json", json.dumps(results, indent=2, ensure_ascii=False) + "\n")
    write_report(results, staging)
    # the manifest keeps the headline per model and task; results.json has every metric
    headline = {}
    for label, by_task in scores.items():
        for t, sc in by_task.items():
            metric = results["tasks"][t]["metrics"][0]
            row = {"metric": metric, "items": sc["n"], "all": sc["all"][metric]["value"]}
            if "contaminated" in sc:
                row |= {
                    "clean": sc["clean"][metric]["value"],
                    "contaminated": sc["contaminated"][metric]["value"],
                    "contaminated_items": sc["contaminated"]["n"],
                }
            headline[f"{label}/{t}"] = row
    summary = {k: v["all"] for k, v in headline.items()}
    models = {
        k: {key: v[key] for key in ("parameters", "lineage_sha256", "device", "dtype")}
        for k, v in model_info.items()
    }
    extra = {"judge": {k: results["judge"][k] for k in ("rewards", "win_rates")}} if judges else {}
    return art.commit({"scores": headline, "models": models, **extra}, summary)


WEIGHT_FILES = (".safetensors", ".bin", ".pt", ".pth", ".gguf")


def weight_bytes(model: Path) -> int:
    """Bytes of a model directory's weight files (safetensors, bin, ...; config and tokenizer
    left out): the size on disk that quantization shrinks."""
    return sum(f.stat().st_size for f in model.iterdir() if f.is_file() and f.name.endswith(WEIGHT_FILES))


def _quantized_from(entry: dict[str, Any]) -> str | None:
    """For a `llmctl quantize` artifact: the model directory it quantized (its first input, resolved
    as a model dir), so that the report can put the fp model and its quantized copy side by side
    with the deltas; None for any other model."""
    if entry.get("stage") != "quantize":
        return None
    source = artifacts.Manifest.read(entry["path"]).inputs[0]["path"]
    try:
        return str(model_dir(source).resolve())
    except UserError:  # the fp model moved or was removed since: no pairing
        return None


def _labels(dirs: list[Path]) -> list[str]:
    """Short unique names: the artifact's directory name (DIR for DIR/hf), else the model's."""
    raw = [(d.parent.name if d.name == "hf" else d.name) or "model" for d in dirs]
    return [n if raw.count(n) == 1 else f"{n}-{i + 1}" for i, n in enumerate(raw)]


# ---------------------------------------------------------------- contamination
def _contamination_index(cfg: EvalConfig, model: Path) -> list[contamination.Source]:
    """--contamination-index, else every n-gram index in the model's lineage (dedup's pre-training
    data, sft / rm / dpo / ppo's training text), nearest first."""
    if not cfg.contamination:
        return []
    if cfg.contamination_index:
        p = Path(cfg.contamination_index)
        if not (p / "ngram_index.json").is_file():
            raise UserError(f"contamination index {p}: no ngram_index.json there (a dedup artifact has one)")
        return [contamination.given_index(p)]
    return contamination.lineage_indexes(lmmod.artifact_root(model))


# ---------------------------------------------------------------- scoring
def _score_chunk(
    model: lmmod.LM, cfg: EvalConfig, description: str, part: Task, k: int
) -> list[dict[str, Any]]:
    """Chunk k of a task (chunks.score); its own sampling seeds, apart from the other chunks'."""
    return _score(model, part, cfg, description, seed=cfg.seed + k * cfg.chunk_items)


def _score(model: lmmod.LM, task: Task, cfg: EvalConfig, description: str, seed: int) -> list[dict[str, Any]]:
    task = chat.apply(task, model.tokenizer)  # contexts through the chat template, when chat
    if task.type == "multiple_choice":
        requests = [(it.context, c) for it in task.items for c in it.choices]
        score = prefix.loglikelihood if cfg.shared_context else lmmod.LM.loglikelihood
        lls = score(model, requests, description)
        out, k = [], 0
        for it in task.items:
            scores = [ll for ll, _ in lls[k : k + len(it.choices)]]
            k += len(it.choices)
            # acc_norm as lm-eval computes it: per character of the choice, without the delimiter
            lengths = [max(len(c), 1) for c in it.doc["choices"]]
            pick = max(range(len(scores)), key=lambda i: scores[i])
            pick_norm = max(range(len(scores)), key=lambda i: scores[i] / lengths[i])
            out.append(
                {
                    "acc": float(pick == it.answer),
                    "acc_norm": float(pick_norm == it.answer),
                    "loglikelihoods": scores,
                    "prediction": pick,
                }
            )
        return mc.add_scores(task, out)  # true/false items: mc1, mc2 from the log-likelihoods
    if task.type == "generation":
        answers = model.generate([it.context for it in task.items], cfg.generation, seed, description)
        return [
            {task.metric: float(_match(task, a, it.answer)), "prediction": a, "extracted": _extract(task, a)}
            for it, a in zip(task.items, answers, strict=True)
        ]
    max_length = min(cfg.perplexity.max_length or model.max_length, model.max_length)
    stride = cfg.perplexity.stride or max(1, max_length // 2)
    if not 1 <= stride < max_length:
        # windows that do not overlap never score the token each one starts with
        raise UserError(f"perplexity.stride={stride} must be below the window length {max_length}")
    texts = [it.context for it in task.items]
    _, counts = model.windows(texts, max_length, stride)
    nll = model.rolling_nll(texts, max_length, stride, description)
    return [
        {"nll": n, "tokens": c, "bytes": len(t.encode("utf-8")), "words": len(t.split())}
        for n, c, t in zip(nll, counts, texts, strict=True)
    ]


def _extract(task: Task, answer: str) -> str:
    import re

    if task.metric == "regex":
        m = re.search(task.regex or "", answer)
        return m.group(1).strip() if m else ""
    return answer.strip()


def _match(task: Task, answer: str, accepted: Any) -> bool:
    got = _extract(task, answer)
    if task.metric == "contains":
        return any(a.strip().lower() in answer.lower() for a in accepted)
    return any(got == a.strip() for a in accepted)


def _aggregate(task: Task, per_item: list[dict[str, Any]], flags: list[list[str]] | None) -> dict[str, Any]:
    subsets: dict[str, list[int]] = {"all": list(range(len(per_item)))}
    out: dict[str, Any] = {"n": len(per_item), "version": task.version}
    if flags is not None:
        subsets["clean"] = [i for i, f in enumerate(flags) if not f]
        subsets["contaminated"] = [i for i, f in enumerate(flags) if f]
        out |= contamination.summary(task.items, flags)  # which stage's data each item came from
    for name, idx in subsets.items():
        rows = [per_item[i] for i in idx]
        out[name] = {
            "n": len(rows),
            **(_ppl(task, rows) if task.type == "perplexity" else _means(task, rows)),
        }
    return out


def _means(task: Task, rows: list[dict[str, Any]]) -> dict[str, Any]:
    result = {}
    for m in task.metrics:
        xs = [r[m] for r in rows]
        n = len(xs)
        mean = sum(xs) / n if n else None
        # the standard error of a mean of 0/1 scores (sample variance, as lm-eval reports it)
        se = math.sqrt(sum((x - mean) ** 2 for x in xs) / (n - 1) / n) if n > 1 else None
        result[m] = {"value": mean, "stderr": se}
    return result


def _ppl(task: Task, rows: list[dict[str, Any]]) -> dict[str, Any]:
    if not rows:
        return {k: {"value": None, "stderr": None} for k in task.metrics}
    nll = sum(r["nll"] for r in rows)
    tokens, nbytes, words = (sum(r[k] for r in rows) for k in ("tokens", "bytes", "words"))
    return {
        "token_perplexity": {"value": math.exp(nll / tokens), "stderr": None},
        "bits_per_byte": {"value": nll / math.log(2) / nbytes, "stderr": None},
        "word_perplexity": {"value": math.exp(nll / max(words, 1)), "stderr": None},
        "tokens": tokens,
        "bytes": nbytes,
    }


_PARAMS = ".llmctl-parameters.json"  # a model's parameter count, for a resumed run that skips loading it
_ITEM_KEYS = ("index", "where", "contaminated", "contaminated_by")


def _write_items(
    path: Path, task: Task, per_item: list[dict[str, Any]], flags: list[list[str]] | None
) -> None:
    """Every item's score; written atomically, so that the file's presence means the task is done."""
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = []
    for k, (it, r) in enumerate(zip(task.items, per_item, strict=True)):
        rec = {"index": it.index, "where": it.where, **r}
        if flags is not None:
            rec["contaminated"] = bool(flags[k])
            rec["contaminated_by"] = flags[k]  # the stages whose training data hold the item
        lines.append(json.dumps(rec, ensure_ascii=False) + "\n")
    artifacts.write_atomic(path, "".join(lines))


def _read_items(path: Path, task: Task) -> list[dict[str, Any]] | None:
    """The per-item scores a killed run wrote for this task (None when absent or not these items)."""
    try:
        rows = [json.loads(x) for x in path.read_text(encoding="utf-8").splitlines()]
    except (OSError, ValueError):
        return None
    if [r.get("index") for r in rows] != [it.index for it in task.items]:
        return None
    return [{k: v for k, v in r.items() if k not in _ITEM_KEYS} for r in rows]


def _announce(label: str, task: Task, s: dict[str, Any]) -> None:
    primary = task.metrics[0]
    v = s["all"][primary]
    text = f"{label} · {task.name}: {primary} {v['value']:.4f}"
    if v.get("stderr") is not None:
        text += f" ± {v['stderr']:.4f}"
    if "contaminated" in s:
        text += f" ({s['contaminated']['n']} of {s['n']} items contaminated)"
    info(text)
    if "contaminated" in s and s["contaminated"]["n"] == s["n"]:
        warn(f"every item of {task.name} occurs in {label}'s training data: its score says little")


__all__ = ["Item", "run"]
