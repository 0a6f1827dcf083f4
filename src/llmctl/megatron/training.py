"""megatron-core's training machinery, as pretrain's loop uses it: parallel state, micro-batches,
DDP with its own optimizer and schedule, and the pipeline schedule that runs forward/backward.

    from llmctl.megatron import training; training.Parallel.init(1, 1, seed=1234).dp   # 1

The loop itself (steps, rollbacks, logging, signals) is pretrain's (`llmctl.pretrain.train`); this
module hands it megatron-core objects built from plain values. megatron.core is imported inside
the functions.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

    import torch

    from llmctl.pretrain.config import OptimConfig


@dataclass
class Parallel:
    """This rank's place in the tensor/pipeline/data-parallel layout (megatron's parallel_state)."""

    ps: Any  # megatron.core.parallel_state, initialised
    dp: int
    dp_rank: int

    @classmethod
    def init(cls, tensor: int, pipeline: int, *, seed: int) -> Parallel:
        """Model-parallel groups over the started process group, and the seeds: the default
        generator (CPU initialisation draws from it) and megatron's model-parallel RNG tracker."""
        import torch
        from megatron.core import parallel_state
        from megatron.core.tensor_parallel import model_parallel_cuda_manual_seed

        parallel_state.initialize_model_parallel(tensor, pipeline)
        torch.manual_seed(seed)
        model_parallel_cuda_manual_seed(seed)
        return cls(
            parallel_state,
            parallel_state.get_data_parallel_world_size(),
            parallel_state.get_data_parallel_rank(),
        )

    def first_stage(self) -> bool:
        return self.ps.is_pipeline_first_stage()

    def last_stage(self) -> bool:
        return self.ps.is_pipeline_last_stage()

    def model_group(self) -> Any:
        return self.ps.get_model_parallel_group()

    def pipeline_group(self) -> Any:
        return self.ps.get_pipeline_model_parallel_group()

    def data_group(self) -> Any:
        return self.ps.get_data_parallel_group()


class MicroBatches:
    """megatron's global micro-batch calculator (with batch-size ramp-up), reset for this run."""

    def __init__(self, rank: int, rampup: list[int] | None, global_batch: int, micro_batch: int, dp: int):
        from megatron.core import num_microbatches_calculator as nmc

        nmc.unset_num_microbatches_calculator()
        nmc.init_num_microbatches_calculator(rank, rampup, global_batch, micro_batch, dp)
        self.nmc = nmc

    def at(self, consumed: int) -> int:
        """The number of micro-batches of the step that starts after `consumed` samples."""
        self.nmc.update_num_microbatches(consumed, consistency_check=False)
        return self.nmc.get_num_microbatches()


def wrap_ddp(tconfig: Any, model: Any, *, distributed_optimizer: bool) -> Any:
    """megatron's DistributedDataParallel around `model` (grads reduced in fp32, not overlapped);
    it accumulates into main_grad buffers, so megatron's own optimizer must step them."""
    from megatron.core.distributed import (
        DistributedDataParallel,
        DistributedDataParallelConfig,
        finalize_model_grads,
    )

    ddp = DistributedDataParallelConfig(
        grad_reduce_in_fp32=True,
        overlap_grad_reduce=False,
        use_distributed_optimizer=distributed_optimizer,
    )
    wrapped = DistributedDataParallel(tconfig, ddp, model)
    tconfig.finalize_model_grads_func = finalize_model_grads
    return wrapped


def adam(model: Any, o: OptimConfig, *, bf16: bool, distributed_optimizer: bool) -> Any:
    """get_megatron_optimizer's Adam over the DDP-wrapped `model`."""
    import torch
    from megatron.core.optimizer import OptimizerConfig, get_megatron_optimizer

    return get_megatron_optimizer(
        OptimizerConfig(
            optimizer="adam",
            lr=o.lr,
            min_lr=o.lr * o.min_lr_ratio,
            weight_decay=o.weight_decay,
            adam_beta1=o.beta1,
            adam_beta2=o.beta2,
            adam_eps=o.eps,
            clip_grad=o.clip_grad,
            bf16=bf16,
            params_dtype=torch.bfloat16 if bf16 else torch.float32,
            use_distributed_optimizer=distributed_optimizer,
        ),
        [model],
    )


def cosine_schedule(optimizer: Any, o: OptimConfig, *, steps: int) -> Any:
    """Linear warm-up from 0, cosine decay to lr x min_lr_ratio at `steps`; constant weight decay."""
    from megatron.core.optimizer_param_scheduler import OptimizerParamScheduler

    return OptimizerParamScheduler(
        optimizer,
        init_lr=0.0,
        max_lr=o.lr,
        min_lr=o.lr * o.min_lr_ratio,
        lr_warmup_steps=o.warmup_steps,
        lr_decay_steps=steps,
        lr_decay_style="cosine",
        start_wd=o.weight_decay,
        end_wd=o.weight_decay,
        wd_incr_steps=steps,
        wd_incr_style="constant",
    )


def forward_backward(
    forward_step: Callable[[Iterator[Any], Any], tuple[torch.Tensor, Any]],
    batches: list[dict],
    model: Any,
    *,
    seq_length: int,
    micro_batch_size: int,
    forward_only: bool,
) -> list[dict[str, Any]]:
    """megatron's pipeline schedule over `batches` (one micro-batch each); the loss dicts of the
    last pipeline stage (empty elsewhere)."""
    from megatron.core.pipeline_parallel import get_forward_backward_func

    return get_forward_backward_func()(
        forward_step_func=forward_step,
        data_iterator=iter(batches),
        model=[model],
        num_microbatches=len(batches),
        seq_length=seq_length,
        micro_batch_size=micro_batch_size,
        forward_only=forward_only,
    )
