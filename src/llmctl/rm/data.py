"""Human preferences as pairs (survey 5.2.2): every source becomes `Pair(prompt, chosen, rejected,
margin)` records, whatever shape it was collected in, or rejections with a reason.

Shapes (decided per file by its first record; a first record of none of them is exit 2):
  - pairs:    {"prompt", "chosen", "rejected", "margin"?}   (strings or message lists, TRL's columns)
  - rankings: {"prompt", "responses": [...], "ranking": [i, ...]}  best first: C(K,2) ordered pairs
              (InstructGPT); a ranking that is not a permutation of the responses is exit 2
  - ratings:  {"prompt", "response", "score"}  grouped by prompt: a pair per two responses whose
              scores differ by at least data.min_score_gap (closer ones are ties, counted)

    reader = SourceReader("hh", min_score_gap=1.0, max_pairs_per_prompt=None, seed=0)
    for where, row in records: reader.add(row, where)      # raises Reject for a bad record
    pairs = reader.finish()                                  # ratings are paired here
"""

from __future__ import annotations

import itertools
import json
import random
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from llmctl.errors import UserError

ROLES = ("system", "user", "assistant")
Messages = list[dict[str, str]]
KINDS: dict[str, tuple[str, ...]] = {
    "pairs": ("prompt", "chosen", "rejected"),
    "rankings": ("prompt", "responses", "ranking"),
    "ratings": ("prompt", "response", "score"),
}


class Reject(Exception):  # noqa: N818 (a verdict on one record, counted, not an error)
    """A record that gives no pair; `reason` is its rejected/ reason."""

    def __init__(self, reason: str, detail: str = ""):
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail


@dataclass
class Pair:
    """One preference: `chosen` is the better response to `prompt` (messages, as the policy sees them)."""

    prompt: Messages
    chosen: Messages
    rejected: Messages
    margin: float | None = None
    source: str = ""
    origin: str = ""  # FILE:LINE of the record(s) it came from
    subset: str = ""  # the record's own `source` column (e.g. the original data set), for metrics

    @property
    def key(self) -> str:
        """The prompt's identity: all pairs of one prompt share it (and so one split)."""
        return prompt_key(self.prompt)

    def to_dict(self) -> dict[str, Any]:
        return {
            "prompt": self.prompt,
            "chosen": self.chosen,
            "rejected": self.rejected,
            "margin": self.margin,
            "source": self.source,
            "origin": self.origin,
            "subset": self.subset,
        }


def prompt_key(prompt: Messages) -> str:
    return json.dumps(prompt, sort_keys=True, ensure_ascii=False)


def detect(row: dict[str, Any]) -> str | None:
    """The record's shape (pairs, rankings, ratings), or None when it has none's columns."""
    for kind, cols in KINDS.items():
        if all(c in row for c in cols):
            return kind
    return None


def check_shape(row: Any, where: str) -> str:
    """The shape of a file's first record, or exit 2 naming FILE:LINE and the columns it lacks."""
    if isinstance(row, dict):
        kind = detect(row)
        if kind is not None:
            return kind
        have = ", ".join(sorted(map(str, row))) or "none"
    else:
        have = f"a JSON {type(row).__name__}, not an object"
    raise UserError(
        f"{where}: not a preference record: expected the columns prompt+chosen+rejected (pairs), "
        f"prompt+responses+ranking (rankings) or prompt+response+score (ratings); it has: {have}"
    )


def messages(value: Any, role: str, what: str) -> Messages:
    """A prompt (role=user) or a response (role=assistant) as checked {role, content} messages."""
    if isinstance(value, str):
        if not value.strip():
            raise Reject("empty_content", f"{what} is empty")
        return [{"role": role, "content": value}]
    if not isinstance(value, list) or not value:
        raise Reject("bad_message", f"{what} is {type(value).__name__}, not a string or message list")
    out = []
    for m in value:
        if not isinstance(m, dict):
            raise Reject("bad_message", f"a turn of {what} is {type(m).__name__}, not an object")
        r, content = m.get("role"), m.get("content")
        if r not in ROLES:
            raise Reject("unknown_role", f"{what}: {r!r}"[:60])
        if role == "assistant" and r != "assistant":
            raise Reject("bad_message", f"{what} has a {r} turn; a response holds assistant turns only")
        if not isinstance(content, str) or not content.strip():
            raise Reject("empty_content", f"a {r} turn of {what} has no text")
        out.append({"role": r, "content": content})
    return out


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and value == value  # not NaN


def expand_ranking(responses: list[Messages], ranking: list[int]) -> list[tuple[Messages, Messages]]:
    """The C(K,2) ordered (better, worse) pairs of a ranking given best first."""
    return [(responses[a], responses[b]) for a, b in itertools.combinations(ranking, 2)]


def check_ranking(ranking: Any, k: int, where: str) -> list[int]:
    """A ranking must order every response exactly once: anything else is exit 2 naming the record."""
    if not isinstance(ranking, list) or not all(
        isinstance(i, int) and not isinstance(i, bool) for i in ranking
    ):
        raise UserError(f"{where}: key 'ranking' must be a list of response indices, best first")
    repeated = sorted(i for i, n in Counter(ranking).items() if n > 1)
    if repeated:
        raise UserError(
            f"{where}: key 'ranking' {ranking} repeats index {', '.join(map(str, repeated))}; "
            "a ranking orders each response once (a permutation of 0..K-1), best first"
        )
    if sorted(ranking) != list(range(k)):
        raise UserError(
            f"{where}: key 'ranking' {ranking} is not a permutation of the {k} responses' indices 0..{k - 1}"
        )
    return ranking


@dataclass
class SourceReader:
    """One source's records -> pairs, with the counts the manifest reports."""

    name: str
    min_score_gap: float = 1.0
    max_pairs_per_prompt: int | None = None
    seed: int = 0
    system_prompt: str = ""
    pairs: list[Pair] = field(default_factory=list)
    kinds: Counter = field(default_factory=Counter)
    dropped: Counter = field(default_factory=Counter)  # pairs not formed: identical, tie, capped
    _ratings: dict[str, list[tuple[Messages, Messages, float, str, dict[str, Any]]]] = field(
        default_factory=dict
    )
    _kind_of_file: dict[str, str] = field(default_factory=dict)

    def add(self, row: Any, where: str, file: str) -> None:
        """One record (its pairs appended, or its ratings kept for `finish`); Reject if unusable."""
        if file not in self._kind_of_file:
            self._kind_of_file[file] = check_shape(row, where)
        kind = self._kind_of_file[file]
        if not isinstance(row, dict):
            raise Reject("not_an_object", type(row).__name__)
        missing = [c for c in KINDS[kind] if c not in row]
        if missing:
            raise Reject("missing_column", f"a {kind} record without {', '.join(missing)}")
        prompt = self._prompt(row["prompt"])
        self.kinds[kind] += 1
        if kind == "pairs":
            self._pair(row, prompt, where)
        elif kind == "rankings":
            self._ranking(row, prompt, where)
        else:
            score = row["score"]
            if not _number(score):
                raise Reject("bad_score", f"score is {score!r}"[:60])
            response = messages(row["response"], "assistant", "response")
            self._ratings.setdefault(prompt_key(prompt), []).append(
                (prompt, response, float(score), where, row)
            )

    def _prompt(self, value: Any) -> Messages:
        prompt = messages(value, "user", "prompt")
        if self.system_prompt and prompt[0]["role"] != "system":
            prompt = [{"role": "system", "content": self.system_prompt}, *prompt]
        return prompt

    def _pair(self, row: dict[str, Any], prompt: Messages, where: str) -> None:
        chosen = messages(row["chosen"], "assistant", "chosen")
        rejected = messages(row["rejected"], "assistant", "rejected")
        if chosen == rejected:
            raise Reject("identical", "chosen and rejected are the same response")
        margin = row.get("margin")
        if margin is not None and not _number(margin):
            raise Reject("bad_margin", f"margin is {margin!r}"[:60])
        subset = row.get("source") if isinstance(row.get("source"), str) else ""
        self.pairs.append(
            Pair(
                prompt, chosen, rejected, None if margin is None else float(margin), self.name, where, subset
            )
        )

    def _ranking(self, row: dict[str, Any], prompt: Messages, where: str) -> None:
        raw = row["responses"]
        if not isinstance(raw, list):
            raise Reject("bad_message", "responses is not a list")
        ranking = check_ranking(row["ranking"], len(raw), where)
        if len(raw) < 2:
            raise Reject("too_few_responses", f"{len(raw)} response(s); a ranking needs 2 or more")
        responses = [messages(r, "assistant", f"responses[{i}]") for i, r in enumerate(raw)]
        formed = []
        for better, worse in expand_ranking(responses, ranking):
            if better == worse:
                self.dropped["identical"] += 1
                continue
            formed.append(Pair(prompt, better, worse, None, self.name, where))
        if not formed:
            raise Reject("identical", "every response of the ranking is the same")
        self.pairs.extend(self._cap(formed))

    def _cap(self, formed: list[Pair]) -> list[Pair]:
        n = self.max_pairs_per_prompt
        if n is None or len(formed) <= n:
            return formed
        self.dropped["over_max_pairs_per_prompt"] += len(formed) - n
        rng = random.Random(f"{self.seed}:{self.name}:{formed[0].key}")
        keep = sorted(rng.sample(range(len(formed)), n))
        return [formed[i] for i in keep]

    def finish(self) -> tuple[list[Pair], list[tuple[dict[str, Any], str, str, str]]]:
        """The ratings paired by prompt; returns (all pairs, rating records that formed no pair as
        (record, where, reason, detail))."""
        unpaired = []
        for group in self._ratings.values():
            used: set[int] = set()
            formed = []
            for (i, a), (j, b) in itertools.combinations(enumerate(group), 2):
                gap = a[2] - b[2]
                if abs(gap) < self.min_score_gap:
                    self.dropped["tie"] += 1
                    continue
                better, worse = (a, b) if gap > 0 else (b, a)
                if better[1] == worse[1]:
                    self.dropped["identical"] += 1
                    continue
                used.update((i, j))
                origin = f"{better[3]} > {worse[3]}"
                formed.append(Pair(a[0], better[1], worse[1], None, self.name, origin))
            self.pairs.extend(self._cap(formed))
            for i, (_, _, score, where, row) in enumerate(group):
                if i not in used:
                    why = (
                        "the only rating of its prompt"
                        if len(group) == 1
                        else f"score {score} is within {self.min_score_gap} of every other"
                    )
                    unpaired.append((row, where, "no_pair", why))
        self._ratings = {}
        return self.pairs, unpaired


def split_by_prompt(pairs: list[Pair], held_out: int, seed: int) -> tuple[list[Pair], list[Pair]]:
    """(train, held-out): `held_out` prompts drawn at random, with every pair of theirs, so that no
    prompt is in both splits. At least one prompt stays for training (else exit 2)."""
    keys = sorted({p.key for p in pairs})
    if len(keys) <= held_out:
        raise UserError(
            f"data.held_out={held_out} prompts leaves none for training: the data has {len(keys)} distinct "
            "prompt(s); lower data.held_out or add data"
        )
    random.Random(f"{seed}:held-out").shuffle(keys)
    held = set(keys[:held_out])
    return [p for p in pairs if p.key not in held], [p for p in pairs if p.key in held]
