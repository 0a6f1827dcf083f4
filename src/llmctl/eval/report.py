"""results.json -> report.md (comparison tables) and charts/TASK.png (bars across models).

The first table compares every model side by side: one row per task and metric (perplexity
included), then each --judge's mean reward per generation task, then size (parameters, weights
on disk: a GPTQ model beside its fp parent). `make demo` prints that table."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def _cell(v: dict[str, Any]) -> str:
    if v["value"] is None:
        return "—"
    text = f"{v['value']:.4f}"
    return text + (f" ± {v['stderr']:.4f}" if v.get("stderr") is not None else "")


def _mb(n: int | None) -> str:
    return "—" if n is None else f"{n / 1e6:.2f} MB"


def _side_by_side(results: dict[str, Any], models: list[str]) -> list[str]:
    """The rows under the task rows that complete the comparison: each judge's mean reward per
    generation task (--judge), then the size of each model (parameters, weights on disk)."""
    rows = []
    judge = results.get("judge") or {}
    for jl, by_model in judge.get("rewards", {}).items():
        for name, task in results["tasks"].items():
            if not all(name in by_model.get(m, {}) for m in models):
                continue  # not a generation task: nothing to judge
            cells = [_cell(by_model[m][name]) for m in models]
            shots = task["num_fewshot"]
            row = f"| {name} | {task['version']} | {task['items']} | {shots} | reward ({jl}) | "
            rows.append(row + " | ".join(cells) + " |")
    info = results["models"]
    params = [f"{info[m]['parameters']:,}" if info[m].get("parameters") is not None else "—" for m in models]
    rows.append("| size | — | — | — | parameters | " + " | ".join(params) + " |")
    disk = [_mb(info[m].get("weight_bytes")) for m in models]
    rows.append("| size | — | — | — | weights on disk | " + " | ".join(disk) + " |")
    return rows


def _delta(fp: float | None, q: float | None) -> str:
    if fp is None or q is None:
        return "— | —"
    rel = f"{(q - fp) / abs(fp) * 100:+.2f}%" if fp else "—"
    return f"{q - fp:+.4f} | {rel}"


def _quantized_deltas(results: dict[str, Any], models: list[str]) -> list[str]:
    """A table per quantized model evaluated beside the fp model it was quantized from (eval's
    `quantized_from`): every metric of both, each judge's mean reward, the weights on disk, and
    the change (absolute and relative)."""
    info = results["models"]
    by_path = {info[m]["path"]: m for m in models}
    pairs = [
        (by_path[info[q]["quantized_from"]], q) for q in models if info[q].get("quantized_from") in by_path
    ]
    lines: list[str] = []

    def row(task: str, metric: str, a: dict[str, Any], b: dict[str, Any]) -> None:
        lines.append(f"| {task} | {metric} | {_cell(a)} | {_cell(b)} | {_delta(a['value'], b['value'])} |")

    for fp, q in pairs:
        lines += ["", f"## Quantized vs full precision: {q} against {fp}", ""]
        lines += [f"| task | metric | {fp} | {q} | change | relative |", "|---" * 6 + "|"]
        for name, task in results["tasks"].items():
            for m in task["metrics"]:
                row(name, m, results["scores"][fp][name]["all"][m], results["scores"][q][name]["all"][m])
        for jl, by_model in (results.get("judge") or {}).get("rewards", {}).items():
            for name in results["tasks"]:
                if name in by_model.get(fp, {}) and name in by_model.get(q, {}):
                    row(name, f"reward ({jl})", by_model[fp][name], by_model[q][name])
        a, b = (info[x].get("weight_bytes") for x in (fp, q))
        mb = [None if v is None else v / 1e6 for v in (a, b)]
        lines.append(f"| size | weights on disk (change in MB) | {_mb(a)} | {_mb(b)} | {_delta(*mb)} |")
    return lines


def write_report(results: dict[str, Any], out: Path) -> None:
    models = list(results["models"])
    scores = results["scores"]
    lines = ["# llmctl eval report", ""]
    lines += ["| task | version | items | shots | metric | " + " | ".join(models) + " |"]
    lines += ["|---" * (5 + len(models)) + "|"]
    for name, task in results["tasks"].items():
        for m in task["metrics"]:
            cells = [_cell(scores[label][name]["all"][m]) for label in models]
            shots = task["num_fewshot"] if task["type"] != "perplexity" else "—"
            lines.append(
                f"| {name} | {task['version']} | {task['items']} | {shots} | {m} | "
                + " | ".join(cells)
                + " |"
            )
    lines += _side_by_side(results, models)
    lines += _quantized_deltas(results, models)
    contaminated = [
        (label, name)
        for label in models
        for name in results["tasks"]
        if "contaminated" in scores[label][name]
    ]
    if contaminated:
        lines += ["", "## Contamination", ""]
        lines += [
            "Items whose 13-grams occur in the model's training data: the n-gram index of every stage in "
            "its lineage (dedup's pre-training data; sft, rm, dpo, ppo's training text). `from`: the "
            "stage whose data holds them.",
            "",
        ]
        lines += [
            "| model | task | metric | all | clean | contaminated | from |",
            "|---|---|---|---|---|---|---|",
        ]
        for label, name in contaminated:
            s = scores[label][name]
            m = results["tasks"][name]["metrics"][0]
            parts = [f"{_cell(s[k][m])} (n={s[k]['n']})" for k in ("all", "clean", "contaminated")]
            parts.append(", ".join(f"{k}: {v}" for k, v in s.get("contaminated_by", {}).items()) or "—")
            lines.append(f"| {label} | {name} | {m} | " + " | ".join(parts) + " |")
        from llmctl.contamination import report_lines as item_lines

        listed = [x for label, name in contaminated for x in item_lines(label, name, scores[label][name])]
        lines += (
            ["", "Contaminated items and the stages whose training data hold them:", "", *listed]
            if listed
            else []
        )
    from llmctl.eval.judge import report_lines

    lines += report_lines(results)
    header = "| model | path | parameters | weights on disk | device, dtype | lineage sha256 |"
    lines += ["", "## Models", "", header, "|---" * 6 + "|"]
    for label, info in results["models"].items():
        ran = f"{info.get('device', '?')}, {info.get('dtype', '?')}"
        sha = info["lineage_sha256"][:16]
        disk = _mb(info.get("weight_bytes"))
        lines.append(f"| {label} | {info['path']} | {info['parameters']:,} | {disk} | {ran} | {sha} |")
    lines += ["", f"Seed {results['seed']}. Charts: `charts/`. Per-item scores: `items/`.", ""]
    (out / "report.md").write_text("\n".join(lines))
    _charts(results, out / "charts")


def _charts(results: dict[str, Any], out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out.mkdir(parents=True, exist_ok=True)
    models = list(results["models"])
    for name, task in results["tasks"].items():
        metric = task["metrics"][0]
        values = [results["scores"][m][name]["all"][metric] for m in models]
        fig, ax = plt.subplots(figsize=(max(4, 1.2 * len(models) + 2), 3.2), dpi=100)
        heights = [v["value"] or 0.0 for v in values]
        errors = [v["stderr"] or 0.0 for v in values]
        ax.bar(models, heights, yerr=errors, capsize=4, color="#4878a8")
        ax.set_title(f"{name} (v{task['version']})")
        ax.set_ylabel(metric + (" (lower is better)" if task["type"] == "perplexity" else ""))
        for i, h in enumerate(heights):
            ax.annotate(f"{h:.3f}", (i, h), ha="center", va="bottom", fontsize=8)
        fig.tight_layout()
        fig.savefig(out / f"{name}.png", metadata={"Software": None})
        plt.close(fig)
