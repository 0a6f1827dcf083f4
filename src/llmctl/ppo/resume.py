"""`llmctl ppo --resume`: TRL 1.12's PPOTrainer made to continue from the last checkpoint of a run
that was killed (kill -9, a lost node) instead of starting PPO again.

    llmctl ppo runs/sft --reward-model runs/rm --prompts p.jsonl --out runs/ppo -c recipes/ppo/tiny.yaml \
        --resume

The engine's train() has no resume: it sets the step and episode counters to 0, draws its data
from a fresh shuffle and never reads a checkpoint back. `Trainer` changes that through three
hooks of the engine's own loop, not a copy of it:
- `_save_checkpoint` (what the loop calls every `ppo.save_steps` steps) writes an llmctl
  checkpoint atomically (`checkpoints/step-N.tmp`, renamed to `step-N` when complete): the
  trainable weights (the whole policy, or its LoRA adapter, and the value model), optimizer and
  LR-scheduler state, the step and episode counters, the logged rows, and every rank's RNG states
  (Python, NumPy, torch CPU/CUDA: rollouts sample, PPO shuffles mini-batches with NumPy).
- `train` loads the latest complete checkpoint before handing over to the engine's loop.
- a callback's `on_train_begin` (the loop calls it after zeroing its counters and before its
  first step) puts the counters and the RNG states back and shortens the loop to the steps left.
The data order is `Batches`: a permutation per epoch seeded by (seed, epoch), so step N's prompts
are known without replaying the loader; each rank takes its slice of the global batch.

With these, a resumed run repeats the uninterrupted one step for step (same seed, same device and
thread count): tests/integration/test_ppo.py checks equal final weights after a kill -9.
"""

from __future__ import annotations

import json
import os
import random
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import torch
from transformers import TrainerCallback
from trl.experimental.ppo import PPOTrainer

from llmctl.errors import UserError

STATE = "state.pt"
META = "meta.json"


class Batches:
    """The rollout prompts in a resumable order: epoch e is a permutation seeded by (seed, e);
    step s (0-based) takes the s-th global batch of it, and this rank its slice. Iterating starts
    at `self.start` and never ends (the engine cycles its loader anyway)."""

    def __init__(
        self, dataset: Any, collate: Any, local_batch: int, seed: int, rank: int, world: int
    ) -> None:
        self.dataset, self.collate = dataset, collate
        self.local, self.rank, self.seed = local_batch, rank, seed
        self.global_batch = local_batch * world
        self.per_epoch = len(dataset) // self.global_batch  # incomplete global batches are dropped
        if self.per_epoch < 1:
            raise UserError(
                f"--prompts: {len(dataset)} training prompts, fewer than one global rollout batch "
                f"({self.global_batch} = batch_size * grad_accum * nproc)"
            )
        self.start = 0

    def indices(self, step: int) -> list[int]:
        epoch, j = divmod(step, self.per_epoch)
        order = torch.randperm(len(self.dataset), generator=torch.Generator().manual_seed(self.seed + epoch))
        first = j * self.global_batch + self.rank * self.local
        return order[first : first + self.local].tolist()

    def __iter__(self) -> Any:
        step = self.start
        while True:
            yield self.collate([self.dataset[i] for i in self.indices(step)])
            step += 1


def _rng_state() -> dict[str, Any]:
    kind, keys, pos, has_gauss, gauss = np.random.get_state()
    return {
        "python": random.getstate(),
        "numpy": (kind, torch.from_numpy(keys.copy()), pos, has_gauss, gauss),
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
    }


def _set_rng_state(s: dict[str, Any]) -> None:
    kind, keys, pos, has_gauss, gauss = s["numpy"]
    random.setstate(s["python"])
    np.random.set_state((kind, keys.numpy(), pos, has_gauss, gauss))
    torch.set_rng_state(s["torch"])
    if s["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(s["cuda"])


def latest(checkpoints: Path) -> Path | None:
    """The complete checkpoint with the highest step (`*.tmp` ones are the remains of a kill)."""
    done = [p for p in checkpoints.glob("step-*") if p.is_dir() and not p.name.endswith(".tmp")]
    return max(done, key=lambda p: int(p.name.split("-")[1]), default=None)


class _Restore(TrainerCallback):
    """on_train_begin runs after the engine zeroed its counters, before its first rollout."""

    def __init__(self, trainer: Trainer) -> None:
        self.trainer = trainer

    def on_train_begin(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
        got = self.trainer.restored
        if got is None:
            return
        state.global_step, state.episode = got["step"], got["episode"]
        # the engine's loop is `for update in range(1, args.num_total_batches + 1)`, read after this hook
        args.num_total_batches = state.max_steps - got["step"]
        _set_rng_state(got["rng"])
        ppo, history = self.trainer.config["ppo"], self.trainer.history
        if ppo.get("kl_target") is not None and history and history[-1].get("kl") is not None:
            from llmctl.ppo.train import adapt_kl_coef  # the adaptive coefficient, as the run left it

            last = history[-1]
            args.kl_coef = adapt_kl_coef(
                last["kl_coef"], last["kl"], ppo["kl_target"], args.batch_size, ppo["kl_horizon"]
            )


class Trainer(PPOTrainer):
    # a subclass because the engine's train() has no resume (see the module docstring)
    def __init__(self, *a: Any, checkpoints: Path, config: dict[str, Any], history: list, **kw: Any) -> None:
        super().__init__(*a, **kw)
        self.checkpoints, self.config, self.history = checkpoints, config, history
        self.restored: dict[str, Any] | None = None
        acc = self.accelerator
        self.dataloader = Batches(
            self.train_dataset,
            self.data_collator,
            self.args.local_batch_size,
            self.args.seed,
            acc.process_index,
            acc.num_processes,
        )
        if self.model is not acc.unwrap_model(self.model):
            # with LoRA the engine's reference forward reads `model.policy` off the DDP wrapper,
            # which has no such attribute (AttributeError on 2+ ranks); a plain attribute, so not
            # registered as a submodule of the wrapper (that forward needs no gradient sync)
            object.__setattr__(self.model, "policy", acc.unwrap_model(self.model).policy)
        # PPO's mini-batch shuffle draws from NumPy's global RNG, which nothing seeds: without
        # this, two runs with one seed differ from the first update on
        random.seed(self.local_seed)
        np.random.seed(self.local_seed % 2**32)
        self.add_callback(_Restore(self))

    def _trainables(self) -> dict[str, torch.Tensor]:
        wrapper = self.accelerator.unwrap_model(self.model)
        return {n: p.detach().cpu().clone() for n, p in wrapper.named_parameters() if p.requires_grad}

    def load(self) -> dict[str, Any] | None:
        """Load the latest complete checkpoint (weights, optimizer, scheduler now; counters and RNG at
        the loop's start); returns its step and logged rows, or None when there is none."""
        ck = latest(self.checkpoints)
        if ck is None:
            return None
        meta = json.loads((ck / META).read_text())
        if meta["config"] != self.config:
            raise UserError(
                f"--resume: {ck} was written by a run with another config; run with the same recipe and "
                "flags, or without --resume to start again"
            )
        rank = self.accelerator.process_index
        state = torch.load(ck / STATE, map_location="cpu", weights_only=True)
        wrapper = self.accelerator.unwrap_model(self.model)
        params = dict(wrapper.named_parameters())
        missing = set(state["trainable"]) ^ {n for n, p in params.items() if p.requires_grad}
        if missing:
            raise UserError(f"--resume: {ck} holds other trainable weights ({sorted(missing)[:3]}...)")
        with torch.no_grad():
            for n, t in state["trainable"].items():
                params[n].copy_(t)
        self.optimizer.load_state_dict(state["optimizer"])
        self.lr_scheduler.load_state_dict(state["scheduler"])
        rng = torch.load(ck / f"rng-{rank}.pt", map_location="cpu", weights_only=True)
        self.restored = {"step": meta["step"], "episode": meta["episode"], "rng": rng}
        self.dataloader.start = meta["step"]
        return {"step": meta["step"], "history": state["history"], "path": ck}

    def train(self) -> None:
        full = self.args.num_total_batches
        try:
            super().train()
        finally:
            self.args.num_total_batches = full

    def _save_checkpoint(self, model: Any, trial: Any) -> None:
        # instead of Trainer's checkpoint-N/ (transformers' layout, which the engine never reads back)
        step = self.state.global_step
        final, tmp = self.checkpoints / f"step-{step}", self.checkpoints / f"step-{step}.tmp"
        acc = self.accelerator
        if acc.is_main_process:
            shutil.rmtree(tmp, ignore_errors=True)
            tmp.mkdir(parents=True)
        acc.wait_for_everyone()
        torch.save(_rng_state(), tmp / f"rng-{acc.process_index}.pt")  # each rank samples its own rollouts
        acc.wait_for_everyone()
        if acc.is_main_process:  # the weights and optimizer are the same on every rank (data parallel)
            state = {
                "trainable": self._trainables(),
                "optimizer": self.optimizer.state_dict(),
                "scheduler": self.lr_scheduler.state_dict(),
                "history": list(self.history),
            }
            torch.save(state, tmp / STATE)
            meta = {"step": step, "episode": self.state.episode, "config": self.config}
            (tmp / META).write_text(json.dumps(meta, indent=2))
            _fsync_dir(tmp)
            shutil.rmtree(final, ignore_errors=True)
            os.replace(tmp, final)  # the rename is the commit: a kill before it leaves only *.tmp
            for old in self.checkpoints.glob("step-*"):
                if old != final:
                    shutil.rmtree(old, ignore_errors=True)
        acc.wait_for_everyone()


def _fsync_dir(d: Path) -> None:
    for f in d.iterdir():
        with open(f, "rb") as h:
            os.fsync(h.fileno())
