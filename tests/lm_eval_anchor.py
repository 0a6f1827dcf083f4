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


def lm_eval_mc(
    model_dir: Path, task_yaml: Path, *, limit: int | None = None, batch_size: int = 8
) -> dict[str, Any]:
    """{"acc", "acc_norm", "loglikelihoods": per item, per choice} from lm-eval's HF model."""
    os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import lm_eval
    from lm_eval.tasks import TaskManager

    spec = yaml.safe_load(task_yaml.read_text())
    assert spec["type"] == "multiple_choice" and not spec.get("num_fewshot")
    name = "llmctl_" + re.sub(r"\W", "_", spec["name"])
    task = {
        "task": name,
        "dataset_path": "json",
        "dataset_kwargs": {"data_files": {"test": str((task_yaml.parent / spec["data"]).resolve())}},
        "test_split": "test",
        "output_type": "multiple_choice",
        "doc_to_text": re.sub(r"\{(\w+)\}", r"{{\1}}", spec["prompt"]),
        "doc_to_choice": "{{choices}}",
        "doc_to_target": "{{answer}}",
        "target_delimiter": spec.get("target_delimiter", " "),
        "metric_list": [
            {"metric": "acc", "aggregation": "mean", "higher_is_better": True},
            {"metric": "acc_norm", "aggregation": "mean", "higher_is_better": True},
        ],
        "num_fewshot": 0,
    }
    with tempfile.TemporaryDirectory() as d:
        (Path(d) / f"{name}.yaml").write_text(yaml.safe_dump(task, allow_unicode=True))
        out = lm_eval.simple_evaluate(
            model="hf",
            model_args=f"pretrained={model_dir},dtype=float32",
            tasks=[name],
            task_manager=TaskManager(include_path=d),
            batch_size=batch_size,
            device="cpu",
            limit=limit,
            log_samples=True,
        )
    scores = out["results"][name]
    samples = sorted(out["samples"][name], key=lambda s: s["doc_id"])
    return {
        "acc": scores["acc,none"],
        "acc_norm": scores["acc_norm,none"],
        "loglikelihoods": [[float(r[0]) for r in s["filtered_resps"]] for s in samples],
    }


def lm_eval_generate(
    model_dir: Path, task_yaml: Path, *, max_gen_toks: int, until: list[str], batch_size: int = 8
) -> list[str]:
    """lm-eval's greedy generate_until answers (zero-shot) to an llmctl generation task's items."""
    os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import lm_eval
    from lm_eval.tasks import TaskManager

    spec = yaml.safe_load(task_yaml.read_text())
    assert spec["type"] == "generation"
    name = "llmctl_gen_" + re.sub(r"\W", "_", spec["name"])
    task = {
        "task": name,
        "dataset_path": "json",
        "dataset_kwargs": {"data_files": {"test": str((task_yaml.parent / spec["data"]).resolve())}},
        "test_split": "test",
        "output_type": "generate_until",
        "doc_to_text": re.sub(r"\{(\w+)\}", r"{{\1}}", spec["prompt"]),
        "doc_to_target": "{{answer}}",
        "generation_kwargs": {"until": until, "do_sample": False, "max_gen_toks": max_gen_toks},
        "metric_list": [{"metric": "exact_match", "aggregation": "mean", "higher_is_better": True}],
        "num_fewshot": 0,
    }
    with tempfile.TemporaryDirectory() as d:
        (Path(d) / f"{name}.yaml").write_text(yaml.safe_dump(task, allow_unicode=True))
        out = lm_eval.simple_evaluate(
            model="hf",
            model_args=f"pretrained={model_dir},dtype=float32",
            tasks=[name],
            task_manager=TaskManager(include_path=d),
            batch_size=batch_size,
            device="cpu",
            log_samples=True,
        )
    samples = sorted(out["samples"][name], key=lambda s: s["doc_id"])
    return [s["resps"][0][0] for s in samples]
