"""Stage configuration: one dataclass per stage, filled from a recipe, `--set` and flags.

Precedence, lowest first: dataclass defaults < recipe YAML (`--config`) < `--set a.b=value`
< plain flags given on the command line. Every key is checked against the dataclass: an
unknown or mistyped key is rejected with the closest valid name, and a value of the wrong
type names the key (and the recipe line) it came from.

Each stage config also carries a `run: RunArgs` field: the per-invocation switches (inputs,
--out, --force, --resume, ...). It is set by the caller, never by a recipe or `--set`, and is
not part of the recorded config (`to_dict`), so a run to another --out builds the same bytes.

    cfg = config.load(CleanConfig, recipe="recipes/clean/default.yaml",
                      overrides=["stats.min_words=20"], flags={"language.languages": ["en"]},
                      run=RunArgs(inputs=["data/sample"], out="runs/clean"))
"""

from __future__ import annotations

import dataclasses
import difflib
import os
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, TypeVar, Union, get_args, get_origin

import yaml

from llmctl.errors import ConfigError, UserError

C = TypeVar("C")


@dataclass
class InputConfig:
    """How the data stages read document records (clean, dedup, tokenize)."""

    text_field: str = "text"
    """JSON/parquet field that holds the document text."""
    id_field: str = "id"
    """Field that holds the document id; documents without one get '<file>:<line>'."""


@dataclass
class RunArgs:
    """One invocation of a stage: what it reads, where it writes and how. Set by the CLI (or a
    caller of `run`), not by recipes; left out of the recorded config, because none of it changes
    the artifact's bytes (the inputs are recorded apart, by path and sha256)."""

    inputs: list[Path] = field(default_factory=list)
    """Input artifacts, files or directories (the positional INPUTs; tokenize reads `sources`)."""
    out: Path | None = None
    """Artifact directory to create (--out)."""
    force: bool = False
    """Rebuild even if a complete artifact exists at `out` (--force)."""
    resume: bool = False
    """Continue from the staging directory of a killed run (--resume)."""
    merge_only: bool = False
    """clean, dedup: only merge finished shards into the artifact (--merge)."""
    step: str = "all"
    """dedup: all, or one step of chained SLURM jobs: signatures, buckets, finish (--step)."""
    against: list[Path] = field(default_factory=list)
    """dedup: evaluation sets to remove contaminated training documents for (--against)."""
    recipe_dir: Path | None = None
    """The recipe's directory, against which its relative paths resolve (set by `load`)."""

    def __post_init__(self) -> None:
        self.inputs = [Path(p) for p in self.inputs]
        self.against = [Path(p) for p in self.against]
        self.out = Path(self.out) if self.out is not None else None
        self.recipe_dir = Path(self.recipe_dir) if self.recipe_dir is not None else None

    def out_dir(self, stage: str, what: str = "DIR") -> Path:
        """`out`, or exit 2 naming --out when it is missing."""
        if self.out is None:
            raise UserError(f"{stage} needs --out {what}")
        return self.out


def with_run(cfg: C, **changes: Any) -> C:
    """A copy of `cfg` whose `run` has these fields changed (for callers of a stage's `run`):
    `stage.run(with_run(cfg, inputs=[src], out=out))`."""
    run = dataclasses.replace(cfg.run, **changes)  # type: ignore[attr-defined]
    return dataclasses.replace(cfg, run=run)  # type: ignore[type-var]


def slurm_array(num_shards: int | None, shard_index: int | None) -> tuple[int | None, int | None]:
    """--num-shards/--shard-index default to the SLURM job array's task count and id."""
    env = os.environ
    if num_shards is None and "SLURM_ARRAY_TASK_COUNT" in env:
        num_shards = int(env["SLURM_ARRAY_TASK_COUNT"])
    if shard_index is None and "SLURM_ARRAY_TASK_ID" in env:
        shard_index = int(env["SLURM_ARRAY_TASK_ID"]) - int(env.get("SLURM_ARRAY_TASK_MIN", "0"))
    return num_shards, shard_index


def check(ok: bool, key: str, msg: str) -> None:
    """For __post_init__: raise a ConfigError naming the key (the `--set` path / recipe key)."""
    if not ok:
        raise ConfigError(f"invalid value for '{key}': {msg}")


def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _is_dataclass_type(tp: Any) -> bool:
    return isinstance(tp, type) and dataclasses.is_dataclass(tp)


def _per_run(tp: Any) -> bool:
    """A RunArgs field: set by the caller, not a recipe key."""
    return tp is RunArgs


def keys(cls: type, prefix: str = "") -> list[str]:
    """Every dotted key a config class accepts (leaves and sections)."""
    out = []
    hints = _hints(cls)
    for f in dataclasses.fields(cls):
        if _per_run(hints[f.name]):
            continue
        key = prefix + f.name
        out.append(key)
        if _is_dataclass_type(hints[f.name]):
            out.extend(keys(hints[f.name], key + "."))
    return out


def mapping_keys(cls: type, prefix: str = "") -> set[str]:
    """Dotted keys of dict-typed fields: their sub-keys are free-form (e.g. blend weights)."""
    out = set()
    hints = _hints(cls)
    for f in dataclasses.fields(cls):
        tp = hints[f.name]
        if _per_run(tp):
            continue
        if _is_dataclass_type(tp):
            out |= mapping_keys(tp, f"{prefix}{f.name}.")
        elif get_origin(tp) is dict or any(get_origin(a) is dict for a in get_args(tp)):
            out.add(prefix + f.name)
    return out


def suggest(key: str, valid: list[str]) -> str:
    """' did you mean ...?' for an unknown key, or '' when nothing is close."""
    leaf = key.rsplit(".", 1)[-1]
    same_leaf = [v for v in valid if v.rsplit(".", 1)[-1] == leaf]
    close = same_leaf or difflib.get_close_matches(key, valid, n=1, cutoff=0.6)
    if not close:
        close = [v for v in valid if difflib.get_close_matches(leaf, [v.rsplit(".", 1)[-1]], cutoff=0.75)]
    return f"; did you mean '{close[0]}'?" if close else ""


def _type_name(tp: Any) -> str:
    return getattr(tp, "__name__", None) or str(tp).replace("typing.", "")


def _coerce(value: Any, tp: Any, key: str, where: str, valid: list[str]) -> Any:
    """Check `value` against the annotation `tp`; convert where it is lossless."""
    origin, args = get_origin(tp), get_args(tp)

    def bad(expected: str) -> ConfigError:
        return ConfigError(f"{where}'{key}' must be {expected}, got {value!r}")

    if tp is Any:
        return value
    if origin in (Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        rest = [a for a in args if a is not type(None)]
        errors = []
        for a in rest:
            try:
                return _coerce(value, a, key, where, valid)
            except ConfigError as e:
                errors.append(e)
        raise errors[0]
    if origin is Literal:
        if value in args:
            return value
        raise bad("one of " + ", ".join(repr(a) for a in args))
    if _is_dataclass_type(tp):
        if isinstance(value, tp):
            return value
        if not isinstance(value, dict):
            raise bad(f"a mapping of {tp.__name__} keys")
        return _build(tp, value, key + ".", where, valid)
    if tp is bool:
        if isinstance(value, bool):
            return value
        raise bad("true or false")
    if tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        raise bad("an integer")
    if tp is float:
        if isinstance(value, int | float) and not isinstance(value, bool):
            return float(value)
        raise bad("a number")
    if tp is str:
        if isinstance(value, str):
            return value
        if isinstance(value, int | float) and not isinstance(value, bool):
            return str(value)
        raise bad("a string")
    if origin in (list, tuple):
        if isinstance(value, str):  # --set languages=en,de
            value = [v.strip() for v in value.split(",") if v.strip()]
        if not isinstance(value, list | tuple):
            raise bad("a list")
        item_tp = args[0] if args else Any
        return [_coerce(v, item_tp, f"{key}[{i}]", where, valid) for i, v in enumerate(value)]
    if origin is dict:
        if not isinstance(value, dict):
            raise bad("a mapping")
        val_tp = args[1] if len(args) == 2 else Any
        return {str(k): _coerce(v, val_tp, f"{key}.{k}", where, valid) for k, v in value.items()}
    raise ConfigError(f"{where}'{key}': unsupported type {_type_name(tp)}")  # a bug in a config class


def _build(cls: type[C], data: dict[str, Any], prefix: str, where: str, valid: list[str]) -> C:
    hints = _hints(cls)
    names = {f.name for f in dataclasses.fields(cls) if not _per_run(hints[f.name])}
    kwargs = {}
    for k, v in data.items():
        if k not in names:
            raise ConfigError(f"{where}unknown key '{prefix}{k}'{suggest(prefix + k, valid)}")
        kwargs[k] = _coerce(v, hints[k], prefix + k, where, valid)
    return cls(**kwargs)


def _set_path(tree: dict[str, Any], dotted: str, value: Any) -> None:
    parts = dotted.split(".")
    node = tree
    for p in parts[:-1]:
        nxt = node.get(p)
        if not isinstance(nxt, dict):
            nxt = {}
            node[p] = nxt
        node = nxt
    node[parts[-1]] = value


def _flatten(tree: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    flat = {}
    for k, v in tree.items():
        if isinstance(v, dict) and v:
            flat.update(_flatten(v, f"{prefix}{k}."))
        else:
            flat[prefix + k] = v
    return flat


def _yaml_lines(text: str) -> dict[str, int]:
    """Line number (1-based) of every dotted key in a YAML mapping, for error messages."""
    lines: dict[str, int] = {}

    def walk(node: yaml.Node, prefix: str) -> None:
        if isinstance(node, yaml.MappingNode):
            for k, v in node.value:
                key = f"{prefix}{k.value}"
                lines[key] = k.start_mark.line + 1
                walk(v, key + ".")

    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError:
        return lines
    if root is not None:
        walk(root, "")
    return lines


def read_recipe(path: str | Path) -> tuple[dict[str, Any], dict[str, int]]:
    """Parse a recipe file: (mapping, line of each dotted key)."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as e:
        raise ConfigError(f"cannot read recipe {p}: {e.strerror}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        line = f":{mark.line + 1}" if mark else ""
        raise ConfigError(f"{p}{line}: not valid YAML ({getattr(e, 'problem', e)})") from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{p}: a recipe must be a mapping of keys to values")
    return data, _yaml_lines(text)


def parse_override(item: str) -> tuple[str, Any]:
    """'a.b=value' -> ('a.b', value parsed as YAML: numbers, booleans, lists)."""
    if "=" not in item:
        raise ConfigError(f"--set {item!r}: expected KEY=VALUE, e.g. --set stats.min_words=50")
    key, raw = item.split("=", 1)
    key = key.strip()
    if not key:
        raise ConfigError(f"--set {item!r}: empty key")
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError:
        value = raw
    return key, value


def load(
    cls: type[C],
    recipe: str | Path | None = None,
    overrides: list[str] | None = None,
    flags: dict[str, Any] | None = None,
    run: RunArgs | None = None,
) -> C:
    """Resolve a stage config: defaults < recipe < --set overrides < explicit flags; `run` becomes
    `cfg.run` (its recipe_dir defaults to the recipe's directory)."""
    valid = keys(cls)
    free = mapping_keys(cls)
    tree: dict[str, Any] = {}
    if recipe is not None:
        data, lines = read_recipe(recipe)
        # validate the recipe's own keys first, so an error points at its line
        for dotted in _flatten(data):
            head = _known_prefix(dotted, valid, free)
            if head is None:
                line = lines.get(dotted) or lines.get(dotted.rsplit(".", 1)[0]) or 0
                raise ConfigError(f"{recipe}:{line}: unknown key '{dotted}'{suggest(dotted, valid)}")
        try:
            _build(cls, data, "", f"{recipe}: ", valid)  # type errors name the recipe and line
        except ConfigError as e:
            raise ConfigError(_add_line(str(e), recipe, lines)) from None
        tree = data
    for item in overrides or []:
        key, value = parse_override(item)
        if _known_prefix(key, valid, free) is None:
            raise ConfigError(f"--set {item}: unknown key '{key}'{suggest(key, valid)}")
        _set_path(tree, key, value)
    for key, value in (flags or {}).items():
        if value is not None:
            _set_path(tree, key, value)
    cfg = _build(cls, tree, "", "", valid)
    if any(_per_run(tp) for tp in _hints(cls).values()):
        run = run if run is not None else RunArgs()
        if run.recipe_dir is None and recipe is not None:
            run = dataclasses.replace(run, recipe_dir=Path(recipe).parent)
        cfg.run = run  # type: ignore[attr-defined]
    return cfg


def _known_prefix(dotted: str, valid: list[str], free: set[str]) -> str | None:
    """The key itself if valid, or a dict-typed ancestor (whose sub-keys are free-form)."""
    if dotted in valid:
        return dotted
    parts = dotted.split(".")
    for i in range(len(parts) - 1, 0, -1):
        head = ".".join(parts[:i])
        if head in free:
            return head
    return None


def _add_line(msg: str, recipe: str | Path, lines: dict[str, int]) -> str:
    prefix = f"{recipe}: '"
    if msg.startswith(prefix):
        key = msg[len(prefix) :].split("'", 1)[0].split("[", 1)[0]
        if key in lines:
            return f"{recipe}:{lines[key]}: '" + msg[len(prefix) :]
    return msg


def from_dict(cls: type[C], data: dict[str, Any]) -> C:
    """A config from its to_dict() form (a recorded or transmitted config), checked like a recipe."""
    return _build(cls, data, "", "", keys(cls))


def to_dict(cfg: Any) -> dict[str, Any]:
    """The resolved config as plain JSON-able data (what goes into the manifest), without its
    per-invocation RunArgs."""
    data = dataclasses.asdict(cfg)
    for f in dataclasses.fields(cfg):
        if isinstance(getattr(cfg, f.name), RunArgs):
            del data[f.name]
    return data


def default_of(cls: type, dotted: str) -> Any:
    """The dataclass default of a dotted key, for `--help` texts."""
    obj = cls()
    for part in dotted.split("."):
        obj = getattr(obj, part)
    return obj
