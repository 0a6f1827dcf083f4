"""Evaluation tasks: YAML definitions (shipped: tasks_data/) over JSONL items, validated up front.

    name: capitals            # the file stem when unset
    version: 1                # stored with every score; bump it when items or prompts change
    type: multiple_choice     # perplexity | multiple_choice | generation
    data: capitals.jsonl      # relative to the YAML file
    prompt: "Question: What is the capital of {country}?\\nAnswer:"
    num_fewshot: 0

Multiple choice items have `choices` (a list) and `answer` (an index or one of the choices),
scored like lm-evaluation-harness: context = demonstrations + prompt, continuation =
target_delimiter + choice. Generation items have `answer` (a string or a list of accepted
strings), scored by `metric`: exact_match, contains or regex (`regex` with one group: the
extracted answer). `fewshot: FILE` gives demonstrations (e.g. chain-of-thought, rendered with
`demo`); otherwise they are drawn from the other items. Perplexity tasks read a document
artifact, JSONL or plain text; `perplexity:PATH` makes one on the fly.
"""

from __future__ import annotations

import random
import re
import string
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from llmctl.errors import UserError
from llmctl.eval import mc

# Package data (pyproject.toml), so named tasks resolve in a wheel or `pip install .` as in a checkout.
TASK_DIR = Path(__file__).resolve().parent / "tasks_data"
TYPES = ("perplexity", "multiple_choice", "generation")
METRICS = ("exact_match", "contains", "regex")


@dataclass
class Item:
    index: int
    doc: dict[str, Any]
    context: str  # demonstrations + prompt (perplexity: the text)
    choices: list[str] = field(default_factory=list)  # continuations (target_delimiter + choice)
    answer: int | list[str] | None = None  # the right choice, or the accepted answers
    where: str = ""  # FILE:LINE
    prompt: str = ""  # the prompt alone, without demonstrations
    n_true: int | None = None  # true/false items (llmctl.eval.mc): the first n_true choices are true
    shots: list[Item] = field(default_factory=list)  # its demonstrations (chat makes turns of them)

    @property
    def text(self) -> str:
        """What the contamination check looks for: the item as the test set states it."""
        if isinstance(self.answer, int):
            return self.prompt + self.choices[self.answer]
        if isinstance(self.answer, list):
            return self.prompt + " " + self.answer[0]
        return self.context


@dataclass
class Task:
    name: str
    version: int
    type: str
    source: Path  # the data file or artifact
    definition: Path | None  # the YAML file (None for perplexity:PATH)
    items: list[Item]
    metric: str = "exact_match"
    regex: str | None = None
    num_fewshot: int = 0
    fewshot_source: Path | None = None  # the demonstrations file, when the task has its own
    chat: bool = False  # through the model's chat template (eval/chat.py); --chat sets it for all
    system: str | None = None  # the system turn under chat
    demo: str | None = None  # the demonstrations' own template, when the task has one

    def files(self) -> list[Path]:
        """What the scores depend on besides the model: recorded as the eval artifact's inputs."""
        return [p for p in (self.definition, self.source, self.fewshot_source) if p is not None]

    @property
    def metrics(self) -> list[str]:
        """What is reported for this task, the headline first."""
        if self.type == "multiple_choice":
            return list(mc.METRICS) if mc.is_mc(self) else ["acc", "acc_norm"]
        if self.type == "perplexity":
            return ["bits_per_byte", "token_perplexity", "word_perplexity"]
        return [self.metric]

    def describe(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "version": self.version,
            "type": self.type,
            "data": str(self.source),
            "definition": str(self.definition) if self.definition else None,
            "items": len(self.items),
            "num_fewshot": self.num_fewshot,
            "metrics": self.metrics,
            **({"metric": self.metric} if self.type == "generation" else {}),
            **({"chat": True, "system": self.system} if self.chat else {}),
        }


def available() -> list[str]:
    return sorted(p.stem for p in TASK_DIR.glob("*.yaml"))


def load_tasks(
    names: list[str], *, limit: int | None, num_fewshot: int | None, seed: int, text_field: str
) -> list[Task]:
    """Every task, parsed and validated before any model runs (bad input is exit 2, naming the
    file and line)."""
    if not names:
        raise UserError(f"no --tasks given; available: {', '.join(available())}")
    tasks = []
    for name in names:
        if name.startswith("perplexity:"):
            path = Path(name.split(":", 1)[1])
            tasks.append(_perplexity_task(path.stem, 1, path, None, limit, text_field))
            continue
        path = Path(name)
        if not (path.suffix in (".yaml", ".yml") and path.is_file()):
            path = TASK_DIR / f"{name}.yaml"
            if not path.is_file():
                raise UserError(f"unknown task '{name}'; available: {', '.join(available())}")
        tasks.append(_load(path, limit, num_fewshot, seed, text_field))
    seen = [t.name for t in tasks]
    dup = {n for n in seen if seen.count(n) > 1}
    if dup:
        raise UserError(f"task {sorted(dup)[0]!r} is given twice")
    return tasks


def _load(path: Path, limit: int | None, num_fewshot: int | None, seed: int, text_field: str) -> Task:
    try:
        spec = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as e:
        raise UserError(f"{path}: not valid YAML ({e})") from None
    if not isinstance(spec, dict):
        raise UserError(f"{path}: a task definition is a mapping")
    known = {
        "name", "version", "type", "data", "prompt", "num_fewshot", "target_delimiter",
        "fewshot_delimiter", "metric", "regex", "fewshot", "demo", "text_field", "description",
        "chat", "system",
    }  # fmt: skip
    unknown = sorted(set(spec) - known)
    if unknown:
        raise UserError(f"{path}: unknown key '{unknown[0]}' (known: {', '.join(sorted(known))})")
    name = str(spec.get("name", path.stem))
    version = spec.get("version", 1)
    kind = spec.get("type")
    if kind not in TYPES:
        raise UserError(f"{path}: type must be one of {', '.join(TYPES)}, got {kind!r}")
    if "data" not in spec:
        raise UserError(f"{path}: no 'data' (the items file)")
    data = (path.parent / spec["data"]).resolve()
    if kind == "perplexity":
        return _perplexity_task(name, version, data, path, limit, spec.get("text_field", text_field))
    if "prompt" not in spec:
        raise UserError(f"{path}: no 'prompt' template")
    docs = _jsonl(data, limit)
    k = num_fewshot if num_fewshot is not None else int(spec.get("num_fewshot", 0))
    target_delim = spec.get("target_delimiter", " ")
    shot_delim = spec.get("fewshot_delimiter", "\n\n")
    prompt = spec["prompt"]
    metric = spec.get("metric", "exact_match")
    if kind == "generation" and metric not in METRICS:
        raise UserError(f"{path}: metric must be one of {', '.join(METRICS)}, got {metric!r}")
    regex = spec.get("regex")
    if metric == "regex":
        try:
            if regex is None or re.compile(regex).groups < 1:
                raise UserError(f"{path}: metric regex needs 'regex' with one group (the answer)")
        except re.error as e:
            raise UserError(f"{path}: regex {regex!r} does not compile ({e})") from None
    _check_fields(path, prompt, docs)
    items = [_item(kind, i, doc, where, prompt, target_delim) for i, (doc, where) in enumerate(docs)]
    mc.check_items(path, items)
    fewshot_source = (path.parent / spec["fewshot"]).resolve() if spec.get("fewshot") else None
    if fewshot_source is not None:
        pool_docs = _jsonl(fewshot_source, None)
        pool = [_item(kind, i, d, w, prompt, target_delim) for i, (d, w) in enumerate(pool_docs)]
        separate = True
    else:
        pool, separate = items, False
    demo = spec.get("demo")
    if k > (len(pool) if separate else len(pool) - 1):
        raise UserError(f"{path}: num_fewshot={k} but only {len(pool) - (not separate)} demonstrations")
    if k:
        for item in items:
            rng = random.Random(f"{seed}:{name}:{item.index}")  # str seeds hash stably (sha512)
            candidates = [p for p in pool if separate or p.index != item.index]
            shots = rng.sample(candidates, k)
            item.shots = shots
            text = shot_delim.join(_demonstration(s, demo, target_delim) for s in shots)
            item.context = text + shot_delim + item.context
    chat, system = spec.get("chat", False), spec.get("system")
    if not isinstance(chat, bool) or not (system is None or isinstance(system, str)):
        raise UserError(f"{path}: 'chat' is true or false and 'system' a string")
    task = Task(name, int(version), kind, data, path, items, metric, regex, k, fewshot_source)
    task.chat, task.system, task.demo = chat, system, demo
    return task


def _jsonl(path: Path, limit: int | None) -> list[tuple[dict[str, Any], str]]:
    if not path.is_file():
        raise UserError(f"task data {path} does not exist")
    from llmctl.formats.documents import read_small_jsonl

    docs = []
    for n, doc in read_small_jsonl(path):
        if not isinstance(doc, dict):
            raise UserError(f"{path}:{n}: an item is a JSON object")
        docs.append((doc, f"{path}:{n}"))
        if limit is not None and len(docs) >= limit:
            break
    if not docs:
        raise UserError(f"{path}: no items")
    return docs


def _check_fields(path: Path, prompt: str, docs: list[tuple[dict[str, Any], str]]) -> None:
    fields = [f for _, f, _, _ in string.Formatter().parse(prompt) if f]
    for doc, where in docs:
        for f in fields:
            if f not in doc:
                raise UserError(f"{where}: no field '{f}' (the prompt of {path.name} uses it)")


def _item(kind: str, i: int, doc: dict[str, Any], where: str, prompt: str, delim: str) -> Item:
    text = prompt.format(**doc)
    if kind == "multiple_choice" and mc.is_true_false(doc):  # several true and false answers
        return mc.item(i, doc, where, text, delim)
    if "answer" not in doc:
        raise UserError(f"{where}: item has no 'answer'")
    answer = doc["answer"]
    if kind == "multiple_choice":
        choices = doc.get("choices")
        if not isinstance(choices, list) or len(choices) < 2 or not all(isinstance(c, str) for c in choices):
            raise UserError(f"{where}: 'choices' must be a list of at least two strings")
        if isinstance(answer, bool) or not isinstance(answer, (int, str)):
            raise UserError(f"{where}: 'answer' must be a choice index or one of the choices")
        if isinstance(answer, str):
            if answer not in choices:
                raise UserError(f"{where}: answer {answer!r} is not among the choices {choices}")
            answer = choices.index(answer)
        elif not 0 <= answer < len(choices):
            raise UserError(f"{where}: answer index {answer} is not among the {len(choices)} choices")
        return Item(i, doc, text, [delim + c for c in choices], answer, where, prompt=text)
    accepted = answer if isinstance(answer, list) else [answer]
    if not accepted or not all(isinstance(a, (str, int, float)) for a in accepted):
        raise UserError(f"{where}: 'answer' must be a string or a list of strings")
    return Item(i, doc, text, [], [str(a) for a in accepted], where, prompt=text)


def _demonstration(item: Item, demo: str | None, delim: str) -> str:
    if demo is not None:
        try:
            return demo.format(**item.doc)
        except KeyError as e:
            raise UserError(f"{item.where}: no field {e} (the task's demo template uses it)") from None
    if item.choices:
        return item.prompt + item.choices[item.answer]  # type: ignore[index]
    return item.prompt + delim + item.answer[0]  # type: ignore[index]


def _perplexity_task(
    name: str, version: Any, path: Path, definition: Path | None, limit: int | None, text_field: str
) -> Task:
    from llmctl import artifacts
    from llmctl.formats.documents import Malformed, expand, read

    if not path.exists():
        raise UserError(f"perplexity data {path} does not exist")
    target = path / "data" if path.is_dir() and artifacts.is_complete(path) else path
    items = []
    for rec in read(expand([target]), text_field=text_field):
        if isinstance(rec, Malformed):
            raise UserError(f"{rec.file}:{rec.line}: {rec.error}")
        if rec.text:
            items.append(Item(len(items), {"id": rec.id}, rec.text, where=f"{rec.id}"))
        if limit is not None and len(items) >= limit:
            break
    if not items:
        raise UserError(f"{path}: no text to score")
    return Task(name, int(version), "perplexity", path.resolve(), definition, items)
