"""Instruction data as the survey's "formatted instances" (5.1.1): every source, whatever its shape,
becomes one record `{"messages": [{"role", "content"}, ...]}`, or a rejection with a reason.

Shapes recognised per record (the first that matches):
  - chat: `messages` (OpenAI / TRL style) or ShareGPT `conversations` with `from`/`value`
  - `prompt`/`completion` (strings, or message lists as TRL's conversational prompt-completion)
  - alpaca: `instruction`, optional `input`, `output`
  - task rows of any columns, through a template file (FLAN / T0 style, `Template` below)

    template = Template.load("recipes/sft/templates/sst2.yaml")
    record = normalise(row, template=template, rng=random.Random(seed))   # or raises Reject
"""

from __future__ import annotations

import random
import string
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from llmctl.errors import UserError

ROLES = ("system", "user", "assistant")
# ShareGPT's speaker names and what they are
_SHAREGPT_ROLES = {
    "system": "system",
    "human": "user",
    "user": "user",
    "gpt": "assistant",
    "assistant": "assistant",
    "chatgpt": "assistant",
    "bot": "assistant",
    "model": "assistant",
}


class Reject(Exception):  # noqa: N818 (a verdict on one record, counted, not an error)
    """A record that cannot become a training example; `reason` is its rejected/ reason."""

    def __init__(self, reason: str, detail: str = ""):
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail


@dataclass(frozen=True)
class Template:
    """Several instruction phrasings of one task (one drawn per example) and the answer column.

    YAML:
        name: sst2
        templates:                      # format strings over the row's columns
          - "Is this review positive or negative?\\n\\n{sentence}"
          - "{sentence}\\n\\nDid the reviewer like the film?"
        answer: label                   # the column holding the answer
        answer_choices: [negative, positive]   # optional: an integer answer indexes this list
        system: "..."                   # optional system prompt
    """

    name: str
    templates: tuple[str, ...]
    answer: str
    answer_choices: tuple[str, ...] = ()
    system: str = ""
    path: str = ""

    @classmethod
    def load(cls, path: str | Path) -> Template:
        path = Path(path)
        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise UserError(f"template {path}: no such file") from None
        except yaml.YAMLError as e:
            raise UserError(f"template {path}: not valid YAML ({e})") from None
        if not isinstance(data, dict):
            raise UserError(f"template {path}: expected a mapping with 'templates' and 'answer'")
        unknown = set(data) - {"name", "templates", "answer", "answer_choices", "system"}
        if unknown:
            raise UserError(f"template {path}: unknown key(s) {', '.join(sorted(unknown))}")
        phrasings = data.get("templates")
        if isinstance(phrasings, str):
            phrasings = [phrasings]
        if not phrasings or not all(isinstance(t, str) and t.strip() for t in phrasings):
            raise UserError(f"template {path}: 'templates' must be a non-empty list of strings")
        answer = data.get("answer")
        if not isinstance(answer, str) or not answer:
            raise UserError(f"template {path}: 'answer' must name the answer column")
        for t in phrasings:
            try:
                _fields(t)
            except ValueError as e:
                raise UserError(f"template {path}: bad format string {t[:60]!r} ({e})") from None
        return cls(
            name=str(data.get("name") or path.stem),
            templates=tuple(phrasings),
            answer=answer,
            answer_choices=tuple(str(c) for c in data.get("answer_choices") or ()),
            system=str(data.get("system") or ""),
            path=str(path),
        )

    def columns(self) -> set[str]:
        """Every column the template reads."""
        return {f for t in self.templates for f in _fields(t)} | {self.answer}

    def check_columns(self, columns: set[str] | list[str]) -> None:
        """Exit 2 before training when the data lacks a column the template names."""
        missing = sorted(self.columns() - set(columns))
        if missing:
            raise UserError(
                f"template {self.path or self.name}: column(s) {', '.join(missing)} not in the data "
                f"(its columns: {', '.join(sorted(columns)) or 'none'})"
            )

    def apply(self, row: dict[str, Any], rng: random.Random) -> dict[str, Any]:
        missing = sorted(c for c in self.columns() if c not in row)
        if missing:
            raise Reject("template_missing_column", ", ".join(missing))
        phrasing = self.templates[rng.randrange(len(self.templates))]
        prompt = phrasing.format_map({k: "" if v is None else v for k, v in row.items()})
        answer = row[self.answer]
        if self.answer_choices and isinstance(answer, int) and not isinstance(answer, bool):
            if not 0 <= answer < len(self.answer_choices):
                raise Reject("template_answer_out_of_range", f"{self.answer}={answer}")
            answer = self.answer_choices[answer]
        messages = [{"role": "user", "content": prompt}, {"role": "assistant", "content": str(answer)}]
        if self.system:
            messages.insert(0, {"role": "system", "content": self.system})
        return {"messages": _checked(messages)}


def _fields(fmt: str) -> set[str]:
    return {name for _, name, _, _ in string.Formatter().parse(fmt) if name}


def _checked(messages: Any) -> list[dict[str, str]]:
    """Messages as {role, content} strings, or a Reject saying what is wrong with them."""
    if not isinstance(messages, list) or not messages:
        raise Reject("empty_conversation")
    out = []
    for m in messages:
        if not isinstance(m, dict):
            raise Reject("bad_message", f"a turn is {type(m).__name__}, not an object")
        role, content = m.get("role"), m.get("content")
        if role not in ROLES:
            raise Reject("unknown_role", repr(role)[:40])
        if not isinstance(content, str) or not content.strip():
            raise Reject("empty_content", f"a {role} turn has no text")
        out.append({"role": role, "content": content})
    if not any(m["role"] == "assistant" for m in out):
        raise Reject("no_assistant_turn")
    if out[-1]["role"] != "assistant":
        out = out[: max(i for i, m in enumerate(out) if m["role"] == "assistant") + 1]  # trailing prompt
    return out


def _sharegpt(turns: Any) -> list[dict[str, Any]]:
    if not isinstance(turns, list):
        raise Reject("bad_message", "conversations is not a list")
    out = []
    for t in turns:
        if not isinstance(t, dict):
            raise Reject("bad_message", f"a turn is {type(t).__name__}, not an object")
        who = str(t.get("from", "")).lower()
        if who not in _SHAREGPT_ROLES:
            raise Reject("unknown_role", repr(t.get("from"))[:40])
        out.append({"role": _SHAREGPT_ROLES[who], "content": t.get("value")})
    return out


def _as_messages(value: Any, role: str) -> list[dict[str, Any]]:
    if isinstance(value, str):
        return [{"role": role, "content": value}]
    if isinstance(value, list):
        return value
    raise Reject("bad_message", f"{role} part is {type(value).__name__}")


def detect(row: dict[str, Any]) -> str:
    """The shape of a record: chat, sharegpt, prompt_completion, alpaca; or 'rows' (a template's)."""
    if "messages" in row:
        return "chat"
    if "conversations" in row:
        return "sharegpt"
    if "prompt" in row and "completion" in row:
        return "prompt_completion"
    if "instruction" in row and "output" in row:
        return "alpaca"
    return "rows"


def normalise(
    row: Any, *, template: Template | None = None, rng: random.Random | None = None
) -> dict[str, list[dict[str, str]]]:
    """One raw record -> {"messages": [...]}, or Reject(reason). With a template every record is a
    task row for it (its own shape is ignored)."""
    if not isinstance(row, dict):
        raise Reject("not_an_object", type(row).__name__)
    if template is not None:
        return template.apply(row, rng or random.Random(0))
    shape = detect(row)
    if shape == "chat":
        return {"messages": _checked(row["messages"])}
    if shape == "sharegpt":
        return {"messages": _checked(_sharegpt(row["conversations"]))}
    if shape == "prompt_completion":
        msgs = _as_messages(row["prompt"], "user") + _as_messages(row["completion"], "assistant")
        return {"messages": _checked(msgs)}
    if shape == "alpaca":
        instruction, extra = row.get("instruction"), row.get("input")
        if not isinstance(instruction, str) or not instruction.strip():
            raise Reject("empty_content", "no instruction")
        prompt = (
            instruction if not (isinstance(extra, str) and extra.strip()) else f"{instruction}\n\n{extra}"
        )
        msgs = [{"role": "user", "content": prompt}, {"role": "assistant", "content": row.get("output")}]
        if isinstance(row.get("system"), str) and row["system"].strip():
            msgs.insert(0, {"role": "system", "content": row["system"]})
        return {"messages": _checked(msgs)}
    raise Reject("unknown_format", "no messages/conversations/prompt+completion/instruction+output")
