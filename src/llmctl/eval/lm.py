"""A local Hugging Face causal LM and the three things eval asks of it: log-likelihoods of
continuations, sliding-window log-likelihood of whole texts, and generation.

Log-likelihoods follow lm-evaluation-harness's HFLM so that scores agree with it: the context's
trailing spaces move to the continuation, the continuation's tokens are those of
`encode(context + continuation)` after `encode(context)` (no special tokens), an empty context
is the prefix token (BOS, else EOS), and inputs are left-truncated to the model's length.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from llmctl import hf
from llmctl.console import progress
from llmctl.errors import UserError

MAX_LENGTH_CAP = 2048


def artifact_root(path: str | Path) -> Path | None:
    """The llmctl artifact a model directory belongs to (for lineage), if any."""
    from llmctl import artifacts

    d = hf.model_dir(path)
    for candidate in (d, d.parent):
        if artifacts.is_complete(candidate):
            return candidate
    return None


def count_parameters(model: Any) -> int:
    """The model's weights, a quantized layer's counted as the in x out weights it stands for: GPTQ
    keeps them as packed int32 buffers (qweight), which model.parameters() leaves out."""
    packed = sum(m.in_features * m.out_features for m in model.modules() if hasattr(m, "qweight"))
    return sum(p.numel() for p in model.parameters()) + packed


def check_loadable(path: str | Path) -> None:
    """Config and tokenizer load (cheap), so that a bad directory fails before any scoring."""
    d = hf.model_dir(path)
    hf.refuse_custom_code(d, "eval")
    try:
        hf.load_config(d, what="eval")
        hf.load_tokenizer(d, what="eval")
    except UserError:
        raise
    except Exception as e:  # transformers raises OSError, ValueError, KeyError... for a bad directory
        raise UserError(
            f"{d}: does not load as a causal LM with its tokenizer ({type(e).__name__}: {e})"
        ) from None


@dataclass
class Window:
    doc: int
    tokens: list[int]
    first_target: int  # index in `tokens` of the first token scored in this window


class LM:
    def __init__(
        self, path: str | Path, *, dtype: str = "float32", batch_size: int = 8, device: str = "auto"
    ):
        from llmctl.console import is_quiet

        self.dir = hf.model_dir(path)
        hf.refuse_custom_code(self.dir, "eval")
        self.device = hf.resolve_device(device)
        self.dtype = hf.resolve_dtype(dtype, self.device)
        if is_quiet():
            hf.quiet()
        try:
            self.tokenizer = hf.load_tokenizer(self.dir, what="eval")
            self.model = hf.load_causal_lm(self.dir, what="eval", dtype=self.dtype, device=self.device)
        except UserError:
            raise
        except Exception as e:
            raise UserError(f"{self.dir}: does not load as a causal LM ({type(e).__name__}: {e})") from None
        cfg = self.model.config
        self.max_length = min(
            next(
                (
                    getattr(cfg, a)
                    for a in ("max_position_embeddings", "n_positions", "n_ctx")
                    if getattr(cfg, a, None)
                ),
                MAX_LENGTH_CAP,
            ),
            MAX_LENGTH_CAP,
        )
        self.batch_size = batch_size
        tok = self.tokenizer
        self.prefix_token = tok.bos_token_id if tok.bos_token_id is not None else tok.eos_token_id
        if self.prefix_token is None:
            raise UserError(f"{self.dir}: the tokenizer has neither a BOS nor an EOS token")
        self.pad_token = tok.pad_token_id if tok.pad_token_id is not None else self.prefix_token
        self.parameters = count_parameters(self.model)

    def encode(self, text: str) -> list[int]:
        return self.tokenizer(text, add_special_tokens=False)["input_ids"]

    def encode_pair(self, context: str, continuation: str) -> tuple[list[int], list[int]]:
        if not context:
            return [self.prefix_token], self.encode(continuation)
        spaces = len(context) - len(context.rstrip())
        if spaces:
            context, continuation = context[:-spaces], context[-spaces:] + continuation
        whole = self.encode(context + continuation)
        ctx = self.encode(context)
        return ctx, whole[len(ctx) :]

    # ------------------------------------------------------------ log-likelihood
    @torch.no_grad()
    def loglikelihood(self, requests: list[tuple[str, str]], description: str) -> list[tuple[float, bool]]:
        """(sum of log p(continuation | context), whether greedy decoding gives the continuation)."""
        encoded = [self.encode_pair(c, x) for c, x in requests]
        rows = []
        for ctx, cont in encoded:
            if not cont:
                raise UserError("an empty continuation cannot be scored")
            seq = (ctx + cont)[-(self.max_length + 1) :]
            rows.append((seq[:-1], cont))
        order = sorted(range(len(rows)), key=lambda i: (-len(rows[i][0]), rows[i][0]))
        results: list[tuple[float, bool]] = [(0.0, False)] * len(rows)
        with progress() as bar:
            task = bar.add_task(description, total=len(rows), unit="requests")
            for start in range(0, len(order), self.batch_size):
                batch = order[start : start + self.batch_size]
                logprobs = self._logprobs([rows[i][0] for i in batch])
                for j, i in enumerate(batch):
                    inp, cont = rows[i]
                    lp = logprobs[j, len(inp) - len(cont) : len(inp)]
                    target = torch.tensor(cont, device=lp.device)
                    ll = float(lp.gather(1, target[:, None]).sum())
                    results[i] = (ll, bool((lp.argmax(-1) == target).all()))
                bar.advance(task, len(batch))
        return results

    def _pad(self, inputs: list[list[int]], *, left: bool) -> tuple[torch.Tensor, torch.Tensor]:
        """(input_ids, attention_mask) of sequences padded to the longest, on the left or right."""
        width = max(len(x) for x in inputs)
        ids = torch.full((len(inputs), width), self.pad_token, dtype=torch.long)
        mask = torch.zeros((len(inputs), width), dtype=torch.long)
        for k, x in enumerate(inputs):
            span = slice(width - len(x), width) if left else slice(0, len(x))
            ids[k, span] = torch.tensor(x)
            mask[k, span] = 1
        return ids, mask

    def _logprobs(self, inputs: list[list[int]]) -> torch.Tensor:
        """log_softmax over the vocabulary at every position of right-padded inputs (float32)."""
        ids, mask = self._pad(inputs, left=False)
        logits = self.model(input_ids=ids.to(self.device), attention_mask=mask.to(self.device)).logits
        return torch.log_softmax(logits.float(), dim=-1)

    # ------------------------------------------------------------ perplexity
    def windows(self, texts: list[str], max_length: int, stride: int) -> tuple[list[Window], list[int]]:
        """Sliding windows over [prefix] + tokens of each text; every token after the prefix is
        scored once, in the window that ends with it, with up to max_length - stride tokens of
        extra context (Hugging Face's strided perplexity). Also the token count per text."""
        out, counts = [], []
        for d, text in enumerate(texts):
            seq = [self.prefix_token, *self.encode(text)]
            counts.append(0)
            prev_end = 0
            for begin in range(0, len(seq), stride):
                end = min(begin + max_length, len(seq))
                first = max(prev_end, begin + 1)
                if first < end:
                    out.append(Window(d, seq[begin:end], first - begin))
                    counts[d] += end - first
                prev_end = end
                if end == len(seq):
                    break
        return out, counts

    @torch.no_grad()
    def rolling_nll(self, texts: list[str], max_length: int, stride: int, description: str) -> list[float]:
        """Negative log-likelihood (nats) of each text, summed over its tokens."""
        windows, _ = self.windows(texts, max_length, stride)
        nll = [0.0] * len(texts)
        order = sorted(range(len(windows)), key=lambda i: -len(windows[i].tokens))
        with progress() as bar:
            task = bar.add_task(description, total=len(windows), unit="windows")
            for start in range(0, len(order), self.batch_size):
                batch = [windows[i] for i in order[start : start + self.batch_size]]
                logprobs = self._logprobs([w.tokens for w in batch])
                for j, w in enumerate(batch):
                    lp = logprobs[j, w.first_target - 1 : len(w.tokens) - 1]
                    target = torch.tensor(w.tokens[w.first_target :], device=lp.device)
                    nll[w.doc] -= float(lp.gather(1, target[:, None]).sum())
                bar.advance(task, len(batch))
        return nll

    # ------------------------------------------------------------ generation
    @torch.no_grad()
    def generate(self, prompts: list[str], gen: Any, seed: int, description: str) -> list[str]:
        """Continuations of each prompt under the decoding strategy; cut at the first stop string."""
        kwargs: dict[str, Any] = {
            "max_new_tokens": gen.max_new_tokens,
            "repetition_penalty": gen.repetition_penalty,
            "pad_token_id": self.pad_token,
            "eos_token_id": self.tokenizer.eos_token_id,
        }
        if gen.strategy == "beam":
            kwargs.update(num_beams=gen.num_beams, length_penalty=gen.length_penalty, early_stopping=True)
            kwargs.update(do_sample=False)
        elif gen.strategy == "sample":
            kwargs.update(do_sample=True, temperature=gen.temperature, top_k=gen.top_k, top_p=gen.top_p)
        else:
            kwargs.update(do_sample=False, num_beams=1)
        if gen.stop:
            kwargs["stop_strings"] = list(gen.stop)
        config = hf.generation_config(**kwargs)
        tok = self.tokenizer
        outputs: list[str] = [""] * len(prompts)
        order = sorted(range(len(prompts)), key=lambda i: -len(prompts[i]))
        with progress() as bar:
            task = bar.add_task(description, total=len(prompts), unit="items")
            for b, start in enumerate(range(0, len(order), self.batch_size)):
                batch = order[start : start + self.batch_size]
                encoded = [self._prompt_ids(prompts[i], gen.max_new_tokens) for i in batch]
                ids, mask = self._pad(encoded, left=True)  # generation continues at the right edge
                width = ids.shape[1]
                torch.manual_seed(seed + b)
                new = self.model.generate(
                    input_ids=ids.to(self.device),
                    attention_mask=mask.to(self.device),
                    generation_config=config,
                    tokenizer=tok,
                )[:, width:].cpu()
                for k, i in enumerate(batch):
                    outputs[i] = cut_at_stop(tok.decode(new[k], skip_special_tokens=True), gen.stop)
                bar.advance(task, len(batch))
        return outputs

    def _prompt_ids(self, prompt: str, max_new_tokens: int) -> list[int]:
        """The prompt without special tokens (as lm-eval's generate_until), left-truncated so that
        prompt + answer fit the model."""
        ids = self.encode(prompt) or [self.prefix_token]
        return ids[-max(1, self.max_length - max_new_tokens) :]


def cut_at_stop(text: str, stops: list[str]) -> str:
    cut = min((text.find(s) for s in stops if s and s in text), default=-1)
    return text if cut < 0 else text[:cut]
