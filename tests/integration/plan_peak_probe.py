"""Peak host memory of the tiny pretrain recipe's training steps on CPU (for test_plan.py).

    python tests/integration/plan_peak_probe.py WORKDIR STEPS

Builds a token artifact of random ids (vocabulary 4096, as the demo's tokenizer), then runs the
pretrain stage's own Trainer (megatron-core model, DDP grad buffer, optimizer) for STEPS steps
without checkpoints or evaluation, and prints JSON: RSS before the Trainer is built, and the
peak RSS (VmHWM) of the steps. Linux only (/proc/self/status).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np


def rss(key: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1]) * 1024
    raise KeyError(key)


def main() -> None:
    work, steps = Path(sys.argv[1]), int(sys.argv[2])
    from llmctl import config as cfgmod
    from llmctl.megatron import datasets
    from llmctl.pretrain.config import PretrainConfig
    from llmctl.pretrain.train import Trainer

    tok = work / "tok"
    (tok / "data").mkdir(parents=True, exist_ok=True)
    builder = datasets.IndexedDatasetBuilder(str(tok / "data/corpus_text_document.bin"), dtype=np.uint16)
    rng = np.random.default_rng(0)
    import torch

    for _ in range(64):
        builder.add_document(torch.from_numpy(rng.integers(2, 4096, 600).astype(np.int64)), [600])
    builder.finalize(str(tok / "data/corpus_text_document.idx"))
    blend = {
        "blend": [["data/corpus_text_document"], [1.0]],
        "vocab_size": 4096,
        "eod": 0,
        "pad": 1,
        "curriculum": [],
        "dtype": "uint16",
        "seed": 1234,
    }
    (tok / "blend.json").write_text(json.dumps(blend))
    cfg = cfgmod.load(PretrainConfig, Path(__file__).parents[2] / "recipes/pretrain/tiny.yaml")
    staging = work / "staging"
    staging.mkdir(exist_ok=True)
    before = rss("VmRSS")
    trainer = Trainer({"config": cfgmod.to_dict(cfg), "tokenized": str(tok), "staging": str(staging)})
    trainer.datasets(1)
    built = rss("VmRSS")
    Path("/proc/self/clear_refs").write_text("5")  # reset VmHWM to the current RSS
    for step in range(steps):
        trainer.model.zero_grad_buffer()
        trainer.optimizer.zero_grad()
        trainer.run_batches(trainer.micro_batches(trainer.phases[-1][2], step * 8), forward_only=False)
        trainer.optimizer.step()
    print(json.dumps({"before": before, "built": built, "peak": rss("VmHWM"), "params": trainer.n_params}))


if __name__ == "__main__":
    main()
