"""Held-out measures of a DPO policy against its reference, computed the same way before and
after training (independent of the trainer, so they are comparable across losses):

  - implicit reward r(x, y) = beta * (log pi(y|x) - log pi_ref(y|x)), log-probs summed over the
    response tokens; preference accuracy = share of pairs with r(chosen) > r(rejected), a tie
    counting one half (before training pi == pi_ref, every reward is 0: accuracy 0.5 exactly);
    reward margin = mean of r(chosen) - r(rejected);
  - KL to the reference: the exact next-token KL(pi || pi_ref) over the whole vocabulary at every
    response position of the held-out chosen and rejected responses (teacher-forced on those
    responses, not on samples from pi), as a mean per token and a mean per response (summed);
  - the reference's own preference: share of pairs with log pi_ref(chosen) > log pi_ref(rejected).

    m = measure(policy, reference_logits, held_out, beta=0.1, pad_id=0, batch_size=16)
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

TIE = 1e-6  # |r_c - r_r| below this is a tie (identical weights give exactly 0)


def _batch(examples: list[dict[str, Any]], pad_id: int, device: Any) -> tuple[Any, Any, Any]:
    """(ids, attention mask, response mask) for the chosen then the rejected sequences, right-padded;
    the response mask marks the positions whose *next* token is a response token."""
    import torch

    seqs = [(e["chosen_ids"], e["chosen_start"]) for e in examples]
    seqs += [(e["rejected_ids"], e["rejected_start"]) for e in examples]
    width = max(len(s) for s, _ in seqs)
    ids = torch.full((len(seqs), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(seqs), width), dtype=torch.long)
    resp = torch.zeros((len(seqs), width - 1), dtype=torch.bool)
    for i, (s, start) in enumerate(seqs):
        ids[i, : len(s)] = torch.tensor(s)
        mask[i, : len(s)] = 1
        resp[i, max(0, start - 1) : len(s) - 1] = True
    return ids.to(device), mask.to(device), resp.to(device)


def measure(
    policy: Any,
    reference: Callable[[Any, Any], Any],
    examples: list[dict[str, Any]],
    *,
    beta: float,
    pad_id: int,
    batch_size: int,
) -> dict[str, Any]:
    """The module docstring's measures over `examples` (dicts with chosen_ids/rejected_ids and
    their response starts); `reference(ids, mask)` returns the reference's logits."""
    import torch

    device = next(policy.parameters()).device
    was_training = policy.training
    policy.eval()
    rewards: list[tuple[float, float, float, float]] = []  # r_c, r_r, ref_lp_c, ref_lp_r
    kl_sum, kl_tokens, per_source = 0.0, 0, {}
    with torch.no_grad():
        for s in range(0, len(examples), batch_size):
            chunk = examples[s : s + batch_size]
            ids, mask, resp = _batch(chunk, pad_id, device)
            logp = torch.log_softmax(policy(input_ids=ids, attention_mask=mask).logits[:, :-1].float(), -1)
            ref = torch.log_softmax(reference(ids, mask)[:, :-1].float(), -1)
            target = ids[:, 1:].unsqueeze(-1)
            lp = (logp.gather(-1, target).squeeze(-1) * resp).sum(-1)
            ref_lp = (ref.gather(-1, target).squeeze(-1) * resp).sum(-1)
            kl = (logp.exp() * (logp - ref)).sum(-1)  # per position, KL(pi || pi_ref) over the vocabulary
            kl_sum += float((kl * resp).sum())
            kl_tokens += int(resp.sum())
            n = len(chunk)
            r = beta * (lp - ref_lp)
            for i, e in enumerate(chunk):
                rc, rr = float(r[i]), float(r[n + i])
                rewards.append((rc, rr, float(ref_lp[i]), float(ref_lp[n + i])))
                per_source.setdefault(e.get("source", ""), []).append(_win(rc - rr))
    if was_training:
        policy.train()
    wins = [_win(rc - rr) for rc, rr, _, _ in rewards]
    n = max(1, len(rewards))
    return {
        "accuracy": sum(wins) / n,
        "margin": sum(rc - rr for rc, rr, _, _ in rewards) / n,
        "reward_chosen": sum(rc for rc, _, _, _ in rewards) / n,
        "reward_rejected": sum(rr for _, rr, _, _ in rewards) / n,
        "kl_per_token": kl_sum / max(1, kl_tokens),
        "kl_per_response": kl_sum / max(1, 2 * len(rewards)),
        "reference_logprob_accuracy": sum(_win(a - b) for _, _, a, b in rewards) / n,
        "pairs": len(rewards),
        "per_source": {k: sum(v) / len(v) for k, v in sorted(per_source.items())},
    }


def _win(delta: float) -> float:
    return 1.0 if delta > TIE else 0.0 if delta < -TIE else 0.5
