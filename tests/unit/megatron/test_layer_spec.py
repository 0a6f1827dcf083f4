"""model.layer_spec: which megatron-core layer implementation a run builds."""

import pytest

from llmctl.errors import UserError
from llmctl.megatron.model import gpt_layer_spec, resolve_layer_spec


@pytest.mark.parametrize(
    "kind,gpu,te,expected",
    [
        ("auto", True, True, "transformer_engine"),
        ("auto", True, False, "local"),
        ("auto", False, True, "local"),
        ("local", True, True, "local"),
        ("transformer_engine", True, True, "transformer_engine"),
    ],
)
def test_resolve(kind, gpu, te, expected):
    assert resolve_layer_spec(kind, gpu=gpu, te=te) == expected


@pytest.mark.parametrize("gpu,te,message", [(True, False, "not installed"), (False, True, "no GPU")])
def test_transformer_engine_needs_both(gpu, te, message):
    with pytest.raises(UserError, match=message):
        resolve_layer_spec("transformer_engine", gpu=gpu, te=te)


def test_local_spec_is_plain_torch():
    spec = gpt_layer_spec("local")
    assert spec.submodules.mlp.module.__name__ == "MLP"
    assert "transformer_engine" not in repr(spec)
