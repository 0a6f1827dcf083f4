"""How many examples each source gives (survey 5.1.2, "balancing the data distribution"), and
drawing them reproducibly.

Strategies, over the sources' usable counts N_i (each first capped at `max_examples`):
  - proportional: every capped example once (examples-proportional mixing, T5/FLAN)
  - weights:      a total (default sum of capped N_i) split by explicit weights
  - temperature:  p_i proportional to N_i ** (1 / T): T=1 is proportional, larger T flattens
                  toward uniform (the multilingual / multi-task recipe)
A source asked for more than it has is repeated (whole passes, then a sample); the realised
counts are what the manifest records.

    counts = plan({"chat": 7000, "tasks": 800}, strategy="temperature", temperature=2.0)
    picked = draw({"chat": chat, "tasks": tasks}, counts, seed=0)
"""

from __future__ import annotations

import math
import random
from collections.abc import Mapping, Sequence
from typing import Any, TypeVar

from llmctl.errors import UserError

T = TypeVar("T")
STRATEGIES = ("proportional", "weights", "temperature")


def _largest_remainder(total: int, shares: Mapping[str, float]) -> dict[str, int]:
    """Integers that sum to `total`, as close to total * share as possible (ties by name)."""
    norm = sum(shares.values())
    exact = {k: total * v / norm if norm else 0.0 for k, v in shares.items()}
    out = {k: math.floor(v) for k, v in exact.items()}
    rest = total - sum(out.values())
    for k in sorted(exact, key=lambda k: (out[k] - exact[k], k))[:rest]:
        out[k] += 1
    return out


def plan(
    counts: Mapping[str, int],
    *,
    strategy: str = "proportional",
    max_examples: int | None = None,
    weights: Mapping[str, float] | None = None,
    temperature: float = 1.0,
    total: int | None = None,
) -> dict[str, int]:
    """Examples to draw from each source (keys as `counts`)."""
    if strategy not in STRATEGIES:
        raise UserError(f"mix.strategy: {strategy!r} is not one of {', '.join(STRATEGIES)}")
    capped = {k: min(n, max_examples) if max_examples else n for k, n in counts.items()}
    budget = sum(capped.values()) if total is None else total
    if strategy == "proportional":
        return capped if total is None else _largest_remainder(total, capped)
    if strategy == "weights":
        weights = weights or {}
        unknown = sorted(set(weights) - set(counts))
        if unknown:
            raise UserError(
                f"mix.weights: no source named {', '.join(unknown)} (sources: {', '.join(counts)})"
            )
        w = {k: float(weights.get(k, 1.0)) for k in counts}
        if any(v < 0 for v in w.values()) or not any(w.values()):
            raise UserError("mix.weights: weights must be >= 0 and not all 0")
        return _largest_remainder(budget, {k: v if capped[k] else 0.0 for k, v in w.items()})
    if temperature <= 0:
        raise UserError(f"mix.temperature: must be > 0, got {temperature}")
    return _largest_remainder(budget, {k: n ** (1.0 / temperature) if n else 0.0 for k, n in capped.items()})


def draw(pools: Mapping[str, Sequence[T]], counts: Mapping[str, int], *, seed: int) -> list[tuple[str, T]]:
    """`counts[k]` items of `pools[k]` (without replacement while the pool lasts, then whole
    passes again), all sources shuffled together; the same seed gives the same list."""
    rng = random.Random(seed)
    out: list[tuple[str, T]] = []
    for name in sorted(pools):
        pool, n = pools[name], counts.get(name, 0)
        if n and not pool:
            raise UserError(f"source '{name}': no usable examples to draw {n} from")
        passes, rest = divmod(n, len(pool)) if pool else (0, 0)
        idx = [i for _ in range(passes) for i in range(len(pool))] + rng.sample(range(len(pool)), rest)
        out.extend((name, pool[i]) for i in idx)
    rng.shuffle(out)
    return out


def replay(earlier: Sequence[T], fraction: float, stage_size: int, *, seed: int) -> list[T]:
    """Examples of earlier stages mixed into a later one against forgetting: `fraction` of the
    later stage's size, drawn from what the earlier stages trained on."""
    if not 0 <= fraction < 1:
        raise UserError(f"replay_fraction: must be in [0, 1), got {fraction}")
    n = round(stage_size * fraction / (1 - fraction)) if fraction else 0
    if not n or not earlier:
        return []
    picked = draw({"replay": earlier}, {"replay": n}, seed=seed)
    return [x for _, x in picked]


def realised(picked: Sequence[tuple[str, Any]]) -> dict[str, int]:
    """Examples per source in a drawn list (the manifest's figure)."""
    out: dict[str, int] = {}
    for name, _ in picked:
        out[name] = out.get(name, 0) + 1
    return dict(sorted(out.items()))
