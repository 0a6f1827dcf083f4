"""The reward-model scorer: (prompt, response) -> a scalar, the same way for training's held-out
accuracy, `llmctl score`, best-of-N and evaluation.

    from llmctl.rm.scorer import Scorer
    scorer = Scorer.load("runs/rm")                    # hf/ + reward.json, offline
    scorer.score([("What is 2+2?", "4"), ([{"role": "user", "content": "Hi"}], "Hello!")])

A pair is rendered through the model's chat template (prompt turns, then the response as the
assistant's turn), exactly as `llmctl rm` rendered it for training; the score is the 1-label
classification head's output at the last token. Sequences over reward.json's max_length keep
their last max_length tokens (the response's end is what the head reads).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from llmctl import hf
from llmctl.errors import UserError
from llmctl.rm.data import Messages, messages

REWARD_JSON = "reward.json"


def as_prompt(value: Any) -> Messages:
    return messages(value, "user", "prompt")


def as_response(value: Any) -> Messages:
    return messages(value, "assistant", "response")


def render_ids(tokenizer: Any, prompt: Messages, response: Messages) -> tuple[list[int], int]:
    """(token ids of prompt + response through the chat template, index of the response's first
    token): the tokens from that index on are the response's (what the LM regulariser learns)."""
    full = list(tokenizer.apply_chat_template(prompt + response, tokenize=True, return_dict=False))
    head = list(
        tokenizer.apply_chat_template(prompt, tokenize=True, add_generation_prompt=True, return_dict=False)
    )
    start = 0
    for a, b in zip(head, full, strict=False):  # a template that is not prefix-stable: the common part
        if a != b:
            break
        start += 1
    return full, start


def score_ids(model: Any, ids: list[list[int]], *, pad_id: int, batch_size: int) -> list[float]:
    """The model's reward for each token sequence, batched by length (right-padded), in order."""
    import torch

    device = next(model.parameters()).device
    order = sorted(range(len(ids)), key=lambda i: len(ids[i]))
    out = [0.0] * len(ids)
    was_training = model.training
    model.eval()
    with torch.no_grad():
        for s in range(0, len(order), batch_size):
            chunk = order[s : s + batch_size]
            width = max(len(ids[i]) for i in chunk)
            batch = torch.full((len(chunk), width), pad_id, dtype=torch.long)
            mask = torch.zeros((len(chunk), width), dtype=torch.long)
            for row, i in enumerate(chunk):
                batch[row, : len(ids[i])] = torch.tensor(ids[i])
                mask[row, : len(ids[i])] = 1
            logits = model(input_ids=batch.to(device), attention_mask=mask.to(device)).logits
            for row, i in enumerate(chunk):
                out[i] = float(logits[row, 0].float())
    if was_training:
        model.train()
    return out


def pairwise(model: Any, examples: list[dict[str, Any]], *, pad_id: int, batch_size: int) -> dict[str, Any]:
    """Held-out pairwise accuracy (r_chosen > r_rejected) and mean margin, overall and per source."""
    chosen = score_ids(model, [e["chosen_ids"] for e in examples], pad_id=pad_id, batch_size=batch_size)
    rejected = score_ids(model, [e["rejected_ids"] for e in examples], pad_id=pad_id, batch_size=batch_size)
    diffs = [c - r for c, r in zip(chosen, rejected, strict=True)]

    def summary(idx: list[int]) -> dict[str, Any]:
        return {
            "pairs": len(idx),
            "accuracy": round(sum(diffs[i] > 0 for i in idx) / max(1, len(idx)), 6),
            "mean_margin": round(sum(diffs[i] for i in idx) / max(1, len(idx)), 6),
        }

    out = summary(list(range(len(examples))))
    sources = sorted({e["source"] for e in examples})
    out["per_source"] = {s: summary([i for i, e in enumerate(examples) if e["source"] == s]) for s in sources}
    subsets = sorted({e.get("subset", e["source"]) for e in examples} - set(sources))
    if subsets:  # a source whose records name their own data set (a `source` column)
        out["per_subset"] = {
            s: summary([i for i, e in enumerate(examples) if e.get("subset") == s]) for s in subsets
        }
    return out


def read_spec(path: Path) -> dict[str, Any]:
    spec = path / REWARD_JSON
    if not spec.is_file():
        raise UserError(f"{path}: not a reward-model artifact (no {REWARD_JSON}); make one with llmctl rm")
    return json.loads(spec.read_text())


@dataclass
class Scorer:
    """A reward-model artifact loaded for scoring (see the module docstring)."""

    model: Any
    tokenizer: Any
    max_length: int
    mean: float = 0.0
    std: float = 1.0
    batch_size: int = 16
    truncated: int = 0

    @classmethod
    def load(
        cls, path: str | Path, *, device: str = "auto", dtype: str = "float32", batch_size: int = 16
    ) -> Scorer | CombinedScorer:
        """The scorer of an rm artifact: one model's, or the weighted combination of its criteria's."""
        path = Path(path)
        info = read_spec(path)
        if "combined" in info:
            parts = {
                name: (
                    Scorer.load(path / c["path"], device=device, dtype=dtype, batch_size=batch_size),
                    c["weight"],
                )
                for name, c in info["combined"].items()
            }
            return CombinedScorer(parts)
        dev = hf.resolve_device(device, key="device")
        model = hf.load_sequence_classifier(
            path / "hf", what=f"reward model {path}", dtype=hf.resolve_dtype(dtype, dev), device=dev
        )
        tokenizer = hf.load_tokenizer(path / "hf", what=f"reward model {path}")
        if info.get("chat_template"):
            tokenizer.chat_template = info["chat_template"]
        return cls(
            model=model,
            tokenizer=tokenizer,
            max_length=int(info["max_length"]),
            mean=float(info.get("reward_mean", 0.0)),
            std=float(info.get("reward_std", 1.0)) or 1.0,
            batch_size=batch_size,
        )

    def ids(self, prompt: Any, response: Any) -> list[int]:
        full, _ = render_ids(self.tokenizer, as_prompt(prompt), as_response(response))
        if len(full) > self.max_length:
            self.truncated += 1
            full = full[-self.max_length :]
        return full

    def score(self, items: list[tuple[Any, Any]]) -> list[float]:
        """Rewards of (prompt, response) items (strings or message lists); a malformed item raises
        llmctl.rm.data.Reject."""
        ids = [self.ids(p, r) for p, r in items]
        return score_ids(self.model, ids, pad_id=self.tokenizer.pad_token_id, batch_size=self.batch_size)

    def normalise(self, score: float) -> float:
        """(score - mean) / std with the training set's statistics (PPO whitens its rewards so)."""
        return (score - self.mean) / self.std


def parts_of(scorer: Any) -> list[Scorer]:
    """The reward models a scorer reads with: itself, or a CombinedScorer's criteria."""
    return [s for s, _ in scorer.parts.values()] if hasattr(scorer, "parts") else [scorer]


@dataclass
class CombinedScorer:
    """Several criteria's reward models (survey 5.2.1) as one score: sum of weight * normalised
    reward, each normalised with its own training statistics so that the weights compare."""

    parts: dict[str, tuple[Scorer, float]]
    mean: float = 0.0
    std: float = 1.0

    @property
    def truncated(self) -> int:
        return sum(s.truncated for s, _ in self.parts.values())

    def score(self, items: list[tuple[Any, Any]]) -> list[float]:
        total = [0.0] * len(items)
        for scorer, weight in self.parts.values():
            for i, s in enumerate(scorer.score(items)):
                total[i] += weight * scorer.normalise(s)
        return total

    def score_each(self, items: list[tuple[Any, Any]]) -> dict[str, list[float]]:
        """Every criterion's raw reward of each item."""
        return {name: scorer.score(items) for name, (scorer, _) in self.parts.items()}

    def normalise(self, score: float) -> float:
        return score  # already a sum of normalised rewards
