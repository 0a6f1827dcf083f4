"""`llmctl quantize --method int8` (LLM.int8() through bitsandbytes) end to end on the tiny Llama: the
artifact reloads offline in transformers as bitsandbytes Linear8bitLt layers (and through hf.py, as
`llmctl eval` loads it, without bitsandbytes' per-call notice) with logits close to the fp model's,
held-out perplexity within 1% of fp, smaller on disk and in memory; bits/group sizes other than
int8's own and a missing bitsandbytes are exit 2 with one line. bitsandbytes is a dev dependency:
without it these tests fail, not skip."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import torch

from llmctl import artifacts
from llmctl import config as cfgmod
from llmctl.errors import ConfigError
from llmctl.quantize.config import QuantizeConfig
from tests.conftest import REPO, llmctl
from tests.fixtures import corpus
from tests.fixtures.models import tiny_llama

RECIPE = REPO / "recipes" / "quantize" / "int8.yaml"
# relative L2 error of the logits ||int8 - fp|| / ||fp|| on 64 tokens of unseen text; measured on
# this random tiny model: 0.0073 (top-1 agreement 0.98-1.0); SmolLM2-135M: 0.155 (the lead's run)
TOL = 0.02


@pytest.fixture(scope="module")
def q8(tmp_path_factory):
    d = tmp_path_factory.mktemp("int8")
    model = tiny_llama(d / "tiny")
    calib = d / "calib.jsonl"
    calib.write_text("".join(json.dumps({"text": t}) + "\n" for t in corpus.prose(200)))
    out = d / "q8"
    args = ["--method", "int8", "--calibration", str(calib), "--out", str(out), "--config", str(RECIPE)]
    args += ["--set", "calibration.seq_len=64"]
    r = llmctl("quantize", str(model), *args, timeout=600)
    assert r.returncode == 0, r.stderr[-4000:]
    return model, out, r, args


def _logits(model, ids):
    with torch.no_grad():
        return model(input_ids=ids).logits.float()


def test_int8_artifact_reloads_as_linear8bitlt_close_to_fp(q8, capfd):
    import bitsandbytes as bnb
    from transformers import AutoModelForCausalLM

    from llmctl import hf

    model, out, r, _ = q8
    q = AutoModelForCausalLM.from_pretrained(out / "hf", local_files_only=True, dtype=torch.float32)
    int8 = [n for n, m in q.named_modules() if isinstance(m, bnb.nn.Linear8bitLt)]
    assert len(int8) == 14  # 2 blocks x 7 linears; embeddings and lm_head stay fp
    by_eval = hf.load_causal_lm(out, what="int8", dtype=torch.float32, device="cpu")  # eval's loader
    assert isinstance(by_eval.model.layers[0].mlp.down_proj, bnb.nn.Linear8bitLt)
    tok = hf.load_tokenizer(out / "hf", what="int8")
    ids = torch.tensor([tok(corpus.prose(210)[-1])["input_ids"][:64]])
    fp = _logits(hf.load_causal_lm(model, what="fp", dtype=torch.float32), ids)
    got = _logits(q, ids)
    assert float((got - fp).norm() / fp.norm()) < TOL
    assert (got.argmax(-1) == fp.argmax(-1)).float().mean() > 0.95
    assert torch.equal(_logits(by_eval, ids), got)
    assert "inputs will be cast" not in capfd.readouterr().err  # hf.py filters bitsandbytes' notice

    qc = json.loads((out / "hf" / "config.json").read_text())["quantization_config"]
    assert (qc["quant_method"], qc["load_in_8bit"], qc["llm_int8_threshold"]) == ("bitsandbytes", True, 6.0)
    assert (out / "hf" / "tokenizer.json").is_file()
    assert "inputs will be cast" not in r.stderr and "Traceback" not in r.stderr


def test_int8_report_perplexity_within_1_percent_and_smaller_second_run_no_op(q8):
    model, out, _, args = q8
    man = artifacts.Manifest.read(out)
    m = man.metrics
    assert abs(m["perplexity_increase"]) < 0.01  # measured: +0.01%
    assert m["quantized_disk_bytes"] < 0.7 * m["fp_disk_bytes"]  # measured 0.28 vs 0.49 MB
    assert m["quantized_memory_bytes"] < 0.7 * m["fp_memory_bytes"]
    assert m["quantized_tokens_per_s"] > 0 and m["int8_layers"] == 14
    assert all(0 < e < 0.02 for e in m["layer_errors"]["int8"].values())  # measured 0.006-0.007
    assert m["calibration"]["held_out_windows"] >= 1 and m["calibration"]["samples"] == 0
    assert (man.config["bits"], man.config["group_size"], man.config["method"]) == (8, -1, "int8")
    report = (out / "report.md").read_text()
    assert "int8 (LLM.int8() through bitsandbytes)" in report and "| held-out perplexity |" in report
    before = (out / "manifest.json").read_text()  # a second run is a no-op (bitsandbytes not imported)
    r = llmctl("quantize", str(model), *args)
    assert r.returncode == 0 and (out / "manifest.json").read_text() == before


def test_int8_bits_and_group_size_resolve_or_are_exit_2(tmp_path):
    cfg = cfgmod.load(QuantizeConfig, None, ["method=int8"], {})
    assert (cfg.bits, cfg.group_size) == (8, -1)
    assert (QuantizeConfig().bits, QuantizeConfig().group_size) == (4, 128)  # gptq's defaults kept
    for override, key in (("bits=4", "bits"), ("group_size=128", "group_size")):
        with pytest.raises(ConfigError, match=f"'{key}': .* does not apply to method int8"):
            cfgmod.load(QuantizeConfig, None, ["method=int8", override], {})
    r = llmctl("quantize", str(tmp_path), "--method", "int8", "--bits", "4", "--out", str(tmp_path / "q"))
    assert r.returncode == 2 and "'bits': 4 does not apply to method int8" in r.stderr
    assert "Traceback" not in r.stderr and len(r.stderr.strip().splitlines()) == 1


HIDDEN = """
import sys
sys.modules["bitsandbytes"] = None  # import bitsandbytes -> ImportError, as where it is not installed
sys.argv = ["llmctl", *sys.argv[1:]]
from llmctl.cli import main
main()
"""


def test_missing_bitsandbytes_is_exit_2_naming_the_extra(tmp_path):
    """One line, the extra's brackets printed as text (rich markup once ate '[int8]'), nothing written."""
    out = tmp_path / "q"
    args = ["quantize", str(tmp_path), "--method", "int8", "--out", str(out)]
    r = subprocess.run([sys.executable, "-c", HIDDEN, *args], cwd=REPO, capture_output=True, text=True,
                       env={**os.environ, "COLUMNS": "1000"}, timeout=300)  # fmt: skip
    assert r.returncode == 2, r.stderr[-2000:]
    assert r.stderr.strip() == (
        "error: method int8 needs bitsandbytes (pip install 'llmctl[int8]' or bitsandbytes==0.50.2)"
    )
    assert not out.exists() and not artifacts.staging_dir(out).exists()
