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


BF16_SCRIPT = r"""
import json, sys, tempfile, torch
from pathlib import Path
from llmctl.megatron import cpu
cpu.apply()
from llmctl import config as cfgmod
from llmctl.megatron import checkpoint, datasets
datasets.ensure_process_group(Path(tempfile.mkdtemp()))
from megatron.core import dist_checkpointing, parallel_state
from megatron.core.distributed import DistributedDataParallel, DistributedDataParallelConfig
from megatron.core.optimizer import OptimizerConfig, get_megatron_optimizer
from megatron.core.tensor_parallel import model_parallel_cuda_manual_seed
from llmctl.megatron import model as train
from llmctl.pretrain.config import PretrainConfig
parallel_state.initialize_model_parallel(1, 1)
model_parallel_cuda_manual_seed(1)
cfg = cfgmod.from_dict(PretrainConfig, {"model": {"num_layers": 2, "hidden_size": 32,
    "num_attention_heads": 4, "seq_length": 16, "tie_embeddings": True}})
def build():
    tc = train.transformer_config(cfg, tensor=1, pipeline=1, bf16=True, sequence_parallel=False, cpu=True)
    return tc, train.gpt_model(tc, cfg, "local", 128, pre_process=True, post_process=True)
tc, model = build()
ddp = DistributedDataParallel(tc, DistributedDataParallelConfig(grad_reduce_in_fp32=True), model)
opt = get_megatron_optimizer(OptimizerConfig(optimizer="adam", lr=1e-2, bf16=True,
    params_dtype=torch.bfloat16), [ddp])
tok = torch.randint(0, 128, (2, 16), generator=torch.Generator().manual_seed(0))
pos = torch.arange(16).expand(2, 16)
mask = torch.triu(torch.ones(1, 1, 16, 16, dtype=torch.bool), diagonal=1)
ddp(tok, pos, mask, labels=tok).float().mean().backward()
ddp.finish_grad_sync()
ok, _, _ = opt.step()
out = Path(tempfile.mkdtemp()) / "iter"
out.mkdir()
model_sd = ddp.module.sharded_state_dict()
state = {"model": model_sd, "optimizer": opt.sharded_state_dict(model_sd,
    metadata={"distrib_optim_sharding_type": "fully_reshardable"})}
dist_checkpointing.save(state, str(out))
_, fresh = build()
checkpoint.load_weights(fresh, out)
same = all(torch.equal(a, b) for a, b in zip(ddp.module.state_dict().values(), fresh.state_dict().values())
           if isinstance(a, torch.Tensor))
dtypes = sorted({str(p.dtype) for p in ddp.parameters()})
print(json.dumps({"ok": bool(ok), "dtypes": dtypes, "same": same}))
"""


@pytest.mark.slow
def test_bf16_model_checkpoints_after_an_optimizer_step():
    # found on an H200: in bf16 the RMSNorm weights stayed fp32 and the first checkpoint save
    # failed ("Param id 9 does not match any model sharded param"); the CPU runs this path in bf16
    r = subprocess.run([sys.executable, "-c", BF16_SCRIPT], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    res = json.loads(r.stdout.strip().splitlines()[-1])
    assert res == {"ok": True, "dtypes": ["torch.bfloat16"], "same": True}
