"""Chat-templated evaluation (`llmctl eval --chat`, or `chat: true` in a task's YAML).

    llmctl eval runs/demo/sft --out runs/demo/eval-chat --tasks capitals,arith --chat \\
        --system "Answer in one word."

Each item becomes a conversation rendered by the model's own chat template, the way
lm-evaluation-harness 0.4.13 builds it under `--apply_chat_template --fewshot_as_multiturn`
(lm_eval/api/task.py `fewshot_context`, `build_qa_turn`; models/huggingface.py
`apply_chat_template`):

    [system]                       the system prompt, when one is given
    user: demo prompt              one pair per demonstration
    assistant: demo answer         (the choice text, or the first accepted answer, no delimiter)
    user: the item's prompt
    <the template's generation prompt>

Multiple choice scores each choice, without the target delimiter, as the start of the assistant
turn; generation continues after the generation prompt. The context's trailing whitespace (the
newline after "assistant") moves to the continuation as for any context (lm.encode_pair).
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

from llmctl import hf
from llmctl.errors import UserError
from llmctl.eval.tasks import Item, Task


def configure(tasks: list[Task], chat: bool, system: str | None) -> None:
    """--chat turns chat on for every multiple-choice and generation task; --system replaces the
    tasks' own system prompt (perplexity has no turns: it stays plain text)."""
    for t in tasks:
        if t.type == "perplexity":
            continue
        t.chat = t.chat or chat
        if system is not None:
            t.system = system


def check_templates(tasks: list[Task], models: list[Path]) -> None:
    """Exit 2 before any scoring when a chat task meets a model whose tokenizer has no template."""
    chat_tasks = [t.name for t in tasks if t.chat]
    if not chat_tasks:
        return
    for d in models:
        tok = hf.load_tokenizer(d, what="eval")
        if hf.chat_template(tok) is None:
            raise UserError(
                f"{d}: the tokenizer has no chat template, and --chat (or `chat: true` in task "
                f"{chat_tasks[0]}) needs one; evaluate it without --chat, or give it a template"
            )


def demo_turns(shot: Item, task: Task) -> tuple[str, str]:
    """(user, assistant) of one demonstration: its prompt, and its answer without the delimiter.
    A task's own `demo` template must begin with the prompt; the rest is the assistant's."""
    if task.demo is not None:
        text = task.demo.format(**shot.doc)
        if not text.startswith(shot.prompt):
            raise UserError(
                f"{task.definition}: under chat, 'demo' must begin with the prompt (the user turn); "
                f"{shot.where} renders {text[:60]!r}"
            )
        return shot.prompt, text[len(shot.prompt) :].lstrip()
    if task.type == "multiple_choice":
        return shot.prompt, shot.doc["choices"][shot.answer]  # type: ignore[index]
    return shot.prompt, shot.answer[0]  # type: ignore[index]


def messages(item: Item, task: Task) -> list[dict[str, str]]:
    """The conversation of one item: [system], demonstrations as user/assistant pairs, the prompt."""
    out = [{"role": "system", "content": task.system}] if task.system else []
    for shot in item.shots:
        user, assistant = demo_turns(shot, task)
        out += [{"role": "user", "content": user}, {"role": "assistant", "content": assistant}]
    return out + [{"role": "user", "content": item.prompt}]


def render(tokenizer: Any, conversation: list[dict[str, str]]) -> str:
    """The template's text with the generation prompt; a template that refuses a system turn
    (raises) is rendered without it, as lm-eval does."""
    import jinja2

    try:
        return hf.render_chat(tokenizer, conversation, what="eval", add_generation_prompt=True)
    except jinja2.exceptions.TemplateError:
        return hf.render_chat(
            tokenizer,
            [m for m in conversation if m["role"] != "system"],
            what="eval",
            add_generation_prompt=True,
        )


def apply(task: Task, tokenizer: Any) -> Task:
    """The task as the model sees it under chat: each context rendered by the template, multiple
    choice continuations without the target delimiter. Unchanged when the task is not chat."""
    if not task.chat:
        return task
    items = []
    for it in task.items:
        context = render(tokenizer, messages(it, task))
        choices = list(it.doc["choices"]) if task.type == "multiple_choice" else it.choices
        items.append(replace(it, context=context, choices=choices))
    return replace(task, items=items)
