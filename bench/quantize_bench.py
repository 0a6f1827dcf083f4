"""`llmctl quantize` vs gptqmodel's own quantize call, same settings, on SmolLM2-135M-Instruct:
wall and CPU seconds, peak memory (max RSS of the process), held-out perplexity.

    python bench/quantize_bench.py                      # 4-bit g64, 32 x 256 calibration tokens
    python bench/quantize_bench.py --samples 128 --seq-len 512 --bits 8

Both sides quantize the same calibration windows (llmctl.quantize.calibration picks them from the
SOTU passages of tests/fixtures/corpus, seeded) and are scored on the same held-out windows. The
library side is the call llmctl makes, written out by hand: GPTQModel.load + quantize + save.
llmctl's time is the whole command (it also measures fp, quantized and, unless --no-rtn, RTN
perplexity); its own quantize_seconds from the manifest is printed beside it. Each side runs in its
own process, measured by /usr/bin/time.
Goal (issue 19): same quality, overhead of the quantization itself <= 5%.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

LIBRARY = r"""
import json, os, sys, time
os.environ.setdefault("GPTQMODEL_CPU_WORKERS", "2"); os.environ["GPTQMODEL_DISABLE_PACK_EXT"] = "1"
os.environ["HF_HUB_OFFLINE"] = "1"
import torch
from gptqmodel import GPTQConfig, GPTQModel
from transformers import AutoModelForCausalLM
model_dir, out, bits, group, windows_file = sys.argv[1:6]
w = json.load(open(windows_file))
qc = GPTQConfig(bits=int(bits), group_size=int(group), desc_act=True, sym=True, damp_percent=0.01,
                offload_to_disk=False)
m = GPTQModel.load(model_dir, qc, device="cpu", dtype=torch.float32)
t0 = time.perf_counter()
m.quantize([{"input_ids": s, "attention_mask": [1] * len(s)} for s in w["samples"]], batch_size=8)
seconds = time.perf_counter() - t0
m.save(out)
q = AutoModelForCausalLM.from_pretrained(out, dtype=torch.float32, device_map="cpu").eval()
nll = n = 0
with torch.no_grad():
    for i in range(0, len(w["held_out"]), 8):
        ids = torch.tensor(w["held_out"][i:i + 8])
        logits = q(input_ids=ids).logits[:, :-1]
        nll += float(torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]),
                                                       ids[:, 1:].reshape(-1), reduction="sum"))
        n += ids[:, 1:].numel()
import math
print(json.dumps({"quantize_seconds": seconds, "perplexity": math.exp(nll / n)}))
"""


def child(
    cmd: list[str], env: dict[str, str], cwd: Path
) -> tuple[subprocess.CompletedProcess, float, float, float]:
    """Run cmd in cwd under /usr/bin/time; (result, wall s, CPU s, peak RSS in MB) of that process."""
    with tempfile.NamedTemporaryFile("r", suffix=".time") as t:
        r = subprocess.run(["/usr/bin/time", "-f", "%e %U %S %M", "-o", t.name, *cmd],
                           capture_output=True, text=True, env=env, cwd=cwd)  # fmt: skip
        if r.returncode != 0:
            sys.exit(f"{cmd[:4]} failed:\n{r.stderr[-3000:]}")
        wall, user, system, rss_kb = t.read().split()[-4:]
    return r, float(wall), float(user) + float(system), float(rss_kb) / 1024


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bits", type=int, default=4)
    ap.add_argument("--group-size", type=int, default=64)
    ap.add_argument("--samples", type=int, default=32)
    ap.add_argument("--seq-len", type=int, default=256)
    ap.add_argument("--no-rtn", action="store_true", help="llmctl without its RTN baseline")
    args = ap.parse_args()
    sys.path.insert(0, str(REPO / "src"))
    sys.path.insert(0, str(REPO))
    from tests.fixtures import corpus
    from tests.fixtures.models import smollm2

    from llmctl import hf
    from llmctl.quantize import calibration
    from llmctl.quantize.config import CalibrationConfig

    model = smollm2()
    work = Path(tempfile.mkdtemp(prefix="quantize-bench-"))
    data = work / "calib.jsonl"
    data.write_text("".join(json.dumps({"text": t}) + "\n" for t in corpus.prose(400)))
    ccfg = CalibrationConfig(data=str(data), samples=args.samples, seq_len=args.seq_len, held_out_windows=16)
    cal = calibration.build(ccfg, hf.load_tokenizer(model, what="bench"), 8192)
    windows = work / "windows.json"
    windows.write_text(json.dumps({"samples": cal.samples, "held_out": cal.held_out}))
    env = {**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "2"), "LLMCTL_QUIET": "1",
           "PYTHONPATH": f"{REPO / 'src'}:{REPO}"}  # fmt: skip

    lib, lib_wall, lib_cpu, lib_rss = child(
        [
            sys.executable,
            "-c",
            LIBRARY,
            str(model),
            str(work / "lib"),
            str(args.bits),
            str(args.group_size),
            str(windows),
        ],
        env,
        work,
    )  # fmt: skip (gptqmodel writes ./logs: into the work dir
    lib_m = json.loads(lib.stdout.strip().splitlines()[-1])

    rtn = "false" if args.no_rtn else "true"
    sets = [
        f"calibration.samples={args.samples}",
        f"calibration.seq_len={args.seq_len}",
        "calibration.held_out_windows=16",
        "report.generate_tokens=0",
        "report.layer_errors=false",
        f"report.compare_rtn={rtn}",
        "desc_act=true",
        "damp=0.01",
        "batch_size=8",
    ]
    cmd = [sys.executable, "-m", "llmctl.cli", "quantize", str(model), "--calibration", str(data)]
    cmd += ["--out", str(work / "llmctl"), "--bits", str(args.bits), "--group-size", str(args.group_size)]
    for s in sets:
        cmd += ["--set", s]
    _, ll_wall, ll_cpu, ll_rss = child(cmd, env, REPO)
    m = json.loads((work / "llmctl" / "manifest.json").read_text())["metrics"]

    print(
        f"SmolLM2-135M-Instruct, {args.bits}-bit g{args.group_size}, {args.samples} x {args.seq_len} tokens"
    )
    print(f"{'':28}{'gptqmodel':>12}{'llmctl':>12}")
    print(f"{'quantize call (s)':28}{lib_m['quantize_seconds']:>12.1f}{m['quantize_seconds']:>12.1f}")
    print(f"{'whole process, wall (s)':28}{lib_wall:>12.1f}{ll_wall:>12.1f}")
    print(f"{'whole process, CPU (s)':28}{lib_cpu:>12.1f}{ll_cpu:>12.1f}")
    print(f"{'peak RSS (MB)':28}{lib_rss:>12.0f}{ll_rss:>12.0f}")
    print(f"{'held-out perplexity':28}{lib_m['perplexity']:>12.3f}{m['quantized_perplexity']:>12.3f}")
    print(
        f"fp perplexity {m['fp_perplexity']:.3f}"
        + (f", RTN {m['rtn_perplexity']:.3f}" if "rtn_perplexity" in m else "")
    )
    overhead = m["quantize_seconds"] / lib_m["quantize_seconds"] - 1
    print(f"quantize-call overhead: {overhead:+.1%} (goal <= 5%); work dir {work}")


if __name__ == "__main__":
    main()
