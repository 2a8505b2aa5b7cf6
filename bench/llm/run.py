"""LLM benchmark (real weights through llama-cpp-python): prompt and generation speed, side by
side for every catalogued GGUF model present in the models directory.

Per model, after one warm-up: prompt processing tokens/s (a ~400-token prompt) and
generation tokens/s (128 tokens, end-of-text banned so every run generates the same count),
p50 over ``--runs``; the load time and the process's RSS after loading; and the ratio of the
models' generation speeds.

    python bench/llm/run.py [--runs 3] [--models-dir DIR] [--threads 0] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from pathlib import Path

from mediafleet.common.catalogue import catalogue, missing_files
from mediafleet.common.provision import default_cache_dir

PROMPT = " ".join(
    "The fleet reads text in images, finds people and faces, transcribes speech and summarises what it found."
    for _ in range(24)
)


def rss_mib() -> float:
    return int(open("/proc/self/status").read().split("VmRSS:")[1].split()[0]) / 1024


def bench(path: Path, runs: int, threads: int) -> dict:
    from llama_cpp import Llama

    start = time.perf_counter()
    llm = Llama(
        model_path=str(path), n_ctx=2048, n_threads=threads or min(os.cpu_count() or 1, 4), verbose=False
    )
    load_s = time.perf_counter() - start
    rss = rss_mib()
    n_prompt = len(llm.tokenize(PROMPT.encode()))
    ban = {llm.token_eos(): -100.0}
    prompt_tps, gen_tps = [], []
    for i in range(runs + 1):
        llm.reset()
        t0 = time.perf_counter()
        llm.create_completion(PROMPT, max_tokens=1, temperature=0)  # prompt processing (+1 token)
        t1 = time.perf_counter()
        llm.reset()
        out = llm.create_completion("Once upon a time", max_tokens=128, temperature=0, logit_bias=ban)
        t2 = time.perf_counter()
        if i == 0:
            continue  # warm-up
        prompt_tps.append(n_prompt / (t1 - t0))
        gen_tps.append(out["usage"]["completion_tokens"] / (t2 - t1))
    return {
        "load_s": load_s,
        "rss_mib": rss,
        "prompt_tokens": n_prompt,
        "prompt_tps": statistics.median(prompt_tps),
        "gen_tps": statistics.median(gen_tps),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--threads", type=int, default=0)
    parser.add_argument(
        "--models-dir",
        type=Path,
        default=Path(os.environ.get("MEDIAFLEET_TEST_MODELS_DIR") or default_cache_dir() / "test-models"),
    )
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    entries = [m for m in catalogue().values() if m.engine == "llama-cpp"]
    rows = {}
    for entry in entries:
        if missing_files(entry, args.models_dir):
            print(
                f"  {entry.name}: not provisioned in {args.models_dir} (mediafleet models pull {entry.name})"
            )
            continue
        rows[entry.name] = bench(args.models_dir / entry.files[0].path, args.runs, args.threads)
    print(
        f"\nllama.cpp on the CPU ({args.threads or min(os.cpu_count() or 1, 4)} threads), p50 of {args.runs} runs"
    )
    print(f"{'model':24s} {'load s':>7s} {'RSS MiB':>8s} {'prompt tok/s':>13s} {'generate tok/s':>15s}")
    for name, r in rows.items():
        print(
            f"{name:24s} {r['load_s']:7.2f} {r['rss_mib']:8.0f} {r['prompt_tps']:13.1f} {r['gen_tps']:15.1f}"
        )
    if len(rows) >= 2:
        (a, ra), (b, rb) = list(rows.items())[:2]
        print(f"generation {a} / {b}: {ra['gen_tps'] / rb['gen_tps']:.2f}x")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
