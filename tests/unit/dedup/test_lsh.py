"""llmctl.dedup.lsh.optimal_params equals datasketch's own (private) optimum, the anchor."""

from __future__ import annotations

import pytest
from datasketch import MinHashLSH
from datasketch.lsh import _optimal_param  # the anchor: what MinHashLSH computes internally

from llmctl.dedup.config import MinHashConfig
from llmctl.dedup.lsh import lsh_params, optimal_params


@pytest.mark.parametrize(
    ("threshold", "num_perm"),
    [(0.5, 16), (0.7, 64), (0.8, 128), (0.85, 128), (0.9, 256), (0.95, 100), (0.3, 32), (0.99, 64)],
)
def test_optimal_params_equal_datasketch(threshold, num_perm):
    assert optimal_params(threshold, num_perm) == _optimal_param(threshold, num_perm, 0.5, 0.5)


@pytest.mark.parametrize("weights", [(0.2, 0.8), (0.9, 0.1)])
def test_weights_move_the_optimum_as_datasketch_does(weights):
    ours = optimal_params(0.8, 128, *weights)
    assert ours == _optimal_param(0.8, 128, *weights)
    # the public route to the same numbers: an LSH index built with these weights
    lsh = MinHashLSH(threshold=0.8, num_perm=128, weights=weights)
    assert ours == (lsh.b, lsh.r)


def test_lsh_params_prefers_the_recipe_and_fits_num_perm():
    assert lsh_params(MinHashConfig(threshold=0.8, num_perm=128, bands=4, rows=8)) == (4, 8)
    bands, rows = lsh_params(MinHashConfig(threshold=0.8, num_perm=128))
    assert (bands, rows) == (9, 13)
    assert bands * rows <= 128
