"""results.json -> report.md (comparison tables) and charts/TASK.png (bars across models)."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def _cell(v: dict[str, Any]) -> str:
    if v["value"] is None:
        return "—"
    text = f"{v['value']:.4f}"
    return text + (f" ± {v['stderr']:.4f}" if v.get("stderr") is not None else "")


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
    header = "| model | path | parameters | device, dtype | lineage sha256 |"
    lines += ["", "## Models", "", header, "|---|---|---|---|---|"]
    for label, info in results["models"].items():
        ran = f"{info.get('device', '?')}, {info.get('dtype', '?')}"
        sha = info["lineage_sha256"][:16]
        lines.append(f"| {label} | {info['path']} | {info['parameters']:,} | {ran} | {sha} |")
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
