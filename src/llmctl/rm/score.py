"""`llmctl score`: every row of a JSONL of (prompt, response) written back with its reward.

    llmctl score runs/demo/rm data/rm/responses.jsonl --out runs/demo/scored

Rows are `{"id"?, "prompt", "response", ...}` (strings or message lists) or chats
(`{"messages": [...]}`: the last assistant turn is the response, the turns before it the prompt).
Each row is written to data/part-NNNNN.jsonl.zst unchanged plus `score` (and `score_norm` with
--normalise); a row that cannot be scored goes to rejected/ with a reason: kept + rejected = input.
The scoring is `llmctl.rm.scorer.Scorer`, which best-of-N and evaluation reuse.
"""

from __future__ import annotations

import statistics
from pathlib import Path
from typing import Any

from llmctl import artifacts, hf
from llmctl.artifacts import Manifest
from llmctl.config import to_dict
from llmctl.console import info, is_quiet
from llmctl.errors import UserError
from llmctl.formats import documents
from llmctl.formats.documents import Malformed
from llmctl.rm.config import ScoreConfig
from llmctl.rm.data import Reject
from llmctl.rm.scorer import REWARD_JSON, Scorer, as_prompt, as_response

CHUNK = 256  # rows scored per call (bounded memory on a large file)


def split_row(row: Any) -> tuple[Any, Any]:
    """(prompt, response) of a row, or Reject(reason)."""
    if not isinstance(row, dict):
        raise Reject("not_an_object", type(row).__name__)
    if "prompt" in row and "response" in row:
        return row["prompt"], row["response"]
    msgs = row.get("messages")
    if isinstance(msgs, list) and msgs:
        last = max(
            (i for i, m in enumerate(msgs) if isinstance(m, dict) and m.get("role") == "assistant"),
            default=None,
        )
        if last is None or last == 0:
            raise Reject("no_assistant_turn", "a chat needs a prompt turn and an assistant turn")
        return msgs[:last], [msgs[last]]
    raise Reject("missing_column", "expected prompt+response or messages")


def run(cfg: ScoreConfig) -> Manifest:
    out = cfg.run.out_dir("score")
    if not cfg.model:
        raise UserError("score needs RM_DIR: a reward-model artifact (llmctl rm)")
    rm_dir = Path(cfg.model)
    if not (rm_dir / REWARD_JSON).is_file():
        raise UserError(f"{rm_dir}: not a reward-model artifact (no {REWARD_JSON}); make one with llmctl rm")
    if not cfg.run.inputs:
        raise UserError("score needs DATA: JSONL files of {prompt, response} or chats")
    files = documents.expand(cfg.run.inputs)
    d = to_dict(cfg)
    d.pop("run", None)
    art = artifacts.begin("score", out, config=d, inputs=[rm_dir, *cfg.run.inputs], force=cfg.run.force)
    if art.done:
        return art.manifest
    with artifacts.discard_on_user_error(art):
        hf.offline()
        if is_quiet():
            hf.quiet()
        scorer = Scorer.load(rm_dir, device=cfg.device, dtype=cfg.dtype, batch_size=cfg.batch_size)
        reasons: dict[str, int] = {}
        scores: list[float] = []
        seen = 0
        with (
            documents.ShardWriter(art.staging / "data") as kept,
            documents.ShardWriter(art.staging / "rejected") as rejected,
        ):
            pending: list[tuple[dict[str, Any], Any, Any]] = []

            def flush() -> None:
                got = scorer.score([(p, r) for _, p, r in pending])
                for (row, _, _), s in zip(pending, got, strict=True):
                    out_row = {**row, "score": s}
                    if cfg.normalise:
                        out_row["score_norm"] = scorer.normalise(s)
                    kept.write(out_row)
                    scores.append(s)
                pending.clear()

            for source, line, row in documents.rows(files):
                seen += 1
                try:
                    if isinstance(row, Malformed):
                        raise Reject("bad_record", row.error)
                    prompt, response = split_row(row)
                    pending.append((row, as_prompt(prompt), as_response(response)))
                except Reject as r:
                    reasons[r.reason] = reasons.get(r.reason, 0) + 1
                    raw = row.raw if isinstance(row, Malformed) else row
                    rejected.write({"file": source.name, "line": line, "reason": r.reason, "detail": r.detail,
                                    "record": raw})  # fmt: skip
                if len(pending) >= CHUNK:
                    flush()
            if pending:
                flush()
        if not scores:
            raise UserError(
                f"DATA: no scorable rows of {seen} ({', '.join(f'{k}: {v}' for k, v in reasons.items())})"
            )
        metrics = {
            "input": seen,
            "scored": len(scores),
            "rejected": seen - len(scores),
            "reasons": reasons,
            "truncated": scorer.truncated,
            "score_mean": statistics.fmean(scores),
            "score_std": statistics.pstdev(scores),
            "score_min": min(scores),
            "score_max": max(scores),
        }
        info(f"scored {len(scores):,} of {seen:,} rows")
        return art.commit(metrics)
