"""Chat templates that mark the assistant's tokens, for training on the assistant's turns only.

transformers finds the assistant's tokens through `{% generation %}` blocks in the chat template
(`apply_chat_template(..., return_assistant_tokens_mask=True)`, which TRL's
`assistant_only_loss` uses). The tokenize stage's ChatML template has them; many models' own
templates (SmolLM2's, Qwen's: ChatML with a default system prompt) do not. `training_template`
returns a template with the markers that renders exactly the text of the model's own: the own
one when it has markers, else the marked ChatML, with the default system prompt the own template
adds, checked on probe conversations (a template that differs anywhere is refused, exit 2).

    template = training_template(tokenizer)      # then tokenizer.chat_template = template
"""

from __future__ import annotations

import re
from typing import Any

from llmctl.errors import UserError

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
