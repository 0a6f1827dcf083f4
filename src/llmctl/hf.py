"""The one Hugging Face boundary: models and tokenizers loaded offline from local directories,
safetensors only, never their code; device and dtype; chat templates; saving.

    from llmctl import hf; model = hf.load_causal_lm(Path("runs/pt"), what="eval", dtype=torch.float32)
    llmctl eval runs/pt --out runs/ev --tasks capitals --device auto --dtype auto

Every stage that reads or writes a `transformers` model or tokenizer does it through here:
`load_causal_lm`, `load_sequence_classifier`, `load_tokenizer` and `load_config` take a model
directory or an llmctl artifact that holds one (`DIR/hf`), set HF_HUB_OFFLINE and
TRANSFORMERS_OFFLINE, pass `local_files_only=True` (no hub, ever) and `use_safetensors=True`: a
directory with only pickled weights (`.bin`, `.pt`) is refused, as loading a pickle can run code.

A directory whose config asks for custom code (`auto_map`, or a `model_type` transformers does
not know) would make transformers ask "run the custom code? [y/N]" on a terminal, and `y` runs
Python shipped with the model. llmctl passes `trust_remote_code=False` to every from_pretrained
and, before that, refuses such a directory with a user error saying why (no prompt, ever).

`--device` and `--dtype` of the stages that load a model (eval, clean's perplexity scorer): `auto`
device is CUDA when present, else the CPU; `auto` dtype is bfloat16 on a GPU that supports it
(float16 on one that does not), float32 on the CPU. torch is imported inside the functions.
"""

from __future__ import annotations

import json
import os
import re
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from llmctl.errors import UserError

if TYPE_CHECKING:
    import torch


def model_dir(path: str | Path) -> Path:
    """A Hugging Face model directory, or the one an llmctl artifact holds: DIR itself when it
    has a config.json, else DIR/hf (what pretrain and the post-training stages write)."""
    p = Path(path)
    for candidate in (p, p / "hf"):
        if (candidate / "config.json").is_file():
            return candidate
    raise UserError(f"{path}: not a Hugging Face model directory (no config.json) nor an artifact with hf/")


def tokenizer_dir(path: str | Path) -> Path:
    """A tokenizer directory: DIR, else the model directory of an artifact (DIR/hf), else a
    tokenize artifact's DIR/tokenizer; DIR itself when none of them holds tokenizer files."""
    p = Path(path)
    for candidate in (p, p / "hf", p / "tokenizer"):
        if (candidate / "tokenizer_config.json").is_file() or (candidate / "tokenizer.json").is_file():
            return candidate
    return p


def offline() -> None:
    """No hub: transformers and huggingface_hub read these before any network call (and the
    loads below also pass local_files_only=True, which holds even if a library read them early)."""
    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ["TRANSFORMERS_OFFLINE"] = "1"


PICKLED = (".bin", ".pt", ".pth", ".ckpt")


def refuse_pickled_weights(directory: Path, what: str) -> None:
    """UserError when `directory` holds model weights only as pickles (pytorch_model.bin, .pt):
    llmctl loads safetensors only, since unpickling a file can run code."""
    files = [f for f in directory.iterdir() if f.is_file()] if directory.is_dir() else []
    if any(f.name.endswith(".safetensors") or f.name.endswith(".safetensors.index.json") for f in files):
        return
    pickled = sorted(f.name for f in files if f.name.endswith(PICKLED))
    if pickled:
        raise UserError(
            f"{what}: {directory} holds weights only as pickles ({', '.join(pickled[:3])}); llmctl loads "
            "safetensors only: convert them (model.save_pretrained(dir, safe_serialization=True))"
        )


def load_config(path: str | Path, *, what: str) -> Any:
    """The model's transformers config (AutoConfig), offline, no custom code."""
    offline()
    from transformers import AutoConfig

    d = model_dir(path)
    refuse_custom_code(d, what)
    return AutoConfig.from_pretrained(d, local_files_only=True, trust_remote_code=False)


def load_tokenizer(path: str | Path, *, what: str) -> Any:
    """The tokenizer at `path` (see tokenizer_dir) through AutoTokenizer, offline, no custom code."""
    offline()
    from transformers import AutoTokenizer

    d = tokenizer_dir(path)
    refuse_custom_code(d, what)
    return AutoTokenizer.from_pretrained(d, local_files_only=True, trust_remote_code=False)


def _load_model(
    auto: Any, path: str | Path, what: str, dtype: torch.dtype, device: str | None, **kw: Any
) -> Any:
    d = model_dir(path)
    refuse_custom_code(d, what)
    refuse_pickled_weights(d, what)
    with _library_stdout_to_stderr(
        quantized=bool((_read_json(d / "config.json") or {}).get("quantization_config"))
    ):
        model = auto.from_pretrained(
            d, local_files_only=True, use_safetensors=True, dtype=dtype, trust_remote_code=False, **kw
        )
    if device is not None:
        model.to(device)
    return model.eval()


@contextmanager
def _library_stdout_to_stderr(*, quantized: bool) -> Iterator[None]:
    """Loading a quantized checkpoint imports its library (gptqmodel), which prints a banner and
    INFO lines on stdout, where a stage's results go (`eval --json`, pipes): they go to stderr."""
    if not quantized:
        yield
        return
    sys.stdout.flush()
    saved = os.dup(1)
    os.dup2(2, 1)
    try:
        yield
    finally:
        sys.stdout.flush()
        os.dup2(saved, 1)
        os.close(saved)


class _NoCastNotice:
    """bitsandbytes logs "MatMul8bitLt: inputs will be cast from torch.float32 to float16" on every
    forward pass of every int8 layer (its kernel quantizes the activations from 16-bit): expected,
    and thousands of lines in one perplexity run."""

    def filter(self, record: Any) -> bool:
        return "inputs will be cast" not in record.getMessage()


def quiet_bitsandbytes() -> None:
    """Filter bitsandbytes' per-call cast notice (an int8 model from quantize --method int8)."""
    import logging

    logger = logging.getLogger("bitsandbytes.autograd._functions")
    if not any(isinstance(f, _NoCastNotice) for f in logger.filters):
        logger.addFilter(_NoCastNotice())


def load_causal_lm(path: str | Path, *, what: str, dtype: torch.dtype, device: str | None = None) -> Any:
    """An AutoModelForCausalLM from a model directory or artifact, in `dtype`, on `device` (a
    resolved one: "cpu"/"cuda"; None leaves it where transformers put it), in eval mode."""
    offline()
    if '"bitsandbytes"' in (model_dir(path) / "config.json").read_text(errors="replace"):
        quiet_bitsandbytes()  # an int8 checkpoint (its quantization_config's quant_method)
    from transformers import AutoModelForCausalLM

    return _load_model(AutoModelForCausalLM, path, what, dtype, device)


def load_sequence_classifier(
    path: str | Path,
    *,
    what: str,
    dtype: torch.dtype,
    device: str | None = None,
    num_labels: int | None = None,
) -> Any:
    """An AutoModelForSequenceClassification (a reward model: num_labels=1), as load_causal_lm.
    Built from a causal LM's directory, its score head is new (transformers initialises it)."""
    offline()
    from transformers import AutoModelForSequenceClassification

    kw = {} if num_labels is None else {"num_labels": num_labels}
    return _load_model(AutoModelForSequenceClassification, path, what, dtype, device, **kw)


def generation_config(**kwargs: Any) -> Any:
    """transformers' GenerationConfig (the decoding strategy model.generate follows)."""
    from transformers import GenerationConfig

    return GenerationConfig(**kwargs)


def quiet() -> None:
    """No transformers progress bars (checkpoint shards loading): --quiet."""
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()


def fast_tokenizer(tokenizer_object: Any) -> Any:
    """A transformers PreTrainedTokenizerFast around a `tokenizers.Tokenizer` (to save it for both)."""
    from transformers import PreTrainedTokenizerFast

    return PreTrainedTokenizerFast(tokenizer_object=tokenizer_object)


def save_model(model: Any, directory: Path) -> None:
    """save_pretrained as safetensors, with the files' modes as the umask asks (honour_umask)."""
    model.save_pretrained(directory, safe_serialization=True)
    honour_umask(directory)


def save_tokenizer(tokenizer: Any, directory: Path) -> None:
    """save_pretrained: tokenizer.json, tokenizer_config.json (with the chat template), special tokens."""
    tokenizer.save_pretrained(directory)


def chat_template(tokenizer: Any) -> str | None:
    """The tokenizer's Jinja chat template (None when it has none)."""
    template = getattr(tokenizer, "chat_template", None)
    if isinstance(template, dict):  # named templates: transformers uses "default"
        template = template.get("default")
    return template or None


def render_chat(
    tokenizer: Any, messages: list[dict[str, Any]], *, what: str, add_generation_prompt: bool = False
) -> str:
    """`messages` ([{"role", "content"}, ...]) as text through the tokenizer's chat template;
    UserError naming `what` when the tokenizer has none (transformers would raise ValueError)."""
    if chat_template(tokenizer) is None:
        raise UserError(
            f"{what}: the tokenizer has no chat template; set one (tokenize's tokenizer.chat_template) "
            "or use a tokenizer that carries one"
        )
    return tokenizer.apply_chat_template(
        messages, tokenize=False, add_generation_prompt=add_generation_prompt
    )


# ---------------------------------------------------------------- chat templates for training
# transformers finds the assistant's tokens through `{% generation %}` blocks in the chat template
# (`apply_chat_template(..., return_assistant_tokens_mask=True)`, which TRL's `assistant_only_loss`
# uses). The tokenize stage's ChatML template has them; many models' own templates (SmolLM2's,
# Qwen's: ChatML with a default system prompt) do not. `training_template` returns a template with
# the markers that renders exactly the text of the model's own: the own one when it has markers,
# else the marked ChatML with the default system prompt the own template adds, checked on probe
# conversations (a template that differs anywhere is refused, exit 2).

# ChatML with the assistant turns inside {% generation %} blocks: the text is ChatML's, the
# markers only tell transformers which characters are the assistant's (content + <|im_end|>).
CHATML_TEMPLATE = (
    "{% for message in messages %}"
    "{% if message['role'] == 'assistant' %}"
    "{{ '<|im_start|>assistant\\n' }}"
    "{% generation %}{{ message['content'] + '<|im_end|>' }}{% endgeneration %}"
    "{{ '\\n' }}"
    "{% else %}"
    "{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}"
    "{% endif %}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)

# conversations every candidate must render exactly as the model's own template does
PROBES: tuple[tuple[list[dict[str, str]], bool], ...] = (
    (
        [{"role": "user", "content": "Hi there"}, {"role": "assistant", "content": "Hello! How can I help?"}],
        False,
    ),
    (
        [
            {"role": "system", "content": "You answer in one word."},
            {"role": "user", "content": "Capital of France?"},
            {"role": "assistant", "content": "Paris"},
            {"role": "user", "content": "And of Italy?"},
            {"role": "assistant", "content": "Rome"},
        ],
        False,
    ),
    ([{"role": "user", "content": "Tell me a joke."}], True),
    ([{"role": "system", "content": "Be terse."}, {"role": "user", "content": "2+2?"}], True),
)

_GENERATION = re.compile(r"{%-?\s*generation\s*-?%}")


def has_generation_markers(template: str | None) -> bool:
    return bool(template) and bool(_GENERATION.search(template))


def render(
    tokenizer: Any, messages: list[dict[str, str]], *, template: str | None = None, prompt: bool = False
) -> str:
    """The text a template makes of a conversation (the tokenizer's own template by default)."""
    return tokenizer.apply_chat_template(
        messages, chat_template=template, tokenize=False, add_generation_prompt=prompt
    )


def _default_system(tokenizer: Any) -> str | None:
    """The system prompt a ChatML template adds when the conversation has none (SmolLM2, Qwen)."""
    text = render(tokenizer, [{"role": "user", "content": "x"}])
    m = re.match(r"<\|im_start\|>system\n(.*?)<\|im_end\|>\n<\|im_start\|>user\n", text, re.S)
    return m.group(1) if m else None


def chatml_template(default_system: str | None = None) -> str:
    """The marked ChatML template, adding `default_system` when a conversation has no system turn."""
    if default_system is None:
        return CHATML_TEMPLATE
    quoted = default_system.replace("\\", "\\\\").replace("'", "\\'").replace("\n", "\\n")
    prefix = (
        "{% if messages[0]['role'] != 'system' %}"
        "{{ '<|im_start|>system\\n" + quoted + "<|im_end|>\\n' }}"
        "{% endif %}"
    )
    return prefix + CHATML_TEMPLATE


def same_text(tokenizer: Any, candidate: str) -> str | None:
    """None when `candidate` renders every probe as the tokenizer's own template does; else the
    first difference, for the error message."""
    for messages, prompt in PROBES:
        own = render(tokenizer, messages, prompt=prompt)
        new = render(tokenizer, messages, template=candidate, prompt=prompt)
        if own != new:
            at = next(
                (i for i, (a, b) in enumerate(zip(own, new, strict=False)) if a != b), min(len(own), len(new))
            )
            return f"at character {at}: the model's {own[at : at + 40]!r} vs {new[at : at + 40]!r}"
    return None


def training_template(tokenizer: Any, *, where: str = "model") -> str:
    """A chat template with {% generation %} markers that renders like the tokenizer's own."""
    own = getattr(tokenizer, "chat_template", None)
    if not own:
        raise UserError(
            f"{where}: the tokenizer has no chat template; set one (e.g. the tokenize stage's ChatML)"
        )
    if isinstance(own, dict):  # several named templates: the default one is what chat uses
        own = own.get("default") or next(iter(own.values()))
    if has_generation_markers(own):
        return own
    candidate = chatml_template(_default_system(tokenizer))
    diff = same_text(tokenizer, candidate)
    if diff is not None:
        raise UserError(
            f"{where}: its chat template has no {{% generation %}} markers and is not ChatML "
            f"({diff}); give a marked template in the recipe (chat_template) to train on assistant turns only"
        )
    return candidate


def chat_ids(tokenizer: Any, messages: list[dict[str, str]]) -> list[int]:
    """Token ids of a conversation through the tokenizer's chat template."""
    return list(tokenizer.apply_chat_template(messages, tokenize=True, return_dict=False))


def lora_config(lc: Any, task_type: str, **extra: Any) -> Any:
    """peft's LoraConfig from a recipe's `lora` block (r, alpha, dropout, target_modules).

    With gptqmodel installed (llmctl quantize needs it), peft imports gptqmodel whenever it wraps a
    layer, to ask whether the layer is a GPTQ one: 10-20 s and a banner on every LoRA run. A layer
    can only be a gptqmodel class if gptqmodel was imported, so until it is, the probe answers no
    without importing anything; once it is, peft's own answer stands."""
    from peft import LoraConfig

    _lazy_gptq_probe()
    return LoraConfig(
        r=lc.r,
        lora_alpha=lc.alpha,
        lora_dropout=lc.dropout,
        target_modules=list(lc.target_modules),
        task_type=task_type,
        **extra,
    )


def _lazy_gptq_probe() -> None:
    import sys

    import peft.import_utils
    import peft.tuners.lora

    probe = peft.import_utils.is_gptqmodel_available
    if getattr(probe, "llmctl_lazy", False):
        return

    def lazy() -> bool:
        return "gptqmodel" in sys.modules and probe()

    lazy.llmctl_lazy = True  # type: ignore[attr-defined]
    for name, module in list(sys.modules.items()):  # every peft module that imported it by name
        if name.startswith("peft") and getattr(module, "is_gptqmodel_available", None) is probe:
            module.is_gptqmodel_available = lazy  # type: ignore[attr-defined]


def load_adapter(model: Any, directory: Path, *, trainable: bool) -> Any:
    """A peft adapter that save_pretrained wrote (adapter_model.safetensors) onto `model`: a plain
    model is wrapped in a PeftModel; a PeftModel gets the weights loaded into its adapter."""
    from peft import PeftModel, set_peft_model_state_dict
    from safetensors.torch import load_file

    _lazy_gptq_probe()

    if hasattr(model, "peft_config"):
        set_peft_model_state_dict(model, load_file(directory / "adapter_model.safetensors"))
        return model
    return PeftModel.from_pretrained(model, directory, is_trainable=trainable)


def skeleton_causal_lm(path: str | Path, *, what: str) -> Any:
    """The model's modules without weights (on the meta device): its structure, for checks such as
    LoRA target names, at no loading cost."""
    import torch
    from transformers import AutoModelForCausalLM

    config = load_config(path, what=what)
    with torch.device("meta"):
        return AutoModelForCausalLM.from_config(config, trust_remote_code=False)


def check_sequence_classifier(config: Any, *, what: str) -> None:
    """UserError when transformers has no sequence-classification class for the model's
    architecture (a reward model needs one: the backbone plus a 1-output score head)."""
    from transformers.models.auto.modeling_auto import MODEL_FOR_SEQUENCE_CLASSIFICATION_MAPPING_NAMES

    if config.model_type not in MODEL_FOR_SEQUENCE_CLASSIFICATION_MAPPING_NAMES:
        raise UserError(
            f"{what}: model_type {config.model_type!r} cannot take a classification head "
            "(transformers has no AutoModelForSequenceClassification for it); use a decoder such as Llama"
        )


def skeleton_sequence_classifier(path: str | Path, *, what: str, num_labels: int = 1) -> Any:
    """As skeleton_causal_lm, the sequence-classification model's modules on the meta device."""
    import torch
    from transformers import AutoModelForSequenceClassification

    config = load_config(path, what=what)
    config.num_labels = num_labels
    with torch.device("meta"):
        return AutoModelForSequenceClassification.from_config(config, trust_remote_code=False)


def output_embeddings(path: str | Path, *, what: str) -> Any:
    """The causal LM's output projection weight (vocab x hidden), detached: the LM head a reward
    model (which has none) needs for a language-modelling loss."""
    import torch

    lm = load_causal_lm(path, what=what, dtype=torch.float32)
    return lm.get_output_embeddings().weight.detach().clone()


def _read_json(path: Path) -> dict[str, Any] | None:
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as e:
        raise UserError(f"{path}: not valid JSON ({type(e).__name__}: {e})") from None
    if not isinstance(data, dict):
        raise UserError(f"{path}: expected a JSON object, got {type(data).__name__}")
    return data


def refuse_custom_code(directory: Path, what: str) -> None:
    """UserError when `directory` needs custom code: a config.json whose model_type transformers does
    not know (with or without an `auto_map`), or a tokenizer_config.json whose `auto_map` names a
    tokenizer class transformers lacks. An `auto_map` beside a known model_type is harmless: with
    trust_remote_code=False transformers loads its own class and ignores the custom one."""
    import transformers
    from transformers.models.auto.configuration_auto import CONFIG_MAPPING_NAMES

    why = "llmctl never runs code shipped with a model (trust_remote_code=False)"
    config = _read_json(directory / "config.json") or {}
    model_type = config.get("model_type")
    if model_type not in CONFIG_MAPPING_NAMES and ("auto_map" in config or model_type is not None):
        custom = (
            f" and asks for custom code (auto_map: {_names(config['auto_map'])})"
            if "auto_map" in config
            else ""
        )
        raise UserError(
            f"{what}: {directory / 'config.json'} has model_type {model_type!r}, which transformers does "
            f"not know{custom}; {why}: use a model transformers supports natively"
        )
    tok = _read_json(directory / "tokenizer_config.json") or {}
    if "auto_map" in tok and not hasattr(transformers, str(tok.get("tokenizer_class"))):
        raise UserError(
            f"{what}: {directory / 'tokenizer_config.json'} asks for a custom tokenizer "
            f"(auto_map: {_names(tok['auto_map'])}); {why}: use a tokenizer transformers supports natively"
        )


def _names(auto_map: Any) -> str:
    return ", ".join(sorted({str(v) for v in _flatten(auto_map)}))[:200]


def _flatten(value: Any) -> list[Any]:
    if isinstance(value, dict):
        return [x for v in value.values() for x in _flatten(v)]
    if isinstance(value, list | tuple):
        return [x for v in value for x in _flatten(v)]
    return [value]


def honour_umask(directory: Path) -> None:
    """Give the files transformers wrote the mode the user's umask asks for: save_pretrained writes
    model.safetensors 0600 (through a private temporary file), which others in a shared group
    could not read, unlike every other file of the artifact."""
    mask = os.umask(0)
    os.umask(mask)  # reading the umask means setting it; put it straight back
    for f in directory.iterdir():
        if f.is_file() and not f.is_symlink():
            f.chmod(0o666 & ~mask)


DEVICES = ("auto", "cpu", "cuda")
DTYPES = ("auto", "float32", "bfloat16", "float16")


def resolve_device(name: str, *, key: str = "device") -> str:
    """ "cpu" or "cuda"; asking for cuda where there is none is a user error naming `key`."""
    import torch

    if name not in DEVICES:
        raise UserError(f"{key}={name}: one of {', '.join(DEVICES)}")
    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda" and not torch.cuda.is_available():
        raise UserError(f"{key}=cuda: no CUDA device here; use cpu or auto")
    return name


def resolve_dtype(name: str, device: str, *, key: str = "dtype") -> torch.dtype:
    """The torch dtype for `name` on `device` (a resolved device: "cpu" or "cuda")."""
    import torch

    if name not in DTYPES:
        raise UserError(f"{key}={name}: one of {', '.join(DTYPES)}")
    if name != "auto":
        return getattr(torch, name)
    if device == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return torch.float32


def dtype_name(dtype: torch.dtype) -> str:
    """torch.bfloat16 -> "bfloat16" (what manifests record)."""
    return str(dtype).removeprefix("torch.")


def last_checkpoint(folder: Path) -> str | None:
    """The newest `checkpoint-N` in `folder` that the trainer finished writing, or None.

    transformers' get_last_checkpoint takes the highest number whatever is in it, so a run killed
    while it saved (SIGKILL at a SLURM time limit) resumed from half a checkpoint or crashed on it.
    The trainer writes trainer_state.json last (model, optimizer, scheduler, rng first): a
    checkpoint counts when that file parses and names its own step.
    """
    found: list[tuple[int, str]] = []
    for path in folder.glob("checkpoint-*"):  # none when the folder is missing
        step = path.name.removeprefix("checkpoint-")
        if not step.isdigit():
            continue
        try:
            state = json.loads((path / "trainer_state.json").read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError):
            continue  # not written yet, cut short by the kill, or not a directory
        if isinstance(state, dict) and state.get("global_step") == int(step):
            found.append((int(step), str(path)))
    return max(found)[1] if found else None


def token_count(trainer: Any) -> Any:
    """A callback that keeps TRL's trained-token count (`_total_train_tokens`, which SFT and DPO
    trainers count from zero in each train() call) across a resume: the count rides in the
    checkpoint's trainer_state.json as an ExportableState, so it is written with the step it
    belongs to (a file written after the checkpoint was lost when a kill fell between the two).
    Read the total after train() from `trainer._total_train_tokens`."""
    from transformers import TrainerCallback
    from transformers.trainer_callback import ExportableState

    class TokenCount(TrainerCallback, ExportableState):
        def state(self) -> dict[str, Any]:
            return {"args": {}, "attributes": {"tokens": int(trainer._total_train_tokens)}}

        def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            # on a resume, `state` is the checkpoint's (loaded before this event); on a fresh run,
            # the count this callback reported when the trainer set its state up
            saved = state.stateful_callbacks.get("TokenCount") or {}
            trainer._total_train_tokens = int(saved.get("attributes", {}).get("tokens", 0))

    return TokenCount()
