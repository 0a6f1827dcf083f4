"""quantize's pure parts: bad recipe values name their key; the group-size check names the layer and
the sizes that divide every layer; the calibration split never puts a document on both sides and
is seeded; windows; the report's GPTQ-worse-than-RTN warning."""

from __future__ import annotations

import json

import pytest

from llmctl import config as cfgmod
from llmctl.errors import ConfigError, UserError
from llmctl.quantize import calibration, report
from llmctl.quantize.config import CalibrationConfig, QuantizeConfig
from llmctl.quantize.stage import check_group_size


@pytest.mark.parametrize(
    ("override", "key"),
    [
        ("method=awq", "method"),
        ("bits=5", "bits"),
        ("group_size=4", "group_size"),
        ("damp=0", "damp"),
        ("calibration.samples=0", "calibration.samples"),
        ("calibration.held_out_docs=1", "calibration.held_out_docs"),
    ],
)
def test_bad_values_name_their_key(override, key):
    with pytest.raises(ConfigError, match=key):
        cfgmod.load(QuantizeConfig, None, [override], {})


def test_group_size_that_does_not_divide_a_layer_names_it_and_the_valid_sizes():
    widths = {"model.layers.0.self_attn.q_proj": 576, "model.layers.0.mlp.down_proj": 1536}
    check_group_size(widths, 64)  # SmolLM2: 64 divides both
    check_group_size(widths, -1)
    with pytest.raises(UserError) as e:
        check_group_size(widths, 128)
    msg = str(e.value)
    assert "model.layers.0.self_attn.q_proj.in_features=576" in msg
    assert "16, 32, 64, -1" in msg
    with pytest.raises(UserError, match="down_proj.in_features=176 is not a multiple of 32"):
        check_group_size({"model.layers.0.mlp.down_proj": 176}, 16)


def test_split_is_seeded_and_disjoint():
    texts = [f"document {i}" for i in range(40)]
    calib, held = calibration.split_documents(texts, 0.25, seed=7)
    assert len(held) == 10 and len(calib) == 30 and not set(calib) & set(held)
    assert calibration.split_documents(texts, 0.25, seed=7) == (calib, held)
    assert calibration.split_documents(texts, 0.25, seed=8) != (calib, held)
    with pytest.raises(UserError, match="at least 2"):
        calibration.split_documents(["only one"], 0.5, seed=0)


def test_windows():
    ids = list(range(100))
    assert calibration.windows(ids, 30, 10, None) == [ids[0:30], ids[30:60], ids[60:90]]
    seeded = calibration.windows(ids, 30, 5, seed=1)
    assert len(seeded) == 5 and all(len(w) == 30 for w in seeded)
    assert seeded == calibration.windows(ids, 30, 5, seed=1)
    assert calibration.windows(ids[:10], 30, 5, seed=1) == []


def test_build_reads_jsonl_and_records_what_it_used(tmp_path):
    class Tok:  # one token per character: enough for the bookkeeping
        eos_token_id = 0

        def __call__(self, text, add_special_tokens=False):
            return {"input_ids": [ord(c) % 50 + 1 for c in text]}

    data = tmp_path / "c.jsonl"
    data.write_text("".join(json.dumps({"text": f"doc {i} " + "x" * 200}) + "\n" for i in range(20)))
    cfg = CalibrationConfig(data=str(data), samples=6, seq_len=64, held_out_docs=0.2, held_out_windows=4)
    c = calibration.build(cfg, Tok(), context=48)
    assert c.record["seq_len"] == 48  # capped at the model's context
    assert len(c.samples) == 6 and len(c.held_out) == 4
    assert c.record["held_out_documents"] == 4 and c.record["calibration_documents"] == 16
    assert c.record["kind"] == "jsonl" and c.record["seed"] == 1234
    with pytest.raises(UserError, match="does not exist"):
        calibration.build(CalibrationConfig(data=str(tmp_path / "nope")), Tok(), None)


def test_report_warns_loudly_when_gptq_is_worse_than_rtn():
    m = {
        "calibration": {"samples": 4, "seq_len": 8, "calibration_documents": 3, "source": "x", "seed": 1,
                        "held_out_windows": 2, "held_out_documents": 1},
        "fp_perplexity": 10.0, "quantized_perplexity": 12.0, "rtn_perplexity": 11.0,
        "quantize_seconds": 1.0, "perplexity_increase": 0.2, "rtn_perplexity_increase": 0.1,
        "warning": report.GPTQ_WORSE.format(gptq=12.0, rtn=11.0),
    }  # fmt: skip
    cfg = {
        "method": "gptq",
        "bits": 4,
        "group_size": 32,
        "model": "m",
        "desc_act": False,
        "sym": True,
        "damp": 0.01,
    }
    text = report.markdown(m, {}, cfg)
    assert (
        "**WARNING: GPTQ's held-out perplexity (12.0000) is worse than round-to-nearest's (11.0000)" in text
    )
    assert "| held-out perplexity | 10.0000 | 12.0000 | 11.0000 |" in text


def test_keep_fp_rules_reach_gptqmodel_and_transformers_config(tmp_path):
    from llmctl.quantize import engine

    with pytest.raises(ConfigError, match="keep_fp"):
        cfgmod.load(QuantizeConfig, None, ["keep_fp=['(']"], {})
    (tmp_path / "config.json").write_text(json.dumps({"quantization_config": {"bits": 4}}))
    engine.mark_kept_layers(tmp_path, ["model.layers.0.self_attn.q_proj", "model.layers.1.self_attn.q_proj",
                                       "model.layers.0.mlp.up_proj"])  # fmt: skip
    q = json.loads((tmp_path / "config.json").read_text())["quantization_config"]
    assert q["modules_in_block_to_quantize"] == [["mlp.up_proj", "self_attn.q_proj"]] and q["bits"] == 4


def test_keep_fp_must_keep_the_same_modules_in_every_block():
    from llmctl.quantize.stage import same_in_every_block

    names = [f"model.layers.{i}.{m}" for i in range(2) for m in ("self_attn.q_proj", "mlp.down_proj")]
    same_in_every_block({n: 64 for n in names if "down" in n}, ["q_proj"])
    with pytest.raises(UserError, match="not layer numbers"):
        kept = {n: 64 for n in names if not n.startswith("model.layers.1.mlp")}
        same_in_every_block(kept, ["layers.1.mlp"])
