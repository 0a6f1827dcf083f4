"""Multiple choice with one context encoding per item: the choices scored against a cached prefix.

    llmctl eval MODEL --out DIR --tasks mmlu.yaml            # shared_context=true (the default)
    llmctl eval MODEL --out DIR --tasks mmlu.yaml --set shared_context=false   # lm-eval's way

lm-eval (and `LM.loglikelihood`) runs context + choice through the model once per choice, so a
four-way MMLU item encodes its few hundred context tokens four times. Here the requests that share
a context are grouped; the contexts of a batch of groups run once (left-padded, explicit position
ids so that padding changes nothing, only the last position's logits kept), and every choice of
every group continues from that key/value cache in one more batched pass over the choices'
tokens alone. The tokens scored are exactly those of `LM.encode_pair` (the context's own encoding,
then the continuation's), so the log-likelihoods equal the per-choice path up to float rounding.

A group whose context + choice would be left-truncated, or that has one request only, takes the
per-choice path (`LM.loglikelihood`): nothing is shared there.
"""

from __future__ import annotations

import copy
import inspect
from dataclasses import dataclass

import torch

from llmctl.console import progress
from llmctl.eval.lm import LM


@dataclass
class Group:
    context: list[int]
    requests: list[tuple[int, list[int]]]  # (index in the request list, continuation tokens)


def groups(lm: LM, requests: list[tuple[str, str]]) -> tuple[list[Group], list[int]]:
    """The requests that share a context, as groups, and the indexes left to the per-choice path."""
    by_context: dict[str, list[int]] = {}
    for i, (context, _) in enumerate(requests):
        by_context.setdefault(context, []).append(i)
    out, alone = [], []
    for context, idx in by_context.items():
        pairs = [lm.encode_pair(context, requests[i][1]) for i in idx]
        ctx = pairs[0][0]
        fits = all(c and len(ctx) + len(c) - 1 <= lm.max_length for _, c in pairs)
        if len(idx) < 2 or not fits or any(p[0] != ctx for p in pairs):
            alone += idx
            continue
        out.append(Group(ctx, [(i, c) for i, (_, c) in zip(idx, pairs, strict=True)]))
    return out, alone


@torch.no_grad()
def loglikelihood(lm: LM, requests: list[tuple[str, str]], description: str) -> list[tuple[float, bool]]:
    """(sum of log p(continuation | context), greedy?) per request, as LM.loglikelihood returns."""
    shared, alone = groups(lm, requests)
    results: list[tuple[float, bool]] = [(0.0, False)] * len(requests)
    if alone:
        for i, r in zip(alone, lm.loglikelihood([requests[i] for i in alone], description), strict=True):
            results[i] = r
    shared.sort(key=lambda g: (-len(g.context), g.context))  # similar lengths together: less padding
    with progress() as bar:
        task = bar.add_task(description, total=sum(len(g.requests) for g in shared), unit="requests")
        for start in range(0, len(shared), lm.batch_size):
            batch = shared[start : start + lm.batch_size]
            for i, r in _score(lm, batch):
                results[i] = r
            bar.advance(task, sum(len(g.requests) for g in batch))
    return results


def _score(lm: LM, batch: list[Group]) -> list[tuple[int, tuple[float, bool]]]:
    """One pass over the batch's contexts, one over all their choices from the cache."""
    device = lm.device
    ids, mask = lm._pad([g.context for g in batch], left=True)  # every context ends at the last column
    positions = (mask.cumsum(-1) - 1).clamp(min=0)
    accepted = inspect.signature(lm.model.forward).parameters
    # only the last position predicts a choice's first token: skip the vocabulary projection elsewhere
    last_only = {"logits_to_keep": 1} if "logits_to_keep" in accepted else {}
    out = lm.model(
        input_ids=ids.to(device),
        attention_mask=mask.to(device),
        position_ids=positions.to(device),
        use_cache=True,
        **last_only,
    )
    first = torch.log_softmax(out.logits[:, -1].float(), dim=-1)
    rows = [(k, i, cont) for k, g in enumerate(batch) for i, cont in g.requests]
    # per choice: the log-probabilities of its tokens, summed at the end in one float32 sum as
    # LM.loglikelihood sums them (same order, so the totals agree to rounding of the terms alone)
    token_lps: dict[int, list[torch.Tensor]] = {}
    greedy: dict[int, bool] = {}
    for k, i, cont in rows:
        token_lps[i] = [first[k, cont[0]].reshape(1)]
        greedy[i] = int(first[k].argmax()) == cont[0]
    # the choices' remaining tokens, longest first, batch_size rows per pass: a long answer pads
    # only its own pass (one pass for all rows spends most of its time on padding)
    rest = sorted(((k, i, cont) for k, i, cont in rows if len(cont) > 1), key=lambda r: -len(r[2]))
    # transformers 5.2x renamed past_key_values to cache (the old name still works, with a warning)
    new_name = "cache" in accepted
    cache = out.cache if new_name else out.past_key_values
    for start in range(0, len(rest), lm.batch_size):
        sub = rest[start : start + lm.batch_size]
        last = start + lm.batch_size >= len(rest)
        # a copy for all but the last pass: reorder_cache and the pass itself change the cache
        sub_cache = cache if last else copy.deepcopy(cache)
        select = torch.tensor([k for k, _, _ in sub], device=device)
        sub_cache.reorder_cache(select)  # one copy of its context's keys/values per choice
        tails, tail_mask = lm._pad([cont[:-1] for _, _, cont in sub], left=False)
        lengths = torch.tensor([len(batch[k].context) for k, _, _ in sub])
        tail_positions = lengths[:, None] + torch.arange(tails.shape[1])[None, :]
        logits = lm.model(
            input_ids=tails.to(device),
            attention_mask=torch.cat([mask[select.cpu()], tail_mask], dim=1).to(device),
            position_ids=tail_positions.to(device),
            **({"cache": sub_cache} if new_name else {"past_key_values": sub_cache}),
            use_cache=True,
        ).logits
        logprobs = torch.log_softmax(logits.float(), dim=-1)
        for r, (_, i, cont) in enumerate(sub):
            lp = logprobs[r, : len(cont) - 1]
            target = torch.tensor(cont[1:], device=lp.device)
            token_lps[i].append(lp.gather(1, target[:, None])[:, 0])
            greedy[i] = greedy[i] and bool((lp.argmax(-1) == target).all())
    return [(i, (float(torch.cat(token_lps[i]).sum()), greedy[i])) for i in token_lps]
