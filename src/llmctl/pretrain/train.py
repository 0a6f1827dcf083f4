"""One rank of `llmctl pretrain`: the training loop of a megatron-core GPTModel with TP/PP/DP.

    torchrun --nproc-per-node 2 -m llmctl.pretrain.train SPEC.json   # `llmctl pretrain --nproc 2`

SPEC.json (written by the stage) names the resolved config, the tokenize artifact and the
staging directory. Rank 0 appends one JSON line per step to `train_log.jsonl` there and writes
`train_summary.json` at the end; checkpoints go to `checkpoints/iter_NNNNNNN/`
(megatron-core dist_checkpointing, loadable at another TP/PP). Everything megatron-core is built
and called through `llmctl.megatron` (model, training, checkpoint, datasets, cpu); this module
holds the loop: steps, evaluation, spike rollbacks, logs, checkpoint cadence and signals.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import statistics
import sys
import time
from collections import Counter
from functools import partial
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist

from llmctl import config as cfgmod
from llmctl.formats import tokens
from llmctl.megatron import checkpoint, training
from llmctl.megatron.model import gpt_model, padded_vocab, transformer_config
from llmctl.pretrain import mfu
from llmctl.pretrain.config import PretrainConfig

EXIT_INCOMPLETE = 3  # the run stopped early on purpose (exit_after_steps); the staging dir stays
SPIKE_LR_FACTOR = 1e4  # stability.inject_spike_at: one update this many times the scheduled rate


def _log(msg: str) -> None:
    if dist.get_rank() == 0:
        print(msg, file=sys.stderr, flush=True)


def cpu_warnings(cfg: PretrainConfig) -> list[str]:
    """What a CPU run drops of the config, said once (rank 0) instead of silently."""
    out = []
    if cfg.train.bf16:
        out.append("train.bf16=true is ignored on CPU: training runs in fp32")
    if cfg.parallel.sequence_parallel:
        out.append("parallel.sequence_parallel=true is ignored on CPU (it needs GPUs with TP > 1)")
    return out


class Trainer:
    def __init__(self, spec: dict[str, Any]):
        from llmctl.megatron import cpu

        self.cpu = cpu.apply()
        self.cfg: PretrainConfig = cfgmod.from_dict(PretrainConfig, spec["config"])
        self.tokenized = Path(spec["tokenized"])
        self.staging = Path(spec["staging"])
        self.blend = tokens.read_blend(self.tokenized)
        self.layer_spec = spec.get("layer_spec", "local")
        self.device = (
            torch.device("cpu") if self.cpu else torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0)))
        )
        self._init_distributed()
        if self.cpu:
            for message in cpu_warnings(self.cfg):
                _log(f"warning: {message}")
        self._build()

    # ------------------------------------------------------------ set-up
    def _init_distributed(self) -> None:
        os.environ.setdefault("MASTER_ADDR", "127.0.0.1")
        os.environ.setdefault("MASTER_PORT", str(29500 + os.getpid() % 1000))
        os.environ.setdefault("RANK", "0")
        os.environ.setdefault("WORLD_SIZE", "1")
        if not self.cpu:
            torch.cuda.set_device(self.device)
        if not dist.is_initialized():
            dist.init_process_group("gloo" if self.cpu else "nccl")
        p, t = self.cfg.parallel, self.cfg.train
        self.ps = training.Parallel.init(p.tensor, p.pipeline, seed=t.seed)
        self.dp, self.dp_rank = self.ps.dp, self.ps.dp_rank
        self.micro = training.MicroBatches(
            dist.get_rank(), t.rampup_batch_size, t.global_batch_size, t.micro_batch_size, self.dp
        )

    def _build(self) -> None:
        p, o, t = self.cfg.parallel, self.cfg.optim, self.cfg.train
        bf16 = t.bf16 if t.bf16 is not None else not self.cpu
        self.bf16 = bf16 and not self.cpu
        self.tconfig = transformer_config(
            self.cfg,
            tensor=p.tensor,
            pipeline=p.pipeline,
            bf16=self.bf16,
            sequence_parallel=p.sequence_parallel and not self.cpu,
            cpu=self.cpu,
        )
        self.vocab = int(self.blend["vocab_size"])
        self.padded_vocab = padded_vocab(self.vocab, p.tensor)
        model = gpt_model(
            self.tconfig,
            self.cfg,
            self.layer_spec,
            self.padded_vocab,
            pre_process=self.ps.first_stage(),
            post_process=self.ps.last_stage(),
        ).to(self.device)
        self.model = training.wrap_ddp(self.tconfig, model, distributed_optimizer=p.distributed_optimizer)
        self.optimizer = training.adam(
            self.model, o, bf16=self.bf16, distributed_optimizer=p.distributed_optimizer
        )
        self.scheduler = training.cosine_schedule(self.optimizer, o, steps=t.steps)
        self.n_params = sum(p.numel() for p in self.model.parameters())
        t_ = torch.tensor([self.n_params], dtype=torch.float64, device=self.device)
        dist.all_reduce(t_, group=self.ps.model_group())
        self.n_params_total = int(t_.item())

    # ------------------------------------------------------------ data
    def datasets(self, evals: int) -> None:
        """Train and valid GPTDatasets over the main blend, and one train dataset per curriculum
        stage (blend.json's `curriculum`: a blend and a token budget each, in order)."""
        t, seq = self.cfg.train, self.cfg.model.seq_length
        margin = t.global_batch_size * (self.cfg.stability.max_rollbacks + 2)  # skipped batches
        main_samples = (t.steps + 1) * t.global_batch_size * (self.cfg.stability.max_rollbacks + 1)
        valid_samples = max(1, evals) * t.eval_steps * t.global_batch_size
        self.phases: list[tuple[int, list[str], Any]] = []  # (first sample, source prefixes, dataset)
        start = 0
        for stage in self.blend.get("curriculum") or [] if t.curriculum else []:
            n = -(-int(stage["tokens"]) // seq)
            ds, _ = self._gpt_datasets(stage["blend"], n + margin, 1)
            self.phases.append((start, stage["blend"][0], ds))
            start += n
        train, self.valid_ds = self._gpt_datasets(self.blend["blend"], main_samples, valid_samples)
        self.phases.append((start, self.blend["blend"][0], train))

    def _gpt_datasets(self, blend: list, train_samples: int, valid_samples: int) -> tuple[Any, Any]:
        from llmctl.megatron import datasets

        t = self.cfg.train
        train, valid, _ = datasets.build_gpt_datasets(
            ([str(self.tokenized / p) for p in blend[0]], [float(w) for w in blend[1]]),
            sequence_length=self.cfg.model.seq_length,
            samples=(train_samples, valid_samples, 0),
            split=t.split,
            seed=t.seed,
            eod=int(self.blend["eod"]),
            pad=int(self.blend["pad"]) if self.blend.get("pad") is not None else int(self.blend["eod"]),
            vocab_size=self.vocab,
            cache=self.staging / "data-cache",
        )
        return train, valid

    def phase(self, consumed: int) -> tuple[int, int]:
        """(curriculum stage, first sample within its dataset) of the batch starting at `consumed`:
        a pure function of the samples consumed, so resume and rollback land in the same place."""
        i = max(k for k, (first, _, _) in enumerate(self.phases) if first <= consumed)
        return i, consumed - self.phases[i][0]

    def micro_batches(
        self, ds: Any, first_sample: int, n_micro: int | None = None, sources: Counter | None = None
    ) -> list[dict[str, torch.Tensor]]:
        """This data-parallel rank's micro-batches of the global batch starting at first_sample;
        `sources` counts the samples drawn per blend component."""
        t = self.cfg.train
        mbs = t.micro_batch_size
        n_micro = n_micro or t.global_batch_size // (t.micro_batch_size * self.dp)
        batches = []
        for i in range(n_micro):
            start = first_sample + (i * self.dp + self.dp_rank) * mbs
            items = [ds[(start + j) % len(ds)] for j in range(mbs)]
            if sources is not None:
                sources.update(int(x["dataset_id"]) for x in items)
            batches.append(
                {
                    k: torch.stack([torch.as_tensor(x[k]) for x in items]).to(self.device)
                    for k in ("tokens", "labels", "loss_mask")
                }
            )
        return batches

    # ------------------------------------------------------------ steps
    def _forward_step(self, data_iterator: Any, model: Any) -> tuple[torch.Tensor, Any]:
        batch = next(data_iterator)
        tokens = batch["tokens"]
        s = tokens.shape[1]
        position_ids = torch.arange(s, device=self.device).unsqueeze(0).expand_as(tokens)
        mask = torch.triu(torch.ones(1, 1, s, s, dtype=torch.bool, device=self.device), diagonal=1)
        output = model(tokens, position_ids, mask, labels=batch["labels"])
        return output, partial(self._loss, batch["loss_mask"])

    @staticmethod
    def _loss(loss_mask: torch.Tensor, output: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        mask = loss_mask.float()
        loss = (output.float() * mask).sum() / mask.sum()
        return loss, {"loss": loss.detach().clone()}  # the schedule divides `loss` in place

    def run_batches(self, batches: list[dict], forward_only: bool) -> float:
        """Forward (and backward) over micro-batches; the mean loss, the same on every rank."""
        out = training.forward_backward(
            self._forward_step,
            batches,
            self.model,
            seq_length=self.cfg.model.seq_length,
            micro_batch_size=self.cfg.train.micro_batch_size,
            forward_only=forward_only,
        )
        total = torch.zeros(1, dtype=torch.float64, device=self.device)
        if self.ps.last_stage():
            total += sum(float(o["loss"]) for o in out) / len(out)
        dist.all_reduce(total, group=self.ps.pipeline_group())  # only the last stage adds
        dist.all_reduce(total, group=self.ps.data_group())
        return float(total.item()) / self.dp

    # ------------------------------------------------------------ checkpoints
    def save(self, step: int, consumed: int, history: list[float]) -> None:
        root = self.staging / "checkpoints"
        path = root / f"iter_{step:07d}"
        if dist.get_rank() == 0:
            path.mkdir(parents=True, exist_ok=True)
        dist.barrier()
        progress = {"step": step, "consumed": consumed, "history": history}
        common = {"scheduler": self.scheduler.state_dict(), "progress": progress}
        checkpoint.save(path, self.model.module, self.optimizer, common)
        dist.barrier()
        if dist.get_rank() == 0:
            checkpoint.write_checksums(path)  # before latest.txt names it: a listed one is complete
            (root / "latest.txt").write_text(path.name)
            done = sorted(p for p in root.glob("iter_*") if p.is_dir())
            for old in done[: -self.cfg.train.keep_checkpoints]:
                shutil.rmtree(old)
        dist.barrier()

    def load(self, path: Path) -> dict[str, Any]:
        common = checkpoint.load(path, self.model.module, self.optimizer)
        self.scheduler.load_state_dict(common["scheduler"])
        return common["progress"]

    def load_weights(self, path: Path) -> None:
        """Model weights only (no optimizer state), resharded to this run's TP/PP layout."""
        checkpoint.load_weights(self.model.module, path)

    def latest(self) -> Path | None:
        marker = self.staging / "checkpoints" / "latest.txt"
        return self.staging / "checkpoints" / marker.read_text().strip() if marker.is_file() else None

    # ------------------------------------------------------------ the loop
    def train(self, resume: bool) -> None:
        t, st = self.cfg.train, self.cfg.stability
        evals = t.steps // t.eval_interval + 1
        self.datasets(evals)
        step, consumed, history = 0, 0, []
        log = self.staging / "train_log.jsonl"
        if resume and (ckpt := self.latest()) is not None:
            prog = self.load(ckpt)
            step, consumed, history = prog["step"], prog["consumed"], list(prog["history"])
            _log(f"resumed from {ckpt.name}: step {step}, {consumed} samples consumed")
        elif t.init_checkpoint:
            self.load_weights(Path(t.init_checkpoint))
            _log(f"initialised from {t.init_checkpoint}")
        # steps after the checkpoint run again; killed before the first one, every step does
        self._truncate_log(log, step)
        started_at = step
        rollbacks, events = 0, []
        tokens_per_step = t.global_batch_size * self.cfg.model.seq_length
        seconds = 0.0
        while step < t.steps:
            t0 = time.perf_counter()
            self.model.zero_grad_buffer()
            self.optimizer.zero_grad()
            n_micro = self.micro.at(consumed)
            batch_size = n_micro * t.micro_batch_size * self.dp  # grows during a batch-size ramp-up
            stage, first = self.phase(consumed)
            _, prefixes, ds = self.phases[stage]
            drawn: Counter = Counter()
            loss = self.run_batches(self.micro_batches(ds, first, n_micro, drawn), forward_only=False)
            window = history[-st.window :]
            spike = not math.isfinite(loss) or (
                len(window) >= 3 and loss > st.spike_factor * statistics.median(window)
            )
            if spike:
                rollbacks += 1
                if rollbacks > st.max_rollbacks:
                    raise RuntimeError(
                        f"loss spike at step {step} after {st.max_rollbacks} rollbacks; giving up"
                    )
                ckpt = self.latest()
                spike_step, skipped_from = step + 1, consumed
                if ckpt is not None:  # back to the last good weights; their data window is skipped too
                    prog = self.load(ckpt)
                    step, history, skipped_from = prog["step"], list(prog["history"]), prog["consumed"]
                    self._truncate_log(log, step)
                consumed += batch_size  # resume after the batch that caused the spike
                events.append(
                    {
                        "step": spike_step,
                        "loss": loss,
                        "rolled_back_to": ckpt.name if ckpt else None,
                        "skipped_samples": [skipped_from, consumed],
                    }
                )
                to = ckpt.name if ckpt else "init"
                _log(f"loss spike ({loss:.3f}) at step {step}: rolled back to {to}, skipping its batch")
                continue
            # testing: the update of step N takes a huge learning rate (once), so the weights really
            # blow up and the loss of step N + 1 spikes; rollback must restore them
            inject = st.inject_spike_at == step + 1 and not events
            lrs = [g["lr"] for g in self.optimizer.param_groups]
            if inject:
                for g in self.optimizer.param_groups:
                    g["lr"] *= SPIKE_LR_FACTOR
            self.optimizer.step()
            if inject:
                for g, lr in zip(self.optimizer.param_groups, lrs, strict=True):
                    g["lr"] = lr
            self.scheduler.step(increment=1)
            step += 1
            consumed += batch_size
            history.append(loss)
            dt = time.perf_counter() - t0
            seconds += dt
            record = {
                "step": step,
                "loss": loss,
                "lr": self.optimizer.param_groups[0]["lr"],
                "batch_size": batch_size,
                "consumed": consumed,
                "tokens_per_s": batch_size * self.cfg.model.seq_length / dt,
                "seconds": dt,
                "data": self._drawn(prefixes, drawn),
            }
            if len(self.phases) > 1:
                record["curriculum_stage"] = stage
            if step % t.eval_interval == 0 or step == t.steps:
                record["valid_loss"] = self.evaluate()
            if dist.get_rank() == 0:
                with open(log, "a") as f:
                    f.write(json.dumps(record) + "\n")
            if step % t.log_interval == 0 or step == t.steps:
                rate = record["tokens_per_s"]
                _log(f"step {step}/{t.steps} loss {loss:.4f} lr {record['lr']:.2e} {rate:,.0f} tok/s")
            if step % t.save_interval == 0 or step == t.steps:
                self.save(step, consumed, history)
            stop = _stop_requested(self.device)
            if stop and step < t.steps:  # SIGTERM/SIGINT: checkpoint at this step boundary, then exit
                if step % t.save_interval != 0:
                    self.save(step, consumed, history)
                _log(f"stopping at step {step} on a signal; checkpointed; --resume continues")
                if dist.get_rank() == 0:
                    (self.staging / "incomplete.json").write_text(json.dumps({"step": step}))
                raise SystemExit(EXIT_INCOMPLETE)
            if t.exit_after_steps is not None and step - started_at >= t.exit_after_steps and step < t.steps:
                if step % t.save_interval != 0:  # --resume continues from here, not the last interval
                    self.save(step, consumed, history)
                _log(f"stopping after {t.exit_after_steps} steps as asked; --resume continues")
                if dist.get_rank() == 0:
                    (self.staging / "incomplete.json").write_text(json.dumps({"step": step}))
                raise SystemExit(EXIT_INCOMPLETE)
        if dist.get_rank() == 0:
            summary = {
                "steps": step,
                "final_loss": history[-1] if history else None,
                "events": events,
                "parameters": self.n_params_total,
                "train_seconds": seconds,
                "tokens_per_step": tokens_per_step,
                "padded_vocab": self.padded_vocab,
                "data_parallel": self.dp,
                "bf16": self.bf16,
                "device": str(self.device),
                # what MFU's peak is looked up by (pretrain/mfu.py)
                "device_name": None if self.cpu else torch.cuda.get_device_name(self.device),
                "matmul_dtype": mfu.matmul_dtype(self.bf16),
            }
            (self.staging / "train_summary.json").write_text(json.dumps(summary, indent=2))

    def _drawn(self, prefixes: list[str], drawn: Counter) -> dict[str, int]:
        """Samples of the global batch per source (every data-parallel rank drew its share)."""
        counts = [float(drawn[k]) for k in range(len(prefixes))]
        counts = torch.tensor(counts, dtype=torch.float64, device=self.device)
        dist.all_reduce(counts, group=self.ps.data_group())
        names = [tokens.source_name(p) for p in prefixes]
        return {n: int(c) for n, c in zip(names, counts.tolist(), strict=True) if c}

    @staticmethod
    def _truncate_log(log: Path, step: int) -> None:
        """Drop log lines of steps after `step` (they are run again after a resume or rollback)."""
        if dist.get_rank() == 0 and log.is_file():
            kept = [x for x in log.read_text().splitlines() if json.loads(x)["step"] <= step]
            log.write_text("".join(x + "\n" for x in kept))

    def evaluate(self) -> float:
        t = self.cfg.train
        losses = [
            self.run_batches(self.micro_batches(self.valid_ds, i * t.global_batch_size), forward_only=True)
            for i in range(t.eval_steps)
        ]
        return sum(losses) / len(losses)


_SIGNALLED: list[int] = []


def _on_signal(signum: int, _frame: Any) -> None:
    """First SIGTERM/SIGINT: stop at the next step boundary; a second one: exit at once."""
    if _SIGNALLED:
        os._exit(128 + signum)
    _SIGNALLED.append(signum)


def _stop_requested(device: torch.device) -> bool:
    """Whether any rank was signalled: all ranks must stop (and save) at the same step."""
    flag = torch.tensor([1.0 if _SIGNALLED else 0.0], device=device)
    dist.all_reduce(flag, op=dist.ReduceOp.MAX)
    return bool(flag.item())


def main() -> None:
    import signal

    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, _on_signal)
    spec = json.loads(Path(sys.argv[1]).read_text())
    trainer = Trainer(spec)
    trainer.train(resume=bool(spec.get("resume")))
    dist.barrier()
    dist.destroy_process_group()


if __name__ == "__main__":  # checkpoint saving starts a spawn-based manager that re-imports this module
    main()
