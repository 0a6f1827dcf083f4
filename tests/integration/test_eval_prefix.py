"""Shared-context multiple choice (issue 20): one context encoding per item, the choices scored from
its key/value cache, gives the per-choice path's log-likelihoods (to 1e-5) and the same picks."""

from __future__ import annotations

import random

import pytest

from tests.fixtures.models import tiny_llama


@pytest.fixture(scope="module")
def lm(tmp_path_factory):
    from llmctl.eval.lm import LM

    return LM(tiny_llama(tmp_path_factory.mktemp("tiny") / "model"), batch_size=3)


def test_shared_context_equals_per_choice_path(lm):
    from llmctl.eval import prefix
    from llmctl.eval.tasks import load_tasks

    rng = random.Random(0)
    words = "the of a president nation war peace congress people law".split()
    requests = []
    for i in range(9):  # contexts of 3..40 words (padding in the batch), 2..5 choices of 1..2 words
        context = " ".join(rng.choice(words) for _ in range(rng.randint(3, 40))) + (
            "\nAnswer:" if i % 2 else " "
        )
        requests += [
            (context, " " + " ".join(rng.sample(words, rng.randint(1, 2)))) for _ in range(rng.randint(2, 5))
        ]
    requests += [
        ("", " alone"),
        ("x " * 300, " too long for the model"),
        ("x " * 300, " too"),
    ]  # per-choice path
    (capitals,) = load_tasks(["capitals"], limit=12, num_fewshot=2, seed=3, text_field="text")
    requests += [(it.context, c) for it in capitals.items for c in it.choices]

    shared, alone = prefix.groups(lm, requests)
    assert len(shared) == 9 + 12 and len(alone) == 3
    ours = prefix.loglikelihood(lm, requests, "shared")
    ref = lm.loglikelihood(requests, "per choice")
    assert max(abs(a[0] - b[0]) for a, b in zip(ours, ref, strict=True)) < 1e-5
    assert [a[1] for a in ours] == [b[1] for b in ref]  # greedy flags
    k = len(requests) - 4 * 12
    picks = [max(range(4), key=lambda c, i=i: ours[k + 4 * i + c][0]) for i in range(12)]
    assert picks == [max(range(4), key=lambda c, i=i: ref[k + 4 * i + c][0]) for i in range(12)]
