"""megatron-core trains on CPU through llmctl.megatron.cpu (groundwork of `llmctl pretrain`).

A 2-layer, 32-wide LLaMA-style GPTModel (RMSNorm, SwiGLU, RoPE, no biases) wrapped in megatron-core's
DDP, stepped by get_megatron_optimizer's Adam with clipping, through get_forward_backward_func
with 2 micro-batches: the loss must fall. Runs in a subprocess (the patches are process-wide).
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

SCRIPT = r"""
import json, math, os, warnings
warnings.filterwarnings("ignore")
import torch, torch.distributed as dist
from llmctl.megatron import cpu
assert cpu.apply()
os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=os.environ.get("PORT", "29533"))
dist.init_process_group("gloo", rank=0, world_size=1)
from megatron.core import parallel_state
from megatron.core.tensor_parallel import model_parallel_cuda_manual_seed
from megatron.core.transformer.transformer_config import TransformerConfig
from megatron.core.models.gpt import GPTModel
from megatron.core.models.gpt.gpt_layer_specs import get_gpt_layer_local_spec
from megatron.core.distributed import DistributedDataParallel, DistributedDataParallelConfig
from megatron.core.optimizer import OptimizerConfig, get_megatron_optimizer
from megatron.core.pipeline_parallel import get_forward_backward_func
parallel_state.initialize_model_parallel(1, 1)
model_parallel_cuda_manual_seed(1234)
cfg = TransformerConfig(
    num_layers=2, hidden_size=32, num_attention_heads=4, ffn_hidden_size=64, use_cpu_initialization=True,
    normalization="RMSNorm", gated_linear_unit=True, activation_func=torch.nn.functional.silu,
    add_bias_linear=False, bias_activation_fusion=False, masked_softmax_fusion=False,
    persist_layer_norm=False, bias_dropout_fusion=False, apply_rope_fusion=False,
    gradient_accumulation_fusion=False,
    hidden_dropout=0.0, attention_dropout=0.0)
model = GPTModel(cfg, transformer_layer_spec=get_gpt_layer_local_spec(), vocab_size=64,
                 max_sequence_length=32, position_embedding_type="rope")
model = DistributedDataParallel(cfg, DistributedDataParallelConfig(grad_reduce_in_fp32=True), model)
opt = get_megatron_optimizer(OptimizerConfig(optimizer="adam", lr=3e-3, weight_decay=0.1, adam_beta1=0.9,
                                             adam_beta2=0.95, clip_grad=1.0), [model])
torch.manual_seed(0)
data = torch.randint(0, 64, (16, 17))
mask = torch.triu(torch.ones(1, 1, 16, 16, dtype=torch.bool), diagonal=1)
def forward_step(it, m):
    batch = next(it)
    pos = torch.arange(16).unsqueeze(0).expand(batch.shape[0], -1)
    out = m(batch[:, :-1], pos, mask, labels=batch[:, 1:])
    return out, lambda o: (o.float().mean(), {"loss": o.float().mean().detach()})
losses, norms = [], []
for step in range(40):
    model.zero_grad_buffer(); opt.zero_grad()
    it = iter([data[:8], data[8:]])
    out = get_forward_backward_func()(
        forward_step_func=forward_step, data_iterator=it, model=[model], num_microbatches=2,
        seq_length=16, micro_batch_size=8, forward_only=False)
    ok, norm, _ = opt.step()
    losses.append(sum(o["loss"].item() for o in out) / 2); norms.append(norm)
print(json.dumps({"losses": losses, "norms": norms, "ln_vocab": math.log(64)}))
"""


@pytest.mark.slow
def test_megatron_core_trains_on_cpu():
    r = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    res = json.loads(r.stdout.strip().splitlines()[-1])
    losses = res["losses"]
    assert abs(losses[0] - res["ln_vocab"]) < 0.2  # random init: uniform over the vocabulary
    assert losses[-1] < 0.5 * losses[0]  # it memorizes the 16 sequences
    assert all(n > 0 for n in res["norms"])  # megatron's optimizer saw real (main_grad) gradients
