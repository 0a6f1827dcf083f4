"""`llmctl ppo`: RLHF's third step (survey 5.2.3, InstructGPT) with TRL 1.12's experimental PPOTrainer.

    llmctl ppo runs/sft --reward-model runs/rm --prompts prompts.jsonl --out runs/ppo -c recipes/ppo/tiny.yaml
    llmctl ppo models/smollm2 --reward-model runs/rm --prompts p.jsonl --lora -c recipes/ppo/lora.yaml \
        --out runs/ppo-lora

This module checks everything that can be wrong before any training: the policy loads and has a
chat template, pad differs from the end-of-turn token, the reward model is an `llmctl rm`
artifact holding a 1-label sequence classifier (or a combined scorer whose criteria all are), the
policy and the reward model(s) share one vocabulary, the prompts exist and are not empty.
`llmctl.ppo.train` trains.

A combined scorer (`llmctl rm --criterion ...`) reaches the engine as one reward module: every
criterion's backbone reads the same ids, and the score is the weighted sum of their normalised
scores, as `llmctl.rm.scorer.CombinedScorer` defines it; the value model starts as a copy of the
highest-weighted criterion's model.

--nproc N: data-parallel ranks through llmctl.ranks (torchrun; gloo on CPU, NCCL on GPUs). Rank 0
owns the artifact and the prompts; every rank rolls out its own ppo.batch_size prompts and trains;
the logged episodes count every rank.

Policy and reward model must share a vocabulary (else exit 2): the engine hands the policy's token
ids straight to the reward model inside its rollout loop, so re-tokenizing text for the reward
model would mean replacing the engine's reward call, i.e. rewriting its loop.

The stop token is the end-of-turn token `<|im_end|>` when the vocabulary has one (else eos); the
engine counts and penalises responses through eos_token_id, so the tokenizer's eos becomes that
token, and hf/ ships it so (a chat model's generation then stops at the end of its turn).

--resume: every ppo.save_steps steps the run checkpoints into its staging directory (weights,
optimizer, scheduler, RNG states, step counter, logged rows; see `llmctl.ppo.resume`, a subclass
of the engine, whose own train() always starts at step 0); a resumed run continues after the last
complete checkpoint and repeats the uninterrupted run's steps.

Artifact: hf/ (the policy, tokenizer, chat template; LoRA merged), adapter/ (LoRA only),
ppo_log.jsonl/.csv, ppo_curves.png, samples.jsonl; metrics: held-out greedy reward before/after, KL.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from llmctl import artifacts, contamination, hf, launch, ranks
from llmctl.artifacts import Manifest
from llmctl.config import to_dict
from llmctl.errors import UserError
from llmctl.ppo import prompts as pr
from llmctl.ppo.config import PpoConfig
from llmctl.rm.scorer import REWARD_JSON

END_OF_TURN = "<|im_end|>"
PAD_FALLBACK = "<|endoftext|>"  # the pad ppo takes when a model pads with its end of turn


def check_reward_model(path: str | Path) -> Path:
    """The rm artifact's directory; exit 2 unless it holds reward.json and a 1-label sequence
    classifier (for a combined scorer: every criterion's)."""
    p = Path(path)
    if not p.exists():
        raise UserError(f"--reward-model {p}: does not exist")
    if not (p / REWARD_JSON).is_file():
        raise UserError(
            f"--reward-model {p}: not a reward-model artifact (no {REWARD_JSON}); make one with llmctl rm"
        )
    for part in reward_dirs(p):
        config = hf.load_config(part / "hf", what=f"reward model {part}")
        archs = getattr(config, "architectures", None) or []
        if not any(a.endswith("ForSequenceClassification") for a in archs) or config.num_labels != 1:
            raise UserError(
                f"--reward-model {part}: hf/ holds {', '.join(archs) or 'no architecture'} with "
                f"{config.num_labels} labels, not a 1-label sequence classifier "
                "(a reward model from llmctl rm)"
            )
    return p


def reward_dirs(rm: Path) -> list[Path]:
    """The reward-model directories of an rm artifact: itself, or its criteria's (combined scorer),
    the highest weight first (the value model starts as a copy of the first)."""
    spec = json.loads((rm / REWARD_JSON).read_text())
    if "combined" not in spec:
        return [rm]
    parts = sorted(spec["combined"].values(), key=lambda c: -float(c["weight"]))
    return [rm / c["path"] for c in parts]


def policy_tokenizer(model_dir: Path, what: str) -> tuple[Any, int]:
    """The policy's tokenizer set up as the engine needs it (left padding, pad != end of turn) and
    the end-of-turn token id: `<|im_end|>` when the vocabulary has it (ChatML), else eos."""
    tok = hf.load_tokenizer(model_dir, what=what)
    if hf.chat_template(tok) is None:
        raise UserError(f"{what}: the tokenizer has no chat template; ppo renders prompts through one")
    vocab = tok.get_vocab()
    stop = vocab.get(END_OF_TURN, tok.eos_token_id)
    if stop is None:
        raise UserError(f"{what}: the tokenizer has no end-of-turn token ({END_OF_TURN}) and no eos")
    if tok.eos_token_id != stop:  # the engine counts and penalises missing eos with eos_token_id
        tok.eos_token = END_OF_TURN
    if tok.pad_token_id is None or tok.pad_token_id == stop:
        # the engine finds response ends and masks through the pad id, so pad must differ from the
        # end of turn; SmolLM2 pads with <|im_end|>: take another special token the vocabulary has
        candidates = (PAD_FALLBACK, tok.unk_token, tok.bos_token)
        spare = [t for t in candidates if t and vocab.get(t) not in (None, stop)]
        if not spare:
            raise UserError(
                f"{what}: the pad token must exist and differ from the end-of-turn token (the engine finds "
                "response ends and masks through the pad id); add a pad token to the tokenizer"
            )
        tok.pad_token = spare[0]
    tok.padding_side = "left"
    return tok, stop


def check_vocab(policy_tok: Any, scorer: Any, rm: Path, policy: str) -> None:
    """Exit 2 when a reward model reads tokens differently from the policy (see the module docstring)."""
    from llmctl.rm.scorer import parts_of

    for part in parts_of(scorer):
        rm_tok = part.tokenizer
        if rm_tok.get_vocab() != policy_tok.get_vocab():
            raise UserError(
                f"--reward-model {rm}: its tokenizer's vocabulary differs from the policy's ({policy}): "
                "the PPO engine feeds the policy's token ids to the value model, a copy of the reward "
                "model; train the reward model from the same base (llmctl rm POLICY ...)"
            )
        if rm_tok.pad_token_id in (None, policy_tok.eos_token_id):  # padded with its end of turn
            rm_tok.pad_token = policy_tok.pad_token  # as the policy's (see policy_tokenizer)
            part.model.config.pad_token_id = policy_tok.pad_token_id
        if rm_tok.pad_token_id != policy_tok.pad_token_id:
            raise UserError(
                f"--reward-model {rm}: pad token id {rm_tok.pad_token_id} differs from the policy's "
                f"{policy_tok.pad_token_id}; the engine masks both with the policy's"
            )


def run(cfg: PpoConfig) -> Manifest | None:
    """Tune `cfg.model` with PPO against `cfg.reward_model` on `cfg.prompts`, commit `cfg.run.out`.
    With nproc > 1 it starts that many data-parallel ranks through torchrun; under torchrun or srun
    this process is one rank (llmctl.ranks): rank 0 owns the artifact and the prompts, every rank
    rolls out and trains. Returns the manifest (None on ranks other than 0)."""
    out = cfg.run.out_dir("ppo")
    if not cfg.model:
        raise UserError("ppo needs a POLICY: an sft artifact or a Hugging Face causal-LM directory")
    if not cfg.reward_model:
        raise UserError("ppo needs --reward-model RM: an llmctl rm artifact")
    if not cfg.prompts:
        raise UserError("ppo needs --prompts FILE (JSONL of {prompt} or {messages})")
    model_dir = hf.model_dir(cfg.model)
    what = f"policy {cfg.model}"
    config = hf.load_config(model_dir, what=what)
    if not any(a.endswith("ForCausalLM") for a in getattr(config, "architectures", None) or []):
        raise UserError(f"{what}: not a causal LM (architectures: {getattr(config, 'architectures', None)})")
    rm = check_reward_model(cfg.reward_model)
    if cfg.nproc > 1 and not launch.under_torchrun():  # the ranks check the rest; rank 0 reports
        return ranks.start(cfg, out, "llmctl.ppo.stage")
    tokenizer, stop = policy_tokenizer(model_dir, what)
    if cfg.lora.enabled:
        from llmctl.sft.train import lora_targets

        lora_targets(hf.skeleton_causal_lm(model_dir, what=what), cfg.lora.target_modules)
    from llmctl.rm.scorer import Scorer

    scorer = Scorer.load(rm, device=cfg.ppo.device, batch_size=cfg.ppo.eval_batch_size)
    check_vocab(tokenizer, scorer, rm, cfg.model)
    context = getattr(config, "max_position_embeddings", None)
    need = cfg.data.max_prompt_length + cfg.ppo.response_length
    if context is not None and need > context:
        raise UserError(
            f"data.max_prompt_length + ppo.response_length = {need}: above the policy's context of {context}"
        )
    for p in cfg.prompts:
        if not Path(p).exists():
            raise UserError(f"--prompts {p}: does not exist")

    def begin() -> artifacts.StageRun:
        return artifacts.begin(
            "ppo",
            out,
            config=to_dict(cfg),
            inputs=[Path(cfg.model), rm, *(Path(p) for p in cfg.prompts)],
            force=cfg.run.force,
            resume=cfg.run.resume,
        )

    def prepare(art: artifacts.StageRun) -> dict[str, Any]:
        data = prompts_for(cfg, tokenizer)
        contamination.record_index(art.staging, map(contamination.messages_text, data["train"]))  # for eval
        return data

    def train_on(staging: Path, data: dict[str, Any]) -> ranks.Result | None:
        from llmctl.ppo import train

        metrics = train.train(
            cfg, staging, model_dir, tokenizer, scorer, reward_dirs(rm)[0], data["train"], data["held"], stop
        )
        if metrics is None:  # a rank other than 0
            return None
        metrics["prompts_dropped_overlong"] = data["dropped"]
        metrics["prompts_skipped"] = data["skipped"]
        keys = ("reward_before", "reward_after", "final_kl", "steps", "episodes_per_s")
        return metrics, {k: metrics[k] for k in keys}

    if launch.under_torchrun():
        return ranks.run_as_rank(cfg, begin, prepare, train_on)
    art = begin()
    if art.done:
        return art.manifest
    with artifacts.discard_on_user_error(art):
        result = train_on(art.staging, prepare(art))
        assert result is not None
        return art.commit(*result)


def prompts_for(cfg: PpoConfig, tokenizer: Any) -> dict[str, Any]:
    """Rank 0's part: the prompts read, the over-long ones dropped, the held-out split; exit 2 when
    fewer than one rollout batch (over every rank) is left."""
    skipped: dict[str, int] = {}
    prompts = pr.read_prompts(cfg.prompts, system_prompt=cfg.data.system_prompt, skipped=skipped)
    kept = [p for p in prompts if len(pr.prompt_ids(tokenizer, p)) <= cfg.data.max_prompt_length]
    train_prompts, held = pr.split(kept, cfg.data.held_out, cfg.ppo.seed)
    rollout = cfg.ppo.batch_size * cfg.ppo.grad_accum * cfg.nproc
    if len(train_prompts) < rollout:
        raise UserError(
            f"--prompts: {len(train_prompts)} training prompts, fewer than one rollout batch "
            f"(ppo.batch_size * ppo.grad_accum * nproc = {rollout}); the engine drops incomplete batches"
        )
    return {"train": train_prompts, "held": held, "dropped": len(prompts) - len(kept), "skipped": skipped}
