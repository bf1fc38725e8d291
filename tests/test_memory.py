"""Memory stays flat as data grows: training on 200,000 sentences (100x the 2,000 of the small run, and
larger than any other fixture) may take at most GROWTH_BOUND_MIB more peak RSS than the small run.

Before the Arrow pipeline every sentence, window and label was a Python object in every process: about
5.6 KB per CoNLL sentence (bench/RESULTS.md), so the 198,000 extra sentences here, of 2-14 words, would
have cost several hundred MiB. With the splits in Arrow what remains per sentence is its share of the
memory-mapped files the process touches and the sampler's per-epoch order (numpy int64: 8 bytes a
window, a few copies while it is built)."""

import os
import subprocess
import sys

import pytest

from conftest import write_conll
from helpers import ENTRY, ROOT

GROWTH_BOUND_MIB = 120

MEASURE = """
import resource, runpy, sys
sys.argv = sys.argv[1:]
try:
    runpy.run_path(sys.argv[0], run_name="__main__")
finally:
    print("PEAK_RSS_KIB", resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, flush=True)
"""


def peak_rss_mib(train_file, tiny_model, out, cache) -> float:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT),
           "HF_DATASETS_CACHE": str(cache)}
    args = ["--model_name_or_path", str(tiny_model), "--train_file", str(train_file), "--output_dir", str(out),
            "--max_train_steps", "3", "--per_device_train_batch_size", "32", "--max_length", "64"]
    proc = subprocess.run([sys.executable, "-c", MEASURE, ENTRY, *args], env=env, cwd=ROOT, text=True,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:]
    line = [x for x in proc.stdout.splitlines() if x.startswith("PEAK_RSS_KIB")][-1]
    return int(line.split()[1]) / 1024


@pytest.mark.slow
def test_peak_rss_grows_less_than_the_bound_from_2k_to_200k_sentences(tiny_model, tmp_path):
    small, large = tmp_path / "small.conll", tmp_path / "large.conll"
    write_conll(small, 2_000, seed=11)
    write_conll(large, 200_000, seed=12)
    base = peak_rss_mib(small, tiny_model, tmp_path / "out-small", tmp_path / "cache")
    grown = peak_rss_mib(large, tiny_model, tmp_path / "out-large", tmp_path / "cache")
    print(f"peak RSS: 2,000 sentences {base:.0f} MiB, 200,000 sentences {grown:.0f} MiB")
    assert grown - base < GROWTH_BOUND_MIB, (base, grown)
