#!/usr/bin/env python3
"""Growth: replay throughput and peak RSS as the distinct keys grow and as the attack share grows.

    bench/growth.py PORTALWATCHD [--runs R] [--key-runs R] [--events N] [--share-events N]
                                 [--keys K,K,...] [--shares F,F,...] [--share-keys K] [--cpu C]
                                 [--summary FILE]

Traffic: `portalwatchd simulate --seed 1 --flat --rate 5000` (the default 54,000-employee portal
with its scheduled attacks, 5,000 events/s of event time) plus a credential-stuffing flood
(`--flood-share`) cycling through K/2 source addresses and K/2 combo-list account names. At that
rate the whole stream spans under an hour of event time, so every key the flood brings is still
inside the detectors' windows at the end: nothing ages out, the tables fill to their caps and
evict (the worst case for memory and for the hash tables).

keys: K = 10^3 ... 10^7 flood keys at a 50% flood share, N events each (default 10,000,000: at
least K/2 flood events, so every flood key appears). share: 0%, 10%, 25%, 50% flood at K = 10^6,
--share-events each. Each configuration's events are written to a file once, then replayed R
times (--key-runs for the keys, default R) on one core (taskset -c C, default 0) with the default
configuration; the medians are printed: events/s by the wall clock and events per second of the
replay process's own CPU time (user + system), which a machine shared with other jobs still
measures fairly. The 10^7-versus-10^3 ratio is judged on the latter.

Bytes per tracked key: the growth of peak RSS over the smallest level's, divided by the growth of
the keys held in all detector tables at the end (`state.keys` of replay's JSON summary).
"""
import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys

BENCH_DIR = "build/bench"


def powers(n):
    """10^7 for 10000000; other numbers with thousands separators."""
    e = len(str(n)) - 1
    return f"10^{e}" if n == 10 ** e else f"{n:,}"


def flood_args(keys):
    half = max(1, keys // 2)
    return ["--flood-sources", str(half), "--flood-accounts", str(half)]


def generate(binary, path, events, share, keys):
    cmd = [binary, "simulate", "-n", str(events), "--seed", "1", "--flat", "--rate", "5000", "-o", path]
    if share > 0:
        cmd += ["--flood-share", str(share)] + flood_args(keys)
    subprocess.run(cmd, check=True)


def cpu_seconds():
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def replay(binary, path, cpu):
    """replay's JSON summary, plus cpu_eps: events per second of the process's own CPU time."""
    pin = ["taskset", "-c", str(cpu)] if shutil.which("taskset") else []
    before = cpu_seconds()
    done = subprocess.run(pin + [binary, "replay", "--no-progress", "--summary", "json", path],
                          stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, check=True)
    summary = json.loads(done.stderr.strip().splitlines()[-1])
    summary["cpu_eps"] = summary["events_read"] / (cpu_seconds() - before)
    return summary


def measure(binary, label, events, share, keys, runs, cpu):
    """Median events/s (wall and CPU), peak RSS (MiB) and keys held of `runs` replays of one
    configuration."""
    path = f"{BENCH_DIR}/growth-{label}.jsonl"
    generate(binary, path, events, share, keys)
    try:
        results = [replay(binary, path, cpu) for _ in range(runs)]
    finally:
        os.remove(path)  # up to 7 GB each
    return {
        "eps": statistics.median(r["events_per_second"] for r in results),
        "cpu_eps": statistics.median(r["cpu_eps"] for r in results),
        "rss": statistics.median(r["peak_rss_mib"] for r in results),
        "keys": results[-1]["state"]["keys"],  # the last run's (they differ by a few % between runs)
        "evictions": results[-1]["state"]["evictions"],
        "capacity": results[-1]["state"]["capacity"],
    }


def summary_row(path, benchmark, figure, target, met):
    """One row of `bench/run all`'s table; met None: no target."""
    if path:
        verdict = "-" if met is None else "met" if met else "MISSED"
        with open(path, "a") as out:
            out.write(f"{benchmark}\t{figure}\t{target}\t{verdict}\n")


def main():
    ap = argparse.ArgumentParser(description="growth benchmark (see bench/README.md)")
    ap.add_argument("portalwatchd")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--key-runs", type=int, help="runs of each keys level (default: --runs)")
    ap.add_argument("--events", type=int, default=10_000_000)
    ap.add_argument("--share-events", type=int, default=2_000_000)
    ap.add_argument("--keys", default="1000,10000,100000,1000000,10000000")
    ap.add_argument("--shares", default="0,0.1,0.25,0.5")
    ap.add_argument("--share-keys", type=int, default=1_000_000)
    ap.add_argument("--summary", help="append the summary rows (TSV) here")
    ap.add_argument("--cpu", type=int, default=0, help="the core replay is pinned to (default 0)")
    a = ap.parse_args()
    os.makedirs(BENCH_DIR, exist_ok=True)
    keys_levels = [int(k) for k in a.keys.split(",") if k]
    shares = [float(s) for s in a.shares.split(",") if s]
    key_runs = a.key_runs or a.runs

    rows = []
    if keys_levels:
        print(f"growth by keys: {a.events:,} events each, 50% of them a credential-stuffing flood over K/2 sources "
              f"and K/2 accounts, default configuration, core {a.cpu}, median of {key_runs} "
              f"run{'s' if key_runs > 1 else ''}")
        print(f"{'flood keys':>12} {'events/s':>10} {'ev/CPU-s':>10} {'vs first':>9} {'peak RSS MiB':>13} "
              f"{'keys held':>11} {'evicted':>11} {'B/key held':>11}")
    for k in keys_levels:
        m = measure(a.portalwatchd, f"keys-{k}", a.events, 0.5, k, key_runs, a.cpu)
        base = rows[0] if rows else m
        per_key = ((m["rss"] - base["rss"]) * 1024 * 1024 / (m["keys"] - base["keys"])
                   if m["keys"] > base["keys"] else float("nan"))
        print(f"{powers(k):>12} {m['eps']:>10,.0f} {m['cpu_eps']:>10,.0f} {m['cpu_eps'] / base['cpu_eps']:>8.0%} "
              f"{m['rss']:>13.1f} {m['keys']:>11,} {m['evictions']:>11,} {per_key:>11.0f}", flush=True)
        rows.append(m)
    if rows:
        print(f"(events/s: wall clock; ev/CPU-s: per second of replay's own CPU time, what a machine shared "
              f"with other jobs still measures; vs first: of ev/CPU-s. The tables' caps add up to "
              f"{rows[-1]['capacity']:,} keys; B/key held: the peak RSS grown over the first row's, per key "
              f"held beyond it)")

    shares_rows = []
    if shares:
        print(f"\ngrowth by attack share: {a.share_events:,} events each, the flood over {a.share_keys:,} keys, "
              f"core {a.cpu}, median of {a.runs} runs")
        print(f"{'flood share':>12} {'events/s':>10} {'ev/CPU-s':>10} {'vs 0%':>9} {'peak RSS MiB':>13} "
              f"{'keys held':>11} {'evicted':>11}")
    for share in shares:
        m = measure(a.portalwatchd, f"share-{share}", a.share_events, share, a.share_keys, a.runs, a.cpu)
        base = shares_rows[0] if shares_rows else m
        print(f"{share:>12.0%} {m['eps']:>10,.0f} {m['cpu_eps']:>10,.0f} {m['cpu_eps'] / base['cpu_eps']:>8.0%} "
              f"{m['rss']:>13.1f} {m['keys']:>11,} {m['evictions']:>11,}", flush=True)
        shares_rows.append(m)

    if len(rows) >= 2:
        first, last = rows[0], rows[-1]
        ratio, wall_ratio = last["cpu_eps"] / first["cpu_eps"], last["eps"] / first["eps"]
        print(f"\nthroughput at {powers(keys_levels[-1])} keys: {last['cpu_eps']:,.0f} events per CPU second, "
              f"{ratio:.0%} of {first['cpu_eps']:,.0f} at {powers(keys_levels[0])} (wall clock: {wall_ratio:.0%}) "
              f"(target >= 50%)")
        per_key = (last["rss"] - first["rss"]) * 1024 * 1024 / max(1, last["keys"] - first["keys"])
        print(f"memory: {per_key:.0f} bytes per tracked key from {powers(keys_levels[0])} to "
              f"{powers(keys_levels[-1])} keys ({last['keys'] - first['keys']:,} more keys held, peak RSS "
              f"+{last['rss'] - first['rss']:.0f} MiB) (target <= 300)")
        summary_row(a.summary, f"growth: throughput at {powers(keys_levels[-1])} vs {powers(keys_levels[0])} keys",
                    f"{ratio:.0%} ({last['cpu_eps']:,.0f} vs {first['cpu_eps']:,.0f} ev/CPU-s; wall {wall_ratio:.0%})",
                    ">= 50%", ratio >= 0.5)
        summary_row(a.summary, "growth: bytes per tracked key", f"{per_key:.0f} B (peak RSS {last['rss']:.0f} MiB)",
                    "<= 300 B", per_key <= 300)
    if len(shares_rows) >= 2:
        last = shares_rows[-1]
        summary_row(a.summary, f"growth: throughput at {shares[-1]:.0%} flood",
                    f"{last['cpu_eps']:,.0f} ev/CPU-s ({last['cpu_eps'] / shares_rows[0]['cpu_eps']:.0%} of 0%)",
                    "-", None)
    return 0


if __name__ == "__main__":
    sys.exit(main())
