"""Per-GPU memory of a transformer at a TP/PP/DP layout, and the layouts that fit.

    python -c "from llmctl.plan import memory as m; print(m.estimate(m.GPT3_175B, m.Layout(8, 8, 16)).total)"

Model states: bytes per parameter from Megatron-LM's distributed-optimizer table
(docs/source/api-guide/dist_optimizer.md): bf16 weights with fp32 gradients (Megatron's default,
18 bytes/param; 6 + 12/d with the distributed optimizer, i.e. ZeRO-1 over d data-parallel ranks),
fp16 (20; 4 + 16/d) and fp32 (16; 8 + 8/d); `bf16-bf16grad` is the ZeRO paper's 16 bytes/param
(Rajbhandari et al. 2020, §3.1: 2 + 2 + K with K = 12; 4 + 12/d under ZeRO-1).

Activations: Korthikanti et al. 2022 ("Reducing Activation Recomputation in Large Transformer
Models"), Table 2, bytes per layer per micro-batch with 16-bit activations (s sequence, b micro
batch, h hidden, a heads, t tensor-parallel size):
    no parallelism                       sbh(34 + 5as/h)
    tensor parallel                      sbh(10 + 24/t + 5as/ht)
    tensor + sequence parallel           sbh(34/t + 5as/ht)
    tensor parallel + selective recompute           sbh(10 + 24/t)
    tensor + sequence parallel + selective recompute sbh(34/t)
    full recompute                       2sbh (only the layer input is kept; /t when it is sharded
                                         along the sequence by sequence parallelism)
With 1F1B the first pipeline stage holds p micro-batches of L/p layers, that is L layers' worth
(the paper's §4.2.3); stage i holds min(p - i, m). The formula is the paper's for a GPT layer
(LayerNorm, GeLU, dropout); a LLaMA layer (RMSNorm, SwiGLU, no dropout) differs by a few sbh.
fp32 activations (CPU) count twice.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace

from llmctl.errors import UserError

# Megatron-LM docs/source/api-guide/dist_optimizer.md, "Data flow" table: bytes per parameter
# (weights, gradients, optimizer states); optimizer states are what the distributed optimizer
# divides by the data-parallel size d (its "fp32 main params + fp32 main grads + Adam m, v").
PRECISIONS: dict[str, tuple[int, int, int]] = {
    "bf16": (2, 4, 12),  # 18, or 6 + 12/d: bf16 params, fp32 grad buffer, fp32 main params + m + v
    "bf16-bf16grad": (2, 2, 12),  # 16, or 4 + 12/d: the ZeRO paper's mixed-precision Adam
    "fp16": (2, 2, 16),  # 20, or 4 + 16/d: fp16 grads, fp32 main grads + main params + m + v
    "fp32": (4, 4, 8),  # 16, or 8 + 8/d: no master copy; Adam m, v
}
RECOMPUTE = ("none", "selective", "full")


@dataclass(frozen=True)
class Model:
    """A decoder-only transformer's shape. arch `llama`: RMSNorm, SwiGLU, RoPE, no biases (the
    pretrain stage's model); `gpt`: GPT-2/3 (LayerNorm, biases, GeLU, learned positions)."""

    layers: int
    hidden: int
    heads: int
    seq: int
    vocab: int
    ffn: int
    kv_heads: int
    tied: bool = True
    arch: str = "llama"

    def padded_vocab(self, tp: int) -> int:
        # Megatron-LM pads the vocabulary to a multiple of 128 x TP (megatron/model.padded_vocab)
        pad = 128 * tp
        return (self.vocab + pad - 1) // pad * pad

    def layer_params(self, tp: int = 1) -> int:
        """Parameters of one layer held by one tensor-parallel rank (norms are replicated)."""
        h, f, t = self.hidden, self.ffn, tp
        kv = self.kv_heads * (h // self.heads)
        if self.arch == "gpt":  # QKV + proj + fc1 + fc2 weights and biases; row-parallel biases and
            # the two LayerNorms (weight + bias) are replicated across TP
            return (3 * h * h + h * h + 2 * h * f) // t + (3 * h + f) // t + 2 * h + 4 * h
        return (h * (h + 2 * kv) + h * h + 3 * h * f) // t + 2 * h

    def params(self) -> int:
        """All parameters (TP = PP = 1), what the pretrain manifest records as `parameters`."""
        v = self.padded_vocab(1)
        embed = v * self.hidden + (self.seq * self.hidden if self.arch == "gpt" else 0)
        final_norm = 2 * self.hidden if self.arch == "gpt" else self.hidden
        out = 0 if self.tied else v * self.hidden
        return self.layers * self.layer_params(1) + embed + final_norm + out

    def flops_per_token(self) -> float:
        """6N + the attention scores' 12·L·h·s (Kaplan et al. 2020, Table 1; what pretrain's MFU uses)."""
        return 6 * self.params() + 12 * self.layers * self.hidden * self.seq


# GPT-3 175B (Brown et al. 2020, Table 2.1: 96 layers, d_model 12288, 96 heads, context 2048),
# vocabulary 51200 as Megatron-LM pads GPT-2's 50257 (Narayanan et al. 2021, Table 1's 175B row).
GPT3_175B = Model(96, 12288, 96, 2048, 51200, 4 * 12288, 96, tied=True, arch="gpt")


@dataclass(frozen=True)
class Layout:
    """A parallel layout and the training switches that change memory."""

    tp: int = 1
    pp: int = 1
    dp: int = 1
    micro_batch: int = 1
    global_batch: int = 1
    sequence_parallel: bool = False
    recompute: str = "none"
    distributed_optimizer: bool = False
    precision: str = "bf16"

    @property
    def micro_batches(self) -> int:
        return max(1, self.global_batch // (self.micro_batch * self.dp))

    @property
    def bubble(self) -> float:
        """Pipeline bubble over ideal time, (p - 1)/m (Narayanan et al. 2021, §2.2.1)."""
        return (self.pp - 1) / self.micro_batches

    def check(self, model: Model) -> None:
        if self.recompute not in RECOMPUTE:
            raise UserError(f"--recompute {self.recompute!r}: one of {', '.join(RECOMPUTE)}")
        if self.precision not in PRECISIONS:
            raise UserError(f"--precision {self.precision!r}: one of {', '.join(PRECISIONS)}")
        if min(self.tp, self.pp, self.dp, self.micro_batch) < 1:
            raise UserError("--tp, --pp, data-parallel size and --micro-batch must be >= 1")
        if model.layers % self.pp:
            raise UserError(f"--pp {self.pp} does not divide the model's {model.layers} layers")
        if self.global_batch % (self.micro_batch * self.dp):
            raise UserError(
                f"the global batch ({self.global_batch}) is not a multiple of micro-batch x data-parallel "
                f"size ({self.micro_batch} x {self.dp}): change --gpus, --tp/--pp or --micro-batch"
            )
        if model.heads % self.tp or model.kv_heads % self.tp:
            raise UserError(f"--tp {self.tp} does not divide the attention heads / query groups")


@dataclass(frozen=True)
class Estimate:
    """Bytes on the fullest GPU (the first pipeline stage unless the last one holds more)."""

    stage: int
    params: int
    weights: float
    grads: float
    optimizer: float
    activations: float
    logits: float
    in_flight: int
    layout: Layout

    @property
    def total(self) -> float:
        return self.weights + self.grads + self.optimizer + self.activations + self.logits

    def to_dict(self) -> dict:
        return {
            **{k: v for k, v in asdict(self).items() if k != "layout"},
            "total": self.total,
            "layout": asdict(self.layout),
            "bubble": self.layout.bubble,
        }


def activation_bytes(
    model: Model, layout: Layout, micro_batch: int | None = None, fp32: bool = False
) -> float:
    """One layer, one micro-batch: Korthikanti et al. 2022, Table 2 (see the module docstring)."""
    s, b, h, a, t = model.seq, micro_batch or layout.micro_batch, model.hidden, model.heads, layout.tp
    sp = layout.sequence_parallel and t > 1
    attn = 5 * a * s / (h * t)  # softmax input/output, its dropout mask, attention over values
    if layout.recompute == "full":
        value = 2 * s * b * h / (t if sp else 1)
    elif sp:
        value = s * b * h * (34 / t + (0 if layout.recompute == "selective" else attn))
    else:
        value = s * b * h * (10 + 24 / t + (0 if layout.recompute == "selective" else attn))
    return value * (2 if fp32 else 1)


def stage_params(model: Model, layout: Layout, stage: int) -> int:
    """Parameters one GPU of pipeline stage `stage` holds (one TP shard)."""
    t, p = layout.tp, layout.pp
    n = model.layers // p * model.layer_params(t)
    vocab_shard = model.padded_vocab(t) * model.hidden // t
    if stage == 0:
        n += vocab_shard + (model.seq * model.hidden if model.arch == "gpt" else 0)
    if stage == p - 1:
        n += 2 * model.hidden if model.arch == "gpt" else model.hidden  # final norm
        # untied, or tied across stages (Megatron keeps a copy of the embedding on the last stage)
        if not model.tied or p > 1:
            n += vocab_shard
    return n


def model_state_bytes(params: int, layout: Layout) -> tuple[float, float, float]:
    """(weights, gradients, optimizer states) bytes for `params` parameters on one GPU."""
    w, g, o = PRECISIONS[layout.precision]
    return params * w, params * g, params * o / (layout.dp if layout.distributed_optimizer else 1)


def estimate(model: Model, layout: Layout, fp32_activations: bool = False) -> Estimate:
    """Per-GPU bytes on the fullest pipeline stage."""
    layout.check(model)
    best: Estimate | None = None
    for stage in sorted({0, layout.pp - 1}):
        n = stage_params(model, layout, stage)
        weights, grads, opt = model_state_bytes(n, layout)
        in_flight = min(layout.pp - stage, layout.micro_batches)  # 1F1B warm-up depth
        acts = model.layers // layout.pp * in_flight * activation_bytes(model, layout, fp32=fp32_activations)
        # the last stage's output layer and cross-entropy (ours, not in Table 2): the fp32 logits and
        # the softmax that megatron's vocab-parallel cross-entropy keeps for the backward pass,
        # 2 x 4·s·b·v/t bytes for one micro-batch; at a small hidden size this is the largest term
        logits = 8.0 * model.seq * layout.micro_batch * model.padded_vocab(layout.tp) / layout.tp
        e = Estimate(
            stage, n, weights, grads, opt, acts, logits if stage == layout.pp - 1 else 0.0, in_flight, layout
        )
        if best is None or e.total > best.total:
            best = e
    assert best is not None
    return best


def recompute_efficiency(model: Model, recompute: str) -> float:
    """Model FLOPs over hardware FLOPs (Korthikanti et al. 2022, §5, eqs. for model and hardware
    FLOPs per iteration: 72BLsh²(1 + s/6h + V/12hL); selective 1 + s/3h; full 96BLsh²(..., V/16hL))."""
    s, h, L, v = model.seq, model.hidden, model.layers, model.vocab
    useful = 72 * (1 + s / (6 * h) + v / (12 * h * L))
    if recompute == "full":
        return useful / (96 * (1 + s / (6 * h) + v / (16 * h * L)))
    if recompute == "selective":
        return useful / (72 * (1 + s / (3 * h) + v / (12 * h * L)))
    return 1.0


def _divisors(n: int) -> list[int]:
    return [d for d in range(1, n + 1) if n % d == 0]


def search(
    model: Model, gpus: int, base: Layout, gpu_bytes: float, gpus_per_node: int = 8, fp32: bool = False
) -> list[tuple[Estimate, float]]:
    """Layouts of `gpus` GPUs that fit in `gpu_bytes`, best first: (estimate, relative throughput).

    TP stays within a node; sequence parallelism with TP > 1 and the distributed optimizer with
    DP > 1 are on (they only save memory); for each TP x PP the least recomputation that fits is
    kept. Throughput = recompute efficiency / (1 + bubble), ties to smaller TP, then smaller PP."""
    found: list[tuple[Estimate, float]] = []
    for tp in _divisors(gpus):
        if tp > gpus_per_node or model.heads % tp or model.kv_heads % tp:
            continue
        for pp in _divisors(gpus // tp):
            dp = gpus // (tp * pp)
            if model.layers % pp or base.global_batch % (base.micro_batch * dp):
                continue
            for recompute in RECOMPUTE:
                layout = replace(
                    base,
                    tp=tp,
                    pp=pp,
                    dp=dp,
                    sequence_parallel=tp > 1,
                    distributed_optimizer=dp > 1 or base.distributed_optimizer,
                    recompute=recompute,
                )
                e = estimate(model, layout, fp32)
                if e.total <= gpu_bytes:
                    found.append((e, recompute_efficiency(model, recompute) / (1 + layout.bubble)))
                    break
    found.sort(key=lambda x: (-round(x[1], 6), x[0].layout.tp, x[0].layout.pp))
    return found


def parse_bytes(text: str, flag: str = "--gpu-memory") -> float:
    """'80GB' (1e9), '80GiB' (2^30), '80' (GB) -> bytes."""
    units = {"gib": 2**30, "gb": 1e9, "mib": 2**20, "mb": 1e6, "tib": 2**40, "tb": 1e12}
    s = text.strip().lower()
    for unit, scale in units.items():
        if s.endswith(unit):
            s, mult = s[: -len(unit)], scale
            break
    else:
        mult = 1e9
    try:
        value = float(s) * mult
    except ValueError:
        raise UserError(f"{flag} {text!r}: a size such as 80GB or 141GiB") from None
    if value <= 0:
        raise UserError(f"{flag} {text!r}: must be > 0")
    return value
