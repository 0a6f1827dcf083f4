"""lm-evaluation-harness on an llmctl task: the parity anchor of `llmctl eval`.

The llmctl task YAML becomes an lm-eval task over the same local JSONL (its `json` dataset
loader, offline): the same prompt (Jinja instead of str.format), choices, target delimiter.
"""

from __future__ import annotations

import os
import re
import tempfile
from pathlib import Path
from typing import Any

import yaml


def _common(task_yaml: Path, kind: str) -> tuple[str, dict[str, Any]]:
    """The lm-eval task fields every llmctl task maps to the same way: local JSONL, prompt, zero-shot
    (compare with `llmctl eval --num-fewshot 0` when the task has demonstrations)."""
    spec = yaml.safe_load(task_yaml.read_text())
    assert spec["type"] == kind
    name = f"llmctl_{kind}_" + re.sub(r"\W", "_", spec["name"])
    return name, {
        "task": name,
        "dataset_path": "json",
        "dataset_kwargs": {"data_files": {"test": str((task_yaml.parent / spec["data"]).resolve())}},
        "test_split": "test",
        "doc_to_text": re.sub(r"\{(\w+)\}", r"{{\1}}", spec["prompt"]),
        "doc_to_target": "{{answer}}",
        "num_fewshot": 0,
        **({"target_delimiter": spec.get("target_delimiter", " ")} if kind == "multiple_choice" else {}),
    }


def _evaluate(model_dir: Path, name: str, task: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
    """lm-eval's HF model on one task written to a temporary include path (offline)."""
    os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import lm_eval
    from lm_eval.tasks import TaskManager

    with tempfile.TemporaryDirectory() as d:
        (Path(d) / f"{name}.yaml").write_text(yaml.safe_dump(task, allow_unicode=True))
        out = lm_eval.simple_evaluate(
            model="hf",
            model_args=f"pretrained={model_dir},dtype=float32",
            tasks=[name],
            task_manager=TaskManager(include_path=d),
            device="cpu",
            log_samples=True,
            **kwargs,
        )
    out["samples"][name].sort(key=lambda s: s["doc_id"])
    return out


def lm_eval_mc(
    model_dir: Path, task_yaml: Path, *, limit: int | None = None, batch_size: int = 8
) -> dict[str, Any]:
    """{"acc", "acc_norm", "loglikelihoods": per item, per choice} from lm-eval's HF model."""
    assert not yaml.safe_load(task_yaml.read_text()).get("num_fewshot"), "zero-shot tasks only"
    name, task = _common(task_yaml, "multiple_choice")
    task |= {
        "output_type": "multiple_choice",
        "doc_to_choice": "{{choices}}",
        "metric_list": [
            {"metric": "acc", "aggregation": "mean", "higher_is_better": True},
            {"metric": "acc_norm", "aggregation": "mean", "higher_is_better": True},
        ],
    }
    out = _evaluate(model_dir, name, task, batch_size=batch_size, limit=limit)
    scores = out["results"][name]
    return {
        "acc": scores["acc,none"],
        "acc_norm": scores["acc_norm,none"],
        "loglikelihoods": [[float(r[0]) for r in s["filtered_resps"]] for s in out["samples"][name]],
    }


def lm_eval_generate(
    model_dir: Path, task_yaml: Path, *, max_gen_toks: int, until: list[str], batch_size: int = 8
) -> list[str]:
    """lm-eval's greedy generate_until answers (zero-shot) to an llmctl generation task's items."""
    name, task = _common(task_yaml, "generation")
    task |= {
        "output_type": "generate_until",
        "generation_kwargs": {"until": until, "do_sample": False, "max_gen_toks": max_gen_toks},
        "metric_list": [{"metric": "exact_match", "aggregation": "mean", "higher_is_better": True}],
    }
    out = _evaluate(model_dir, name, task, batch_size=batch_size)
    return [s["resps"][0][0] for s in out["samples"][name]]
