"""`llmctl eval --judge RM`: reward models from `llmctl rm` judge the answers of generation tasks,
AlpacaEval-style but with a local judge (survey 7.1.2, 7.3: helpfulness / harmlessness by a model).

    llmctl eval runs/demo/sft runs/demo/dpo --tasks sotu-quotes --judge runs/demo/rm --out runs/demo/eval-rm

For every judge (an rm artifact: one reward model, or the combined scorer of `--criterion`s) and
every generation task: the mean reward of each model's answers (the item's prompt, without
demonstrations, as the user turn and the answer as the assistant turn, rendered through the
judge's own chat template by `llmctl.rm.scorer`), and, with two or more models, each pair's win
rate: the share of items where the judge rewards A's answer above B's, ties (identical answers or
rewards within 1e-6) counted as half a win, with a seeded percentile-bootstrap 95% interval over
items. A judge that is not a reward model is exit 2 before any model is scored.
Per-item rewards: judge/JUDGE.jsonl. Results: results.json "judge", report.md "Reward-model judge".
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from llmctl.errors import UserError

TIE = 1e-6  # rewards closer than this are a tie (batching changes the last float bits)
RESAMPLES = 1000
EMPTY = "(no answer)"  # what the judge reads for an empty answer (the scorer refuses empty turns)


def check(paths: list[str]) -> dict[str, Path]:
    """Each --judge as {label: path}; exit 2 unless it is an rm artifact with a 1-label sequence
    classifier (or a combined scorer whose every criterion is one). Reads configs only."""
    from llmctl.rm.scorer import REWARD_JSON

    out: dict[str, Path] = {}
    for raw in paths:
        p = Path(raw)
        spec_file = p / REWARD_JSON
        if not spec_file.is_file():
            raise UserError(f"--judge {p}: not a reward model (no {REWARD_JSON}); make one with llmctl rm")
        try:
            spec = json.loads(spec_file.read_text())
        except ValueError as e:
            raise UserError(f"--judge {p}: {REWARD_JSON} is not valid JSON ({e})") from None
        parts = [p / c["path"] for c in spec["combined"].values()] if "combined" in spec else [p]
        for part in parts:
            archs, labels = _head(part / "hf" / "config.json", p)
            if not any(a.endswith("ForSequenceClassification") for a in archs) or labels != 1:
                raise UserError(
                    f"--judge {p}: {part / 'hf'} holds {', '.join(archs) or 'no architecture'} with "
                    f"{labels} labels, not a 1-label sequence classifier (a reward model from llmctl rm)"
                )
        name = p.resolve().name or "judge"
        label = name if name not in out else f"{name}-{len(out) + 1}"
        out[label] = p
    return out


def _head(config: Path, judge: Path) -> tuple[list[str], int]:
    """(architectures, number of labels) from config.json, read as transformers reads it (no
    id2label: 2 labels) without importing it: the check runs before anything loads."""
    try:
        c = json.loads(config.read_text())
    except (OSError, ValueError) as e:
        raise UserError(f"--judge {judge}: {config} does not load ({e})") from None
    labels = c.get("num_labels") or len(c.get("id2label") or {}) or 2
    return list(c.get("architectures") or []), int(labels)


def mean_se(xs: list[float]) -> dict[str, Any]:
    n = len(xs)
    mean = sum(xs) / n if n else None
    se = math.sqrt(sum((x - mean) ** 2 for x in xs) / (n - 1) / n) if n > 1 and mean is not None else None
    return {"value": mean, "stderr": se, "n": n}


def outcomes(a: list[float], b: list[float], same: list[bool] | None = None) -> list[float]:
    """Per item: 1 when A's reward is above B's, 0 below, 0.5 for a tie (or identical answers)."""
    same = same or [False] * len(a)
    return [0.5 if s or abs(x - y) <= TIE else float(x > y) for x, y, s in zip(a, b, same, strict=True)]


def win_rate(results: list[float], seed: int, resamples: int = RESAMPLES) -> dict[str, Any]:
    """Win rate (ties half) with a percentile-bootstrap 95% interval over items, seeded."""
    import numpy as np

    x = np.asarray(results, dtype=np.float64)
    n = len(x)
    if n == 0:
        return {"win_rate": None, "ci95": [None, None], "wins": 0, "ties": 0, "losses": 0, "n": 0}
    rng = np.random.default_rng(seed)
    means = x[rng.integers(0, n, size=(resamples, n))].mean(axis=1)
    lo, hi = np.percentile(means, [2.5, 97.5])
    return {
        "win_rate": float(x.mean()),
        "ci95": [float(lo), float(hi)],
        "wins": int((x == 1).sum()),
        "ties": int((x == 0.5).sum()),
        "losses": int((x == 0).sum()),
        "n": n,
    }


def evaluate(
    judges: dict[str, Path],
    tasks: list[Any],
    outputs: dict[str, dict[str, list[dict[str, Any]]]],
    cfg: Any,
    out: Path,
) -> dict[str, Any]:
    """Rewards and pairwise win rates of every model's generation answers under every judge;
    per-item rewards to out/judge/JUDGE.jsonl."""
    from llmctl import artifacts
    from llmctl.console import info
    from llmctl.rm.scorer import Scorer

    models = list(outputs)
    gen = [t for t in tasks if t.type == "generation"]
    result: dict[str, Any] = {"judges": {}, "rewards": {}, "win_rates": {}}
    if not gen:
        from llmctl.console import warn

        warn("--judge: no generation task among --tasks; the reward models have nothing to judge")
        return result
    for jl, path in judges.items():
        info(f"judge {jl}: scoring the answers of {len(models)} model(s) on {len(gen)} generation task(s)")
        scorer = Scorer.load(path, device=cfg.device, batch_size=cfg.batch_size)
        combined = "combined" in json.loads((path / "reward.json").read_text())
        result["judges"][jl] = {
            "path": str(path.resolve()),
            "kind": "combined" if combined else "reward model",
        }
        rewards: dict[str, dict[str, list[float]]] = {m: {} for m in models}
        lines = []
        for task in gen:
            for m in models:
                answers = [_answer(r) for r in outputs[m][task.name]]
                got = scorer.score([(it.prompt, a) for it, a in zip(task.items, answers, strict=True)])
                rewards[m][task.name] = got
                lines += [
                    json.dumps({"model": m, "task": task.name, "index": it.index, "reward": r}) + "\n"
                    for it, r in zip(task.items, got, strict=True)
                ]
        (out / "judge").mkdir(exist_ok=True)
        artifacts.write_atomic(out / "judge" / f"{jl}.jsonl", "".join(lines))
        result["rewards"][jl] = {m: {t: mean_se(v) for t, v in by.items()} for m, by in rewards.items()}
        result["win_rates"][jl] = {}
        for task in gen:
            rows = []
            for i, a in enumerate(models):
                for b in models[i + 1 :]:
                    same = [
                        _answer(x) == _answer(y)
                        for x, y in zip(outputs[a][task.name], outputs[b][task.name], strict=True)
                    ]
                    res = outcomes(rewards[a][task.name], rewards[b][task.name], same)
                    rows.append({"model": a, "opponent": b, **win_rate(res, cfg.seed)})
            result["win_rates"][jl][task.name] = rows
        del scorer
    return result


def _answer(row: dict[str, Any]) -> str:
    text = str(row.get("prediction", "")).strip()
    return text or EMPTY


def report_lines(results: dict[str, Any]) -> list[str]:
    """report.md's section: mean reward per model and task, then the pairwise win rates."""
    j = results.get("judge")
    if not j:
        return []
    lines = ["", "## Reward-model judge", ""]
    lines += ["Mean reward of each model's answers (± standard error), by judge and generation task.", ""]
    lines += ["| judge | task | model | mean reward | items |", "|---|---|---|---|---|"]
    for jl, by_model in j["rewards"].items():
        for model, by_task in by_model.items():
            for task, v in by_task.items():
                se = f" ± {v['stderr']:.4f}" if v["stderr"] is not None else ""
                lines.append(f"| {jl} | {task} | {model} | {v['value']:.4f}{se} | {v['n']} |")
    pairs = [(jl, t, r) for jl, by in j["win_rates"].items() for t, rows in by.items() for r in rows]
    if pairs:
        lines += ["", "Win rate of model over opponent (ties count half; 95% bootstrap interval).", ""]
        lines += ["| judge | task | model | opponent | win rate | 95% CI | wins / ties / losses |"]
        lines += ["|---" * 7 + "|"]
        for jl, t, r in pairs:
            ci = f"[{r['ci95'][0]:.3f}, {r['ci95'][1]:.3f}]"
            wtl = f"{r['wins']} / {r['ties']} / {r['losses']}"
            lines.append(
                f"| {jl} | {t} | {r['model']} | {r['opponent']} | {r['win_rate']:.3f} | {ci} | {wtl} |"
            )
    return lines
