"""Set-level de-duplication: evaluation sets vs training documents, by shared word n-grams.

`load_eval_sets` reads `--against` JSONL files into n-gram hash tables (the same normalization
and hashing as the training side). The Bloom index of the kept documents' n-grams that `llmctl
eval` queries is an on-disk format shared by both stages: `llmctl.formats.ngrams.NgramIndex`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from llmctl.errors import UserError
from llmctl.formats.documents import read_small_jsonl
from llmctl.formats.ngrams import text_ngrams


@dataclass
class EvalSet:
    name: str
    path: Path
    examples: list[np.ndarray]  # n-gram hashes per example
    table: np.ndarray  # sorted unique n-gram hashes of all examples


def eval_text(obj: dict, fields: list[str]) -> str:
    parts = []
    for f in fields:
        v = obj.get(f)
        if isinstance(v, str):
            parts.append(v)
        elif isinstance(v, list):
            parts.extend(x for x in v if isinstance(x, str))
    return "\n".join(parts)


def load_eval_sets(paths: list[Path], fields: list[str], n: int) -> list[EvalSet]:
    sets = []
    names = set()
    for path in paths:
        if not path.is_file():
            raise UserError(f"--against {path}: no such file")
        name = path.name.split(".")[0]
        if name in names:
            raise UserError(f"--against {path}: an evaluation set named '{name}' is given twice")
        names.add(name)
        examples = []
        for line_no, obj in read_small_jsonl(path):
            text = eval_text(obj, fields) if isinstance(obj, dict) else ""
            if not text:
                raise UserError(
                    f"{path}:{line_no}: none of the fields {', '.join(fields)} holds text; "
                    "set contamination.text_fields"
                )
            examples.append(text_ngrams(text, n))
        if not examples:
            raise UserError(f"--against {path}: no examples")
        table = np.unique(np.concatenate(examples)) if examples else np.zeros(0, np.uint64)
        sets.append(EvalSet(name, path, examples, table))
    return sets
