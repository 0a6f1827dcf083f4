"""Prompts for `llmctl ppo` and `llmctl bon`, and the policy's answers to them scored by a reward
model: what both stages read, and how both measure "mean reward of the policy's answers".

    from llmctl.ppo.prompts import read_prompts, answer, mean_reward
    prompts = read_prompts(["prompts.jsonl"], system_prompt="")   # [[{"role": "user", ...}], ...]

A prompt record is {"prompt": "text"} or {"prompt": [messages]}, or a chat {"messages": [...]}
whose turns before its last assistant turn are the prompt (an sft file works as is). A record of
another shape, or a file with no prompt at all, is exit 2 naming FILE:LINE.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

from llmctl.errors import UserError
from llmctl.formats import documents
from llmctl.formats.documents import Malformed
from llmctl.rm.data import Messages, Reject, messages


def _prompt_of(row: Any) -> Messages:
    if not isinstance(row, dict):
        raise Reject("bad_record", f"a {type(row).__name__}, not an object")
    if "prompt" in row:
        return messages(row["prompt"], "user", "prompt")
    if "messages" in row and isinstance(row["messages"], list):
        turns = row["messages"]
        last = max(
            (i for i, m in enumerate(turns) if isinstance(m, dict) and m.get("role") == "assistant"),
            default=len(turns),
        )
        head = turns[:last]
        if not head:
            raise Reject("empty_content", "the chat has no turn before its first assistant turn")
        return messages(head, "user", "messages")
    raise Reject("missing_column", "no `prompt` and no `messages`")


def read_prompts(
    paths: list[str | Path], *, system_prompt: str = "", skipped: dict[str, int] | None = None
) -> list[Messages]:
    """Every prompt of `paths` as a message list. A record of the wrong shape (no prompt, no
    messages; bad JSON) is exit 2 naming FILE:LINE; a chat with no turn before its assistant turn
    (or an empty turn) is skipped and counted in `skipped` by reason; no prompt at all is exit 2."""
    if not paths:
        raise UserError("--prompts: no prompt file given")
    out: list[Messages] = []
    for src, line, row in documents.rows(documents.expand([str(p) for p in paths])):
        where = f"{src.path}:{line}"
        if isinstance(row, Malformed):
            raise UserError(f"{where}: {row.reason}")
        try:
            prompt = _prompt_of(row)
        except Reject as r:
            if r.reason in ("missing_column", "bad_record"):
                raise UserError(
                    f"{where}: not a prompt record ({r}); expected {{prompt}} or {{messages}}"
                ) from None
            if skipped is not None:
                skipped[r.reason] = skipped.get(r.reason, 0) + 1
            continue
        if system_prompt and prompt[0]["role"] != "system":
            prompt = [{"role": "system", "content": system_prompt}, *prompt]
        out.append(prompt)
    if not out:
        raise UserError(f"--prompts {', '.join(str(p) for p in paths)}: no prompts (the file is empty)")
    return out


def split(prompts: list[Messages], held_out: int, seed: int) -> tuple[list[Messages], list[Messages]]:
    """(train, held-out): a seeded sample of `held_out` prompts kept apart; exit 2 when nothing is left."""
    if len(prompts) <= held_out:
        raise UserError(
            f"--prompts: {len(prompts)} prompts, but data.held_out={held_out} are kept out of training; "
            "give more prompts or lower data.held_out"
        )
    idx = list(range(len(prompts)))
    random.Random(f"{seed}:held_out").shuffle(idx)
    keep = set(idx[:held_out])
    return [p for i, p in enumerate(prompts) if i not in keep], [
        p for i, p in enumerate(prompts) if i in keep
    ]


def prompt_ids(tokenizer: Any, prompt: Messages) -> list[int]:
    """The prompt through the chat template with the generation prompt (what the policy continues)."""
    return list(
        tokenizer.apply_chat_template(prompt, tokenize=True, add_generation_prompt=True, return_dict=False)
    )


def answer(
    model: Any,
    tokenizer: Any,
    prompts: list[Messages],
    *,
    max_new_tokens: int,
    stop_id: int,
    batch_size: int = 16,
    sample: bool = False,
    temperature: float = 1.0,
    top_p: float = 1.0,
    n: int = 1,
) -> list[list[str]]:
    """The policy's responses to each prompt (greedy, or `n` samples), decoded up to the stop token."""
    import torch

    from llmctl import hf

    device = next(model.parameters()).device
    gen = hf.generation_config(
        max_new_tokens=max_new_tokens,
        do_sample=sample,
        temperature=temperature if sample else None,
        top_p=top_p if sample else None,
        top_k=None,
        num_return_sequences=n,
        eos_token_id=stop_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    out: list[list[str]] = []
    was_training = model.training
    model.eval()
    with torch.no_grad():
        for s in range(0, len(prompts), batch_size):
            chunk = [prompt_ids(tokenizer, p) for p in prompts[s : s + batch_size]]
            width = max(len(c) for c in chunk)
            ids = torch.full((len(chunk), width), tokenizer.pad_token_id, dtype=torch.long)
            mask = torch.zeros((len(chunk), width), dtype=torch.long)
            for row, c in enumerate(chunk):  # left padding: generation continues every row at its end
                ids[row, width - len(c) :] = torch.tensor(c)
                mask[row, width - len(c) :] = 1
            seqs = model.generate(
                input_ids=ids.to(device), attention_mask=mask.to(device), generation_config=gen
            )
            for row in range(len(chunk)):
                rows = (seqs[row * n + k, width:].tolist() for k in range(n))
                out.append([response_text(tokenizer, new, stop_id) for new in rows])
    if was_training:
        model.train()
    return out


def response_text(tokenizer: Any, ids: list[int], stop_id: int) -> str:
    """A generated response's text: its tokens up to the stop token, pads dropped, decoded."""
    if stop_id in ids:
        ids = ids[: ids.index(stop_id)]
    return tokenizer.decode([t for t in ids if t != tokenizer.pad_token_id], skip_special_tokens=True).strip()


def scored_ids(scorer: Any, prompt: Messages, response: str) -> list[int]:
    """The token ids an rm Scorer reads for (prompt, response text): the conversation through the
    reward model's chat template, its last max_length tokens."""
    from llmctl.rm.scorer import as_prompt, render_ids

    full, _ = render_ids(scorer.tokenizer, as_prompt(prompt), [{"role": "assistant", "content": response}])
    return full[-scorer.max_length :]


def score(scorer: Any, prompts: list[Messages], responses: list[str]) -> list[float]:
    """The reward model's raw score of each (prompt, response), rendered as Scorer.score renders
    them; an empty response is scored too (Scorer.score rejects empty text, but an empty answer is
    the policy's answer all the same)."""
    from llmctl.rm.scorer import score_ids

    if hasattr(scorer, "parts"):  # a combined scorer: the weighted sum of normalised criteria
        total = [0.0] * len(responses)
        for part, weight in scorer.parts.values():
            for i, s in enumerate(score(part, prompts, responses)):
                total[i] += weight * part.normalise(s)
        return total
    ids = [scored_ids(scorer, p, r) for p, r in zip(prompts, responses, strict=True)]
    return score_ids(scorer.model, ids, pad_id=scorer.tokenizer.pad_token_id, batch_size=scorer.batch_size)


def mean_reward(
    model: Any,
    tokenizer: Any,
    scorer: Any,
    prompts: list[Messages],
    *,
    max_new_tokens: int,
    stop_id: int,
    batch_size: int = 16,
) -> tuple[float, list[str], list[float]]:
    """Mean reward of the policy's greedy answers to `prompts`, with the answers and their rewards."""
    texts = [
        t[0]
        for t in answer(
            model, tokenizer, prompts, max_new_tokens=max_new_tokens, stop_id=stop_id, batch_size=batch_size
        )
    ]
    rewards = score(scorer, prompts, texts)
    return sum(rewards) / len(rewards), texts, rewards
