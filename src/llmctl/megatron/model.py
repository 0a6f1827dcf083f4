"""The recipe as a megatron-core model: TransformerConfig, GPTModel, layer specs, vocab padding.

    from llmctl.megatron import model; model.resolve_layer_spec("auto", gpu=False, te=False)  # "local"

`transformer_config` is the one place the recipe's `model` section becomes megatron-core's
TransformerConfig (LLaMA-style: RMSNorm, SwiGLU, RoPE, no biases); `gpt_model` builds one pipeline
stage of the GPTModel. megatron.core is imported inside the functions.
"""

from __future__ import annotations

import importlib.util
import warnings
from typing import TYPE_CHECKING, Any

from llmctl.errors import UserError

if TYPE_CHECKING:
    from llmctl.pretrain.config import PretrainConfig


def padded_vocab(vocab: int, tensor: int) -> int:
    """The embedding rows: the vocabulary padded to a multiple of 128 x TP (Megatron-LM's rule), so
    that every tensor-parallel shard is a whole number of 128-row blocks. Export pads by the
    training TP too: the checkpoint's embedding has this many rows whatever layout loads it."""
    pad_to = 128 * tensor
    return (vocab + pad_to - 1) // pad_to * pad_to


FUSIONS = (
    "bias_activation_fusion",
    "bias_dropout_fusion",
    "masked_softmax_fusion",
    "apply_rope_fusion",
    "gradient_accumulation_fusion",
    "persist_layer_norm",
)


def fusions(cpu: bool) -> dict[str, bool]:
    """megatron-core's fused kernels: all off on CPU (they are CUDA code); on a GPU each one that
    can run there (a kernel that needs an extension is on only when the extension imports)."""
    if cpu:
        return dict.fromkeys(FUSIONS, False)
    return {
        "bias_activation_fusion": True,  # torch.jit-fused SwiGLU (no bias here: the bias-free variant)
        "bias_dropout_fusion": True,  # torch.jit-fused bias-dropout-add
        # local spec only (TransformerEngine has its own attention): Megatron's compiled softmax kernels
        "masked_softmax_fusion": _importable("scaled_masked_softmax_cuda")
        and _importable("scaled_upper_triang_masked_softmax_cuda"),
        "apply_rope_fusion": _rope_fusion_available(),  # TransformerEngine's fused RoPE
        # the output layer is megatron's own ColumnParallelLinear even with TE: it needs apex's kernel
        "gradient_accumulation_fusion": _importable("fused_weight_gradient_mlp_cuda"),
        "persist_layer_norm": False,  # apex's persistent kernel is LayerNorm's; this model uses RMSNorm
    }


def _importable(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def _rope_fusion_available() -> bool:
    if not _importable("transformer_engine"):
        return False
    from megatron.core.models.common.embeddings import rope_utils

    return rope_utils.fused_apply_rotary_pos_emb is not None


def transformer_config(
    cfg: PretrainConfig, *, tensor: int, pipeline: int, bf16: bool, sequence_parallel: bool, cpu: bool
) -> Any:
    """The one place the recipe becomes megatron-core's TransformerConfig (LLaMA-style)."""
    import torch
    from megatron.core.transformer.transformer_config import TransformerConfig

    m = cfg.model
    dtype = torch.bfloat16 if bf16 else torch.float32
    return TransformerConfig(
        num_layers=m.num_layers,
        hidden_size=m.hidden_size,
        num_attention_heads=m.num_attention_heads,
        num_query_groups=m.num_query_groups,
        ffn_hidden_size=m.ffn(),
        tensor_model_parallel_size=tensor,
        pipeline_model_parallel_size=pipeline,
        sequence_parallel=sequence_parallel,
        normalization="RMSNorm",
        layernorm_epsilon=m.norm_epsilon,
        gated_linear_unit=True,
        activation_func=torch.nn.functional.silu,
        add_bias_linear=False,
        init_method_std=m.init_std,
        hidden_dropout=0.0,
        attention_dropout=0.0,
        bf16=bf16,
        params_dtype=dtype,
        pipeline_dtype=dtype,
        # CPU: initialise the full matrices, then split them: the same weights whatever the TP
        # layout (the layout tests rely on it). GPU: each rank initialises its shard on the device.
        use_cpu_initialization=cpu,
        **fusions(cpu),
    )


def gpt_model(
    tconfig: Any, cfg: PretrainConfig, layer_spec: str, vocab: int, *, pre_process: bool, post_process: bool
) -> Any:
    """megatron-core's GPTModel for this recipe (one pipeline stage of it); in bf16, wrapped in
    Float16Module as megatron's own training loop does: that casts every parameter (the norms'
    included) to bf16, and the bf16 optimizer's checkpoint maps only bf16 parameters (an fp32 norm
    weight failed the first save on a GPU: "Param id 9 does not match any model sharded param")."""
    from megatron.core.models.gpt import GPTModel
    from megatron.core.transformer.module import Float16Module

    m = cfg.model
    model = GPTModel(
        tconfig,
        transformer_layer_spec=gpt_layer_spec(layer_spec),
        vocab_size=vocab,
        max_sequence_length=m.seq_length,
        pre_process=pre_process,
        post_process=post_process,
        share_embeddings_and_output_weights=m.tie_embeddings,
        position_embedding_type="rope",
        rotary_base=int(m.rope_base),
    )
    return Float16Module(tconfig, model) if tconfig.bf16 else model


def has_transformer_engine() -> bool:
    return importlib.util.find_spec("transformer_engine") is not None


def resolve_layer_spec(kind: str, *, gpu: bool, te: bool) -> str:
    """`model.layer_spec` -> the spec to build: auto picks TransformerEngine's fused layers when it
    is installed and a GPU is present; asking for transformer_engine without both is an error."""
    if kind == "auto":
        return "transformer_engine" if te and gpu else "local"
    if kind == "transformer_engine" and not (te and gpu):
        missing = "TransformerEngine is not installed" if not te else "there is no GPU"
        raise UserError(f"model.layer_spec=transformer_engine: {missing}; use local or auto")
    return kind


def gpt_layer_spec(kind: str) -> Any:
    """megatron-core's GPT layer spec: TransformerEngine modules or the local (plain torch) ones."""
    with warnings.catch_warnings():  # "Apex is not installed. Falling back to Torch Norm": as meant
        warnings.filterwarnings("ignore", message=".*Apex is not installed.*")
        from megatron.core.models.gpt import gpt_layer_specs

        if kind == "transformer_engine":
            return gpt_layer_specs.get_gpt_layer_with_transformer_engine_spec()
        return gpt_layer_specs.get_gpt_layer_local_spec()
