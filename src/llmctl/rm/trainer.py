"""TRL's RewardTrainer with the survey's language-modelling regulariser (5.2.3): the loss is

    -log sigmoid(r_chosen - r_rejected [- margin])  [+ center_rewards_coefficient * mean((r_c + r_r)^2)]
    + lm_weight * CE(next token | chosen response tokens)

The first two terms are TRL's own (RewardTrainer.compute_loss); the third is added here. It is a
subclass, not a callback, because the LM loss is computed from the hidden states of the same
forward pass and must enter the loss that is back-propagated, which callbacks cannot reach.

Imported only inside `llmctl rm` (it imports trl). The LM head is the model's own tied input
embeddings when the checkpoint ties them, else the causal LM's output projection, frozen (the
reward model has no LM head and saves none).
"""

from __future__ import annotations

import os
from typing import Any

from llmctl import hf

os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")
hf.offline()  # before transformers/huggingface_hub read the environment

import torch  # noqa: E402
from transformers import PreTrainedModel  # noqa: E402
from trl import RewardConfig, RewardTrainer  # noqa: E402
from trl.trainer.reward_trainer import DataCollatorForPreference  # noqa: E402

__all__ = ["PairCollator", "RegularisedRewardTrainer", "RewardConfig", "lm_loss"]


class PairCollator(DataCollatorForPreference):
    """TRL's preference collator plus `lm_labels`: the chosen sequences' ids with the prompt (its
    first `chosen_start` tokens) and the padding set to -100."""

    def torch_call(self, examples: list[dict[str, Any]]) -> dict[str, Any]:
        out = super().torch_call(examples)
        if "chosen_start" in examples[0]:
            n = len(examples)
            labels = out["input_ids"][:n].clone()
            labels[out["attention_mask"][:n] == 0] = -100
            for i, ex in enumerate(examples):
                labels[i, : ex["chosen_start"]] = -100
            out["lm_labels"] = labels
        return out


def lm_loss(hidden: torch.Tensor, head: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Mean next-token cross-entropy over the labelled positions (as AutoModelForCausalLM's loss):
    position t predicts labels[t + 1]; only those positions are projected onto the vocabulary."""
    target = labels[:, 1:]
    keep = target != -100
    if not keep.any():
        return hidden.sum() * 0.0
    logits = hidden[:, :-1][keep].float() @ head.float().T
    return torch.nn.functional.cross_entropy(logits, target[keep])


def _classifier(model: torch.nn.Module) -> PreTrainedModel:
    """The *ForSequenceClassification model inside `model` (itself, or inside a PeftModel)."""
    for m in model.modules():
        if isinstance(m, PreTrainedModel) and type(m).__name__.endswith("ForSequenceClassification"):
            return m
    raise TypeError(f"no sequence-classification model in {type(model).__name__}")


class RegularisedRewardTrainer(RewardTrainer):
    """RewardTrainer + lm_weight * the LM loss on the chosen responses (see the module docstring)."""

    def __init__(self, *args: Any, lm_weight: float = 0.0, lm_head: torch.Tensor | None = None, **kw: Any):
        super().__init__(*args, **kw)
        self.lm_weight = lm_weight
        self._lm_head = lm_head
        self._hidden: torch.Tensor | None = None
        if lm_weight > 0:
            clf = _classifier(self.model)
            backbone = getattr(clf, clf.base_model_prefix)
            backbone.register_forward_hook(self._keep_hidden)
            self._embeddings = clf.get_input_embeddings()

    def _keep_hidden(self, module: Any, args: Any, output: Any) -> None:
        self._hidden = output.last_hidden_state if hasattr(output, "last_hidden_state") else output[0]

    def _set_signature_columns_if_needed(self) -> None:
        super()._set_signature_columns_if_needed()
        if "chosen_start" not in self._signature_columns:
            self._signature_columns = [*self._signature_columns, "chosen_start"]

    def head(self) -> torch.Tensor:
        if self._lm_head is None:  # tied: the embeddings are the LM head
            return self._embeddings.weight
        self._lm_head = self._lm_head.to(self._hidden.device)
        return self._lm_head

    def compute_loss(
        self, model: Any, inputs: dict[str, Any], return_outputs: bool = False, num_items_in_batch: Any = None
    ) -> Any:
        labels = inputs.pop("lm_labels", None)
        loss, outputs = super().compute_loss(
            model, inputs, return_outputs=True, num_items_in_batch=num_items_in_batch
        )
        if self.lm_weight > 0 and labels is not None:
            hidden = self._hidden[: labels.shape[0]]  # the chosen half of the batch
            lm = lm_loss(hidden, self.head(), labels)
            loss = loss + self.lm_weight * lm
            mode = "train" if self.model.training else "eval"
            self._metrics[mode]["lm_loss"].append(lm.detach().item())
        return (loss, outputs) if return_outputs else loss
