"""`llmctl pretrain` on CPU with gloo: the loss falls, layouts agree (TP=2, PP=2, DP=2 vs 1),
resume equals an uninterrupted run (also across layouts), a spike rolls back, hf/ matches."""

from __future__ import annotations

import hashlib
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

from llmctl import artifacts, config
from llmctl.pretrain import PretrainConfig
from tests.conftest import REPO, llmctl
from tests.fixtures import corpus

pytestmark = pytest.mark.slow
BASE = ["model.seq_length=64", "train.log_interval=1", "optim.warmup_steps=2", "optim.lr=0.003"]
GOLDEN = REPO / "tests" / "assets" / "pretrain" / "golden_losses.json"
GOLDEN_RUN = ["train.steps=6", "train.save_interval=6", "train.eval_interval=6", "train.seed=1234"]
REGENERATE = "LLMCTL_UPDATE_GOLDEN=1 pytest tests/integration/test_pretrain.py -k golden"


@pytest.fixture(scope="module")
def tokenized(tmp_path_factory):
    root = tmp_path_factory.mktemp("pt")
    src = root / "docs.jsonl"
    with open(src, "w") as f:
        for i, p in enumerate(corpus.prose(60)):
            f.write(json.dumps({"id": str(i), "text": p}) + "\n")
    r = llmctl("tokenize", str(src), "--out", str(root / "tok"), "--set", "tokenizer.vocab_size=512")
    assert r.returncode == 0, r.stderr
    return root / "tok"


def train_losses(
    tokenized: Path, staging: Path, overrides: list[str], nproc: int = 1, env: dict | None = None
) -> list[float]:
    """Run the rank entry point directly (no export) and return the per-step training losses."""
    cfg = config.load(PretrainConfig, None, [*BASE, *overrides, f"nproc={nproc}"])
    staging.mkdir(parents=True, exist_ok=True)
    spec = staging / "spec.json"
    spec.write_text(
        json.dumps({"config": config.to_dict(cfg), "tokenized": str(tokenized), "staging": str(staging)})
    )
    launcher = (
        ["-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={nproc}"] if nproc > 1 else []
    )
    r = subprocess.run(
        [sys.executable, *launcher, "-m", "llmctl.pretrain.train", str(spec)],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=600,
        env={**os.environ, **(env or {})},
    )
    assert r.returncode == 0, r.stderr[-4000:]
    (staging / "stderr.txt").write_text(r.stderr)
    return [json.loads(x)["loss"] for x in (staging / "train_log.jsonl").read_text().splitlines()]


def pretrain_args(tokenized: Path, out: Path) -> list[str]:
    recipe = str(REPO / "recipes/pretrain/tiny.yaml")
    return ["pretrain", str(tokenized), "--out", str(out), "--config", recipe]  # fmt: skip


@pytest.fixture(scope="module")
def pretrained(tokenized, tmp_path_factory):
    """One 120-step run of the tiny recipe (each pretrain process imports torch and megatron-core):
    the end-to-end test checks the run and its artifact, the eval test reads it."""
    out = tmp_path_factory.mktemp("pretrained") / "pt"
    r = llmctl(*pretrain_args(tokenized, out), "--set", "train.steps=120", "--set", "model.seq_length=64")
    assert r.returncode == 0, r.stderr[-4000:]
    return out


@pytest.fixture(scope="module")
def reference(tokenized, tmp_path_factory):
    """The 6-step single-process run (seed 1234, the default) that the golden losses record, the
    layouts are compared with, and torchrun's ranks must reproduce: its staging directory."""
    staging = tmp_path_factory.mktemp("reference") / "ref"
    train_losses(tokenized, staging, GOLDEN_RUN, env={"CUDA_VISIBLE_DEVICES": ""})
    return staging


def logged_losses(staging: Path) -> list[float]:
    return [json.loads(x)["loss"] for x in (staging / "train_log.jsonl").read_text().splitlines()]


def test_pretrain_end_to_end(tokenized, pretrained, tmp_path):
    out = pretrained
    args = [*pretrain_args(tokenized, out), "--set", "train.steps=120", "--set", "model.seq_length=64"]
    m = artifacts.Manifest.read(out).metrics
    assert m["first_train_loss"] == pytest.approx(math.log(512), abs=0.15)  # uniform at initialisation
    assert m["final_train_loss"] < m["ln_vocab"] - 1.0  # well below ln(vocab): perplexity < uniform / e
    assert m["hf_max_abs_logit_diff"] <= 1e-4
    assert (
        len((out / "loss_curve.csv").read_text().splitlines()) == 121
        and (out / "loss_curve.png").stat().st_size
    )
    assert (out / "checkpoints" / "iter_0000120").is_dir()
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(out / "hf", local_files_only=True)
    tok = AutoTokenizer.from_pretrained(out / "hf", local_files_only=True)
    ids = tok("The Congress of the United States", return_tensors="pt")["input_ids"]
    assert model(ids).logits.shape[-1] >= 512 and model.config.model_type == "llama"
    again = llmctl(*args, env={"LLMCTL_QUIET": "0"})
    assert again.returncode == 0 and "up to date" in again.stderr
    exported = tmp_path / "exported"
    r = llmctl("export", str(out / "checkpoints" / "iter_0000120"), "--out", str(exported))
    assert r.returncode == 0, r.stderr[-3000:]
    assert artifacts.Manifest.read(exported).metrics["max_abs_logit_diff"] <= 1e-4
    again = AutoModelForCausalLM.from_pretrained(exported, local_files_only=True)
    assert (again(ids).logits - model(ids).logits).abs().max() < 1e-5
    r = llmctl("export", str(out / "checkpoints"), "--out", str(tmp_path / "bad"))
    assert r.returncode == 2 and "not a pretrain checkpoint" in r.stderr


def test_layouts_agree(tokenized, reference, tmp_path):
    steps = ["train.steps=6", "train.save_interval=6", "train.eval_interval=6"]
    ref = logged_losses(reference)
    # bf16 and sequence parallelism are dropped on CPU: said once (rank 0), and the losses unchanged
    dropped = ["train.bf16=true", "parallel.sequence_parallel=true"]
    tp2 = train_losses(tokenized, tmp_path / "tp2", [*steps, "parallel.tensor=2", *dropped], nproc=2)
    said = (tmp_path / "tp2" / "stderr.txt").read_text()
    assert said.count("train.bf16=true is ignored on CPU") == 1
    assert said.count("parallel.sequence_parallel=true is ignored on CPU") == 1
    dp2 = train_losses(tokenized, tmp_path / "dp2", steps, nproc=2)
    zero1 = train_losses(
        tokenized, tmp_path / "zero1", [*steps, "parallel.distributed_optimizer=true"], nproc=2
    )
    assert tp2 == pytest.approx(ref, rel=1e-5)
    assert dp2 == pytest.approx(ref, rel=1e-5)
    assert zero1 == pytest.approx(ref, rel=1e-5)  # DP=2 with the distributed optimizer (ZeRO-1)
    assert (tmp_path / "zero1" / "checkpoints" / "iter_0000006").is_dir()
    # PP stages initialise their layers from different RNG draws: start both from one checkpoint
    init = f"train.init_checkpoint={reference / 'checkpoints' / 'iter_0000006'}"
    pp1 = train_losses(tokenized, tmp_path / "pp1", [*steps, init])
    pp2 = train_losses(tokenized, tmp_path / "pp2", [*steps, init, "parallel.pipeline=2"], nproc=2)
    assert pp2 == pytest.approx(pp1, rel=1e-5)
    assert pp1[0] < ref[0]  # it did start from the trained weights


def test_resume_equals_uninterrupted_even_across_layouts(tokenized, tmp_path):
    common = [
        "--set",
        "train.steps=8",
        "--set",
        "train.save_interval=4",
        "--set",
        "train.eval_interval=8",
        "--set",
        "model.seq_length=64",
        "--set",
        "optim.warmup_steps=2",
    ]
    ref = tmp_path / "ref"
    assert llmctl("pretrain", str(tokenized), "--out", str(ref), *common).returncode == 0
    out = tmp_path / "out"
    r = llmctl(
        "pretrain",
        str(tokenized),
        "--out",
        str(out),
        *common,
        "--nproc",
        "2",
        "--set",
        "parallel.tensor=2",
        "--set",
        "train.exit_after_steps=5",
    )
    assert r.returncode == 3 and "--resume" in r.stderr and not out.exists()
    r = llmctl("pretrain", str(tokenized), "--out", str(out), *common, "--resume")  # TP=1 now
    assert r.returncode == 0, r.stderr[-4000:]
    losses = lambda d: [json.loads(x)["loss"] for x in (d / "train_log.jsonl").read_text().splitlines()]  # noqa: E731
    assert losses(out) == pytest.approx(losses(ref), rel=1e-5)
    assert [json.loads(x)["step"] for x in (out / "train_log.jsonl").read_text().splitlines()] == list(
        range(1, 9)
    )


# one rank that records the model's weights just before and just after each rollback's load
SPIKE_RUN = r"""
import json, sys
from pathlib import Path

def main():
    import torch
    import torch.distributed as dist
    from llmctl.pretrain import train

    spec = json.loads(Path(sys.argv[1]).read_text())
    seen = []
    load = train.Trainer.load

    def weights(trainer):
        sd = trainer.model.module.state_dict()
        return {k: v.detach().clone() for k, v in sd.items() if not k.endswith("_extra_state")}

    def recording_load(self, path):
        before = weights(self)
        progress = load(self, path)
        seen.append({"checkpoint": Path(path).name, "before": before, "after": weights(self)})
        return progress

    train.Trainer.load = recording_load
    train.Trainer(spec).train(resume=False)
    torch.save(seen, Path(spec["staging"]) / "rollbacks.pt")
    dist.barrier()
    dist.destroy_process_group()

if __name__ == "__main__":
    main()
"""

# the checkpoint's weights, read the way export reads them (CPU, fp32, no trainer)
READ_CHECKPOINT = r"""
import json, sys, tempfile
from pathlib import Path

def main():
    import torch
    from llmctl import config
    from llmctl.pretrain.config import PretrainConfig
    from llmctl.megatron.checkpoint import load_cpu_model

    spec = json.loads(Path(sys.argv[1]).read_text())
    cfg = config.from_dict(PretrainConfig, spec["config"])
    vocab = json.loads((Path(spec["tokenized"]) / "blend.json").read_text())["vocab_size"]
    with tempfile.TemporaryDirectory() as scratch:
        model = load_cpu_model(cfg, Path(sys.argv[2]), vocab, Path(scratch))
    sd = {k: v for k, v in model.state_dict().items() if not k.endswith("_extra_state")}
    torch.save(sd, sys.argv[3])

if __name__ == "__main__":
    main()
"""


def test_loss_spike_rolls_back_and_skips(tokenized, tmp_path):
    """A real spike: one update with 10,000 x the learning rate blows the weights up; the next
    loss spikes, and rollback restores exactly the checkpoint's weights."""
    staging = tmp_path / "spike"
    overrides = ["train.steps=14", "train.save_interval=10", "stability.inject_spike_at=12"]
    cfg = config.load(PretrainConfig, None, [*BASE, *overrides, "nproc=1"])
    staging.mkdir()
    spec = staging / "spec.json"
    spec.write_text(
        json.dumps({"config": config.to_dict(cfg), "tokenized": str(tokenized), "staging": str(staging)})
    )
    (tmp_path / "run.py").write_text(SPIKE_RUN)
    r = subprocess.run(
        [sys.executable, str(tmp_path / "run.py"), str(spec)],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=600,
    )
    assert r.returncode == 0, r.stderr[-4000:]
    losses = [json.loads(x)["loss"] for x in (staging / "train_log.jsonl").read_text().splitlines()]
    summary = json.loads((staging / "train_summary.json").read_text())
    (event,) = summary["events"]
    assert event["step"] == 13 and event["rolled_back_to"] == "iter_0000010"
    assert event["skipped_samples"] == [10 * 8, 13 * 8]  # steps 11-13's data is never trained on again
    assert len(losses) == 14 and all(math.isfinite(x) and x < 100 for x in losses)
    assert not math.isfinite(event["loss"]) or event["loss"] > 3 * max(losses[:12])  # a real spike
    import torch

    (rollback,) = torch.load(staging / "rollbacks.pt")
    assert rollback["checkpoint"] == "iter_0000010"
    (tmp_path / "read.py").write_text(READ_CHECKPOINT)
    ckpt = staging / "checkpoints" / "iter_0000010"
    r = subprocess.run(
        [sys.executable, str(tmp_path / "read.py"), str(spec), str(ckpt), str(tmp_path / "ckpt.pt")],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=300,
    )
    assert r.returncode == 0, r.stderr[-3000:]
    saved = torch.load(tmp_path / "ckpt.pt")
    assert set(saved) == set(rollback["after"])
    moved = [float((rollback["before"][k] - saved[k]).abs().max()) for k in saved]
    assert any(not math.isfinite(d) or d > 1.0 for d in moved)  # the spike moved them far from the checkpoint
    for k in saved:  # and the rollback put the checkpoint's weights back, exactly
        assert torch.equal(rollback["after"][k], saved[k]), k


def test_golden_losses(tokenized, reference):
    """Fixed seed, tiny model, CPU fp32: the first steps' losses equal the stored ones within 1e-4
    (as Megatron-LM's functional tests do). Any change to initialisation, data order, the model or
    the optimizer moves them: update the file only on purpose, with the command it records."""
    losses = logged_losses(reference)  # the GOLDEN_RUN, with CUDA hidden
    data = hashlib.sha256((tokenized / "data" / "corpus_text_document.bin").read_bytes()).hexdigest()
    if os.environ.get("LLMCTL_UPDATE_GOLDEN") == "1":
        from importlib.metadata import version

        from torch import __version__ as torch_version

        GOLDEN.parent.mkdir(parents=True, exist_ok=True)
        record = {
            "regenerate": REGENERATE,
            "overrides": [*BASE, *GOLDEN_RUN],
            "token_data_sha256": data,
            "recorded_with": {"torch": str(torch_version), "megatron-core": version("megatron-core")},
            "losses": losses,
        }
        GOLDEN.write_text(json.dumps(record, indent=2) + "\n")
        pytest.skip(f"rewrote {GOLDEN.relative_to(REPO)}")
    golden = json.loads(GOLDEN.read_text())
    assert golden["overrides"] == [*BASE, *GOLDEN_RUN], "the run changed: regenerate on purpose"
    assert golden["token_data_sha256"] == data, "the tokenize fixture changed (not the trainer)"
    assert len(losses) == len(golden["losses"]) == 6
    assert losses == pytest.approx(golden["losses"], abs=1e-4)


def test_bad_input_is_exit_2(tokenized, tmp_path):
    r = llmctl("pretrain", str(tmp_path), "--out", str(tmp_path / "o"))
    assert r.returncode == 2 and "not a tokenize artifact" in r.stderr
    r = llmctl(
        "pretrain", str(tokenized), "--out", str(tmp_path / "o"), "--nproc", "3", "--set", "parallel.tensor=2"
    )
    assert r.returncode == 2 and "multiple of TP x PP" in r.stderr


def test_batch_size_ramp_up(tokenized, tmp_path):
    train_losses(
        tokenized,
        tmp_path / "ramp",
        [
            "train.steps=6",
            "train.micro_batch_size=2",
            "train.global_batch_size=8",
            "train.rampup_batch_size=[4, 4, 16]",
            "train.save_interval=6",
            "train.eval_interval=6",
        ],
    )
    log = [json.loads(x) for x in (tmp_path / "ramp" / "train_log.jsonl").read_text().splitlines()]
    assert [r["batch_size"] for r in log] == [4, 4, 4, 4, 8, 8]  # 16 samples at 4, then the full 8
    assert [r["consumed"] for r in log] == [4, 8, 12, 16, 24, 32]


def test_curriculum_stages_follow_blend_json(tmp_path):
    """blend.json's curriculum: 'a' alone for its token budget (4 steps of 8 x 64), then the main blend."""
    passages = corpus.prose(60)
    for name, part in (("a", passages[:30]), ("b", passages[30:])):
        with open(tmp_path / f"{name}.jsonl", "w") as f:
            for i, p in enumerate(part):
                f.write(json.dumps({"id": f"{name}{i}", "text": p}) + "\n")
    recipe = tmp_path / "tok.yaml"
    recipe.write_text("tokenizer: {vocab_size: 512}\ncurriculum:\n  - {blend: {a: 1.0}, tokens: 2048}\n")
    tok = tmp_path / "tok"
    r = llmctl(
        "tokenize", "--input", f"a={tmp_path / 'a.jsonl'}", "--input", f"b={tmp_path / 'b.jsonl'}",
        "--out", str(tok), "--config", str(recipe),
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    steps = ["train.steps=8", "train.save_interval=8", "train.eval_interval=8"]
    train_losses(tok, tmp_path / "cur", steps)
    log = [json.loads(x) for x in (tmp_path / "cur" / "train_log.jsonl").read_text().splitlines()]
    assert [r["curriculum_stage"] for r in log] == [0, 0, 0, 0, 1, 1, 1, 1]
    assert all(r["data"] == {"a": 8} for r in log[:4])
    assert sum(r["data"].get("b", 0) for r in log[4:]) > 0  # the main blend draws from both
    assert all(sum(r["data"].values()) == 8 for r in log)
    train_losses(tok, tmp_path / "flat", [*steps, "train.curriculum=false"])
    flat = [json.loads(x) for x in (tmp_path / "flat" / "train_log.jsonl").read_text().splitlines()]
    assert "curriculum_stage" not in flat[0] and sum(r["data"].get("b", 0) for r in flat[:4]) > 0


def test_torchrun_starts_llmctl_pretrain_as_its_ranks(tokenized, reference, tmp_path):
    """`torchrun -m llmctl pretrain`: every process is a rank (DP=2 here), rank 0 owns the artifact."""
    steps = ["train.steps=6", "train.save_interval=6", "train.eval_interval=6"]
    ref = logged_losses(reference)
    out = tmp_path / "pt"
    cmd = [
        sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node=2",
        "-m", "llmctl", "pretrain", str(tokenized), "--out", str(out),
    ]  # fmt: skip
    sets = [x for s in [*BASE, *steps] for x in ("--set", s)]
    r = subprocess.run([*cmd, *sets], capture_output=True, text=True, cwd=REPO, timeout=600)
    assert r.returncode == 0, r.stderr[-4000:]
    m = artifacts.Manifest.read(out)
    assert m.config["nproc"] == 2 and m.metrics["layout"] == {"tp": 1, "pp": 1, "dp": 2}
    losses = [json.loads(x)["loss"] for x in (out / "train_log.jsonl").read_text().splitlines()]
    assert losses == pytest.approx(ref, rel=1e-5)
    assert m.metrics["hf_max_abs_logit_diff"] <= 1e-4
    again = subprocess.run([*cmd, *sets], capture_output=True, text=True, cwd=REPO, timeout=600)
    assert again.returncode == 0 and "up to date" in again.stderr + again.stdout


def test_eval_reads_a_pretrain_artifact(tokenized, pretrained, tmp_path):
    """`llmctl eval PRETRAIN_DIR` finds hf/ inside the artifact and records the artifact's lineage;
    the trained model beats a uniform guess on held-out text."""
    out = pretrained
    held = tmp_path / "held.jsonl"
    held.write_text("".join(json.dumps({"text": p}) + "\n" for p in corpus.prose(70)[60:]))  # not trained on
    ev = tmp_path / "ev"
    r = llmctl("eval", str(out), "--out", str(ev), "--tasks", f"perplexity:{held},capitals", "--limit", "8")
    assert r.returncode == 0, r.stderr[-3000:]
    res = json.loads((ev / "results.json").read_text())
    info = res["models"]["pt"]
    assert info["path"] == str((out / "hf").resolve()) and info["lineage_kind"] == "artifact"
    assert info["lineage_sha256"] == artifacts.sha256_file(out / "manifest.json")
    ppl = res["scores"]["pt"]["held"]["all"]["token_perplexity"]["value"]
    assert ppl < 512 / 2  # under half the perplexity of a uniform guess over the 512-token vocabulary
    assert res["scores"]["pt"]["capitals"]["all"]["n"] == 8
    lineage = llmctl("lineage", str(ev))
    assert lineage.returncode == 0 and str(tokenized) in lineage.stdout.replace("\n", "")
