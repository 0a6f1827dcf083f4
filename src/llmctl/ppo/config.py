"""Configuration of `llmctl ppo` (recipes/ppo/*.yaml) and `llmctl bon`: the prompts, the PPO
knobs of TRL 1.12's experimental PPOTrainer (named as InstructGPT and the survey name them),
LoRA, sampling and the logging cadence.

    llmctl ppo runs/sft --reward-model runs/rm --prompts prompts.jsonl --out runs/ppo -c recipes/ppo/tiny.yaml

What the engine cannot do, and so the config does not offer:
- adaptive KL is not the engine's (PPOTrainer 1.12 has a fixed `kl_coef`): `ppo.kl_target` adds
  Ziegler et al.'s controller on top of it, a callback that rescales the coefficient after each
  step (llmctl.ppo.train.adapt_kl_coef), because the engine reads `args.kl_coef` every rollout.
- PPO-ptx (InstructGPT's pre-training gradient mix): PPOTrainer's loss is the clipped surrogate
  plus vf_coef * value loss, with no hook for a language-modelling batch.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from llmctl.config import RunArgs, check
from llmctl.hf import DEVICES, DTYPES
from llmctl.rm.config import LoraConfig

KL_ESTIMATORS = ("k1", "k3")
VALUE_TRAIN = ("full", "head")


@dataclass
class PromptConfig:
    held_out: int = 8
    """Prompts kept out of training: the policy's greedy answers to them are scored before and after."""
    max_prompt_length: int = 256
    """Tokens per rendered prompt at most (chat template + generation prompt); longer ones are dropped."""
    system_prompt: str = ""
    """A system turn added to every prompt that has none."""

    def __post_init__(self) -> None:
        check(self.held_out >= 1, "data.held_out", "must be >= 1 (the before/after reward needs it)")
        check(self.max_prompt_length >= 4, "data.max_prompt_length", "must be >= 4")


@dataclass
class PpoArgs:
    total_episodes: int = 128
    """Prompts rolled out in all (one response each); training steps = total_episodes / rollout batch."""
    batch_size: int = 8
    """Prompts per device per micro-batch (PPOConfig.per_device_train_batch_size)."""
    grad_accum: int = 1
    """Micro-batches per rollout: rollout batch = batch_size * grad_accum (* processes)."""
    num_mini_batches: int = 1
    """Mini-batches each rollout is split into for the PPO updates; must divide the rollout batch."""
    num_ppo_epochs: int = 4
    """Passes of PPO updates over each rollout."""
    lr: float = 3e-6
    """Learning rate of the policy and the value model."""
    kl_coef: float = 0.05
    """Per-token KL penalty coefficient against the reference; with kl_target, its starting value."""
    kl_target: float | None = None
    """Adaptive KL (Ziegler et al. 2019, as InstructGPT): after each step the coefficient is scaled by
    1 + clip(KL / kl_target - 1, -0.2, 0.2) * rollout / kl_horizon, so the KL per response is steered
    to this target; unset = a fixed kl_coef."""
    kl_horizon: int = 10000
    """The adaptive controller's horizon in episodes (larger = slower changes of the coefficient)."""
    kl_estimator: str = "k1"
    """k1 (log ratio, unbiased) or k3 (lower variance), as TRL names them."""
    gamma: float = 1.0
    """GAE discount."""
    lam: float = 0.95
    """GAE lambda."""
    cliprange: float = 0.2
    """Clip range of the surrogate objective's probability ratio."""
    cliprange_value: float = 0.2
    """Clip range of the value predictions."""
    vf_coef: float = 0.1
    """Weight of the value loss in the joint loss."""
    value_train: str = "full"
    """What of the value model trains: full (every weight, as InstructGPT) or head (its backbone frozen,
    only the score head learns: a stable baseline for a small rollout, and no backward through a
    second model; the usual companion of a LoRA policy)."""
    whiten_rewards: bool = False
    """Whiten the per-token rewards of each rollout (needs >= 8 prompts per mini-batch)."""
    normalise_rewards: bool = True
    """Feed PPO the reward model's score normalised with its reward.json mean/std (score - mean) / std."""
    response_length: int = 32
    """New tokens per response at most; generation stops earlier at the end-of-turn token."""
    temperature: float = 0.7
    """Sampling temperature of the rollouts."""
    missing_eos_penalty: float | None = None
    """Subtracted from the score of a response that never emits the end-of-turn token; unset = none."""
    save_steps: int = 20
    """Checkpoint every N steps into the staging directory."""
    sample_every: int = 5
    """Every N steps, write a few held-out prompts with greedy responses and rewards to samples.jsonl."""
    samples: int = 3
    """Prompts per samples.jsonl entry."""
    eval_batch_size: int = 16
    """Prompts per generate() call when scoring held-out answers."""
    seed: int = 1234
    """Seed of the held-out split and the trainer."""
    dtype: str = "auto"
    """float32, bfloat16 or auto (bfloat16 on a GPU, float32 on CPU)."""
    device: str = "auto"
    """auto (CUDA when present), cpu or cuda."""

    def __post_init__(self) -> None:
        check(self.total_episodes >= 1, "ppo.total_episodes", "must be >= 1")
        check(self.batch_size >= 1, "ppo.batch_size", "must be >= 1")
        check(self.grad_accum >= 1, "ppo.grad_accum", "must be >= 1")
        check(self.num_mini_batches >= 1, "ppo.num_mini_batches", "must be >= 1")
        rollout = self.batch_size * self.grad_accum
        check(
            rollout % self.num_mini_batches == 0,
            "ppo.num_mini_batches",
            f"must divide the rollout batch (batch_size * grad_accum = {rollout})",
        )
        check(
            not self.whiten_rewards or rollout // self.num_mini_batches >= 8,
            "ppo.whiten_rewards",
            "needs >= 8 prompts per mini-batch (batch_size * grad_accum / num_mini_batches)",
        )
        check(self.num_ppo_epochs >= 1, "ppo.num_ppo_epochs", "must be >= 1")
        check(self.lr > 0, "ppo.lr", "must be > 0")
        check(self.kl_coef >= 0, "ppo.kl_coef", "must be >= 0")
        check(self.kl_target is None or self.kl_target > 0, "ppo.kl_target", "must be > 0 (or unset: fixed)")
        check(self.kl_target is None or self.kl_coef > 0, "ppo.kl_coef", "must be > 0 with kl_target")
        check(self.kl_horizon >= 1, "ppo.kl_horizon", "must be >= 1")
        check(self.kl_estimator in KL_ESTIMATORS, "ppo.kl_estimator", "must be k1 or k3")
        check(0 < self.gamma <= 1, "ppo.gamma", "must be in (0, 1]")
        check(0 <= self.lam <= 1, "ppo.lam", "must be in [0, 1]")
        check(self.cliprange > 0, "ppo.cliprange", "must be > 0")
        check(self.cliprange_value > 0, "ppo.cliprange_value", "must be > 0")
        check(self.vf_coef >= 0, "ppo.vf_coef", "must be >= 0")
        check(self.value_train in VALUE_TRAIN, "ppo.value_train", "must be full or head")
        check(self.response_length >= 1, "ppo.response_length", "must be >= 1")
        check(self.temperature > 0, "ppo.temperature", "must be > 0")
        check(self.save_steps >= 1, "ppo.save_steps", "must be >= 1")
        check(self.sample_every >= 1, "ppo.sample_every", "must be >= 1")
        check(self.samples >= 0, "ppo.samples", "must be >= 0")
        check(self.eval_batch_size >= 1, "ppo.eval_batch_size", "must be >= 1")
        check(self.dtype in DTYPES, "ppo.dtype", f"must be one of {', '.join(DTYPES)}")
        check(self.device in DEVICES, "ppo.device", f"must be one of {', '.join(DEVICES)}")


@dataclass
class PpoConfig:
    model: str = ""
    """The policy: an sft artifact, or any Hugging Face causal-LM directory / artifact with hf/."""
    reward_model: str = ""
    """An `llmctl rm` artifact (hf/ + reward.json) or a combined one (criteria with weights); the value
    model starts as a copy of it (of the highest-weighted criterion's model)."""
    prompts: list[str] = field(default_factory=list)
    """JSONL files of {prompt} (a string or messages) or chats {messages} (the turns before the
    last assistant turn are the prompt)."""
    data: PromptConfig = field(default_factory=PromptConfig)
    """Prompt reading and the held-out split."""
    ppo: PpoArgs = field(default_factory=PpoArgs)
    """The PPO algorithm's knobs (TRL PPOConfig)."""
    lora: LoraConfig = field(default_factory=LoraConfig)
    """LoRA on the policy (--lora): the reference is the adapter-disabled policy; hf/ is merged."""
    nproc: int = 1
    """Data-parallel ranks on this node, started through torchrun (--nproc); under torchrun or srun,
    the launcher's process count. ppo.batch_size is per rank: a rollout is batch_size * grad_accum *
    nproc prompts."""
    run: RunArgs = field(default_factory=RunArgs)
    """This invocation: inputs, out, force, resume (set by the caller; not recorded)."""

    def __post_init__(self) -> None:
        check(self.nproc >= 1, "nproc", "must be >= 1")

    @property
    def train(self) -> PpoArgs:
        """ppo.* under the name llmctl.ranks reads the device from (cfg.train.device)."""
        return self.ppo


@dataclass
class BonArgs:
    n: int = 4
    """Responses sampled per prompt (--n)."""
    temperature: float = 1.0
    """Sampling temperature."""
    top_p: float = 1.0
    """Nucleus sampling mass."""
    max_new_tokens: int = 32
    """Tokens per response at most (stops at the end-of-turn token)."""
    batch_size: int = 16
    """Prompts per generate() call."""
    seed: int = 1234
    """Seed of the sampling and the held-out split."""
    device: str = "auto"
    """auto (CUDA when present), cpu or cuda."""

    def __post_init__(self) -> None:
        check(self.n >= 2, "bon.n", "must be >= 2 (best vs worst needs two samples)")
        check(self.temperature > 0, "bon.temperature", "must be > 0")
        check(0 < self.top_p <= 1, "bon.top_p", "must be in (0, 1]")
        check(self.max_new_tokens >= 1, "bon.max_new_tokens", "must be >= 1")
        check(self.batch_size >= 1, "bon.batch_size", "must be >= 1")
        check(self.device in DEVICES, "bon.device", f"must be one of {', '.join(DEVICES)}")


@dataclass
class BonConfig:
    model: str = ""
    """The policy to sample from (sft artifact or HF causal-LM directory)."""
    reward_model: str = ""
    """An `llmctl rm` artifact scoring the samples."""
    prompts: list[str] = field(default_factory=list)
    """Prompt JSONL files, as for ppo."""
    data: PromptConfig = field(default_factory=PromptConfig)
    """Prompt reading and the held-out split (held-out prompts measure the policy before/after --sft)."""
    bon: BonArgs = field(default_factory=BonArgs)
    """Sampling."""
    sft: bool = False
    """Fine-tune the policy on the winners through llmctl sft (rejection-sampling fine-tuning; --sft)."""
    sft_recipe: str = ""
    """The sft recipe for --sft (recipes/sft/*.yaml); empty = sft's defaults."""
    sft_set: list[str] = field(default_factory=list)
    """--set overrides for that sft run (e.g. train.max_steps=30)."""
    run: RunArgs = field(default_factory=RunArgs)
    """This invocation: inputs, out, force (set by the caller; not recorded)."""


CLI_KEYS = {"lora": "lora.enabled", "reward_model": "reward_model", "nproc": "nproc"}
BON_CLI_KEYS = {"n": "bon.n", "sft": "sft", "reward_model": "reward_model"}
