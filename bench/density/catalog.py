#!/usr/bin/env python3
"""berthd's idle footprint and `GET /v1/domains` on a large catalog, builds side by side.

  bench/density/catalog.py --bins /tmp/base,.build/debug [--count 10000] [--rounds 3]

1. Idle berthd per build (fresh state directory, 3 s after its first answer, interleaved,
   median of --rounds): Rss, Pss, and Rss split into file-backed and anonymous pages.
2. One catalog of --count domains (defined through the API by the first build), then each
   build in turn on that same state directory, interleaved --rounds times: GET /v1/domains
   wall time (median of 20) and berthd's CPU time per request (utime+stime from
   /proc/PID/stat over those 20), and whether the bodies are byte-identical across builds.
Each --bins directory holds a `berthd` and a `berth`.
"""
import argparse, os, statistics, sys, threading, time
from concurrent.futures import ThreadPoolExecutor

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))
import foundation  # noqa: E402
from run import spec  # noqa: E402

TICK = os.sysconf("SC_CLK_TCK")


def rollup(pid):
    values = {}
    with open(f"/proc/{pid}/smaps_rollup") as f:
        for line in f:
            parts = line.split()
            if len(parts) >= 2 and parts[0].endswith(":") and parts[1].isdigit():
                values[parts[0][:-1]] = int(parts[1]) / 1024
    return values


def cpu_seconds(pid):
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def idle(bins, rounds):
    print(f"== idle berthd, 3 s after its first answer, median of {rounds} (interleaved)")
    rows = {b: [] for b in bins}
    for _ in range(rounds):
        for b in bins:
            daemon = foundation.Daemon(b)
            try:
                time.sleep(3)
                r = rollup(daemon.proc.pid)
                rows[b].append((r["Rss"], r["Pss"], r["Rss"] - r["Anonymous"], r["Anonymous"]))
            finally:
                daemon.stop()
    for b in bins:
        m = [statistics.median(x[i] for x in rows[b]) for i in range(4)]
        print(f"  {b:28s} Rss {m[0]:6.1f} MiB  Pss {m[1]:6.1f} MiB  file-backed {m[2]:6.1f} MiB  anonymous {m[3]:6.1f} MiB")


def switch(daemon, bin_dir):
    """The same state directory under another build's berthd."""
    daemon.proc.terminate()
    daemon.proc.wait()
    daemon.bin = bin_dir
    return daemon.launch()


def raw_get(daemon):
    conn = foundation.UnixHTTPConnection(daemon.socket)
    conn.request("GET", "/v1/domains")
    body = conn.getresponse().read()
    conn.close()
    return body


def catalog(bins, count, rounds):
    print(f"== GET /v1/domains with {count} domains, median of 20 per round, {rounds} rounds interleaved")
    daemon = foundation.Daemon(bins[0])
    try:
        began = time.monotonic()
        with ThreadPoolExecutor(4) as pool:
            list(pool.map(lambda i: daemon.request("POST", "/v1/domains", spec(f"c{i:05d}")), range(count)))
        print(f"  defined {count} domains through the API in {time.monotonic() - began:.1f} s (4 clients)")
        bodies, walls, cpus = {}, {b: [] for b in bins}, {b: [] for b in bins}
        for _ in range(rounds):
            for b in bins:
                switch(daemon, b)
                for _ in range(3):
                    bodies[b] = raw_get(daemon)
                pid, samples = daemon.proc.pid, []
                cpu = cpu_seconds(pid)
                for _ in range(20):
                    t = time.perf_counter()
                    raw_get(daemon)
                    samples.append(time.perf_counter() - t)
                cpus[b].append((cpu_seconds(pid) - cpu) / 20)
                walls[b].append(statistics.median(samples))
        for b in bins:
            print(f"  {b:28s} wall median {statistics.median(walls[b]) * 1000:7.1f} ms   berthd CPU per request "
                  f"{statistics.median(cpus[b]) * 1000:6.1f} ms   ({len(bodies[b])} bytes)")
        same = len({bodies[b] for b in bins}) == 1
        print(f"  bodies byte-identical across builds: {'yes' if same else 'NO'}")
    finally:
        daemon.stop()


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--bins", required=True, help="comma-separated build directories")
    parser.add_argument("--count", type=int, default=10000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--skip-idle", action="store_true")
    args = parser.parse_args()
    bins = args.bins.split(",")
    print(f"host: {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f}")
    if not args.skip_idle:
        idle(bins, args.rounds)
    catalog(bins, args.count, args.rounds)


if __name__ == "__main__":
    main()
