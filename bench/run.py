"""The doo-webhooks benchmark: every scenario, and a naive baseline in the same run.

    python bench/run.py [--quick] [--only SCENARIO ...] [--json bench/results/latest.json]

It starts what it needs: a fresh PostgreSQL database per scenario on the local server (dropped at
the end), the project's real ``worker`` and ``scheduler`` processes on its own Redis database,
and bench/receiver.py (a raw-asyncio HTTP receiver in a process of its own). Every figure that
is a rate is also given as a ratio to the naive baseline measured in the same run: compare the
ratios between machines and runs, not the absolute numbers. See docs/benchmarks.md.
"""

import argparse
import datetime
import json
import os
import platform
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import traceback

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import harness  # noqa: E402
import redis_claims  # noqa: E402
import receivers  # noqa: E402
import scenarios  # noqa: E402


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="small sizes: a smoke run of a minute or two")
    parser.add_argument("--only", nargs="+", choices=list(scenarios.SCENARIOS), metavar="SCENARIO",
                        help=f"run only these ({', '.join(scenarios.SCENARIOS)}); the baseline always runs")
    parser.add_argument("--json", default=os.path.join(harness.ROOT, "bench", "results", "latest.json"),
                        help="where to write the results (default bench/results/latest.json)")
    parser.add_argument("--postgres", default="postgresql://postgres@127.0.0.1:5432/test",
                        help="a database on the server where the bench creates (and drops) its own")
    parser.add_argument("--broker", default="auto", help="Redis database for the broker, flushed by the bench "
                        "and claimed as test runs claim theirs; default auto: a free one")
    parser.add_argument("--redis", default=None, help="DOO_WEBHOOKS_REDIS_URL (default: the broker's; claimed too)")
    parser.add_argument("--workers", type=int, default=1, help="worker processes (default 1: one worker host)")
    parser.add_argument("--concurrency", type=int, default=None,
                        help="worker --concurrency (default: the worker's own default)")
    parser.add_argument("--timeout", type=float, default=None, help="seconds per scenario before it is "
                        "reported unfinished (default 300, --quick 90)")
    parser.add_argument("--show", metavar="JSON", help="print the table of an earlier run's JSON, and stop")
    parser.add_argument("--project", default=None, help="measure the code of another checkout (e.g. "
                        "`git archive COMMIT | tar -x -C DIR`) with this bench; default this checkout")
    parser.add_argument("--project-commit", default=None, help="the commit --project holds, for the JSON")
    parser.add_argument("--receiver", choices=["auto", "nginx", "python"], default="auto",
                        help="who answers 200 at once: nginx when installed (auto), or bench/receiver.py")
    parser.add_argument("--nginx", default="nginx", help="the nginx binary (default: nginx on PATH)")
    parser.add_argument("--set", action="append", default=[], metavar="NAME=VALUE",
                        help="a DOO_WEBHOOKS_ setting for every process, e.g. --set ORDERING_DELAY=0.2")
    args = parser.parse_args(argv)
    for item in args.set:
        if "=" not in item:
            parser.error(f"--set {item!r}: expected NAME=VALUE (without the DOO_WEBHOOKS_ prefix)")
    return args


def machine():
    def first(cmd, prefix):
        try:
            out = subprocess.run(cmd, capture_output=True, text=True).stdout
        except OSError:
            return None
        return next((line.split(":", 1)[1].strip() for line in out.splitlines() if line.startswith(prefix)), None)
    with open("/proc/meminfo") as f:
        mem_kb = int(f.readline().split()[1])
    return {"cores": os.cpu_count(), "cpu": first(["lscpu"], "Model name"), "memory_gb": round(mem_kb / 2**20, 1),
            "python": platform.python_version(), "kernel": platform.release()}


def commit(args):
    def git(*a):
        return subprocess.run(["git", *a], cwd=harness.ROOT, capture_output=True, text=True).stdout.strip()
    found = {"commit": git("rev-parse", "HEAD"), "dirty": bool(git("status", "--porcelain", "--untracked-files=no"))}
    if args.project:
        found = {"project": harness.PROJECT, "bench_commit": found["commit"],
                 "commit": args.project_commit or "unknown (pass --project-commit)"}
    return found


# --- the table -------------------------------------------------------------------------------------

def rows(results):
    base = results["baseline"].get("deliveries_per_s")

    def ratio(value):
        return f"{value / base:.2f}x" if base and value is not None else ""

    def rss(r):
        peaks = r.get("peak_rss_mb") or {}
        return " / ".join(f"{max(p['process'], p['largest_child']):.0f}" for p in peaks.values())

    def cpu(r):
        v = r.get("cpu_ms_per_delivery")
        return f"{v:.2f}" if v is not None else ""

    b = results["baseline"]
    yield ("baseline", "deliveries/s", f"{b['deliveries_per_s']}", "1.00x", cpu(b), "")
    for name, r in results["scenarios"].items():
        if "error" in r:
            yield (name, "error", r["error"].splitlines()[-1][:60], "", "", "")
            continue
        if name in ("throughput", "fanout"):
            yield (name, "deliveries/s", r["deliveries_per_s"], ratio(r["deliveries_per_s"]), cpu(r), rss(r))
            yield (name, "PostgreSQL CPU ms/delivery", r.get("postgres_cpu_ms_per_delivery", ""), "", "", "")
        elif name == "latency":
            yield (name, f"p50 / p99 / max ms at {r['target_rate']}/s",
                   f"{r['p50_ms']} / {r['p99_ms']} / {r['max_ms']}", "", cpu(r), rss(r))
            yield (name, "deliveries/s", r["deliveries_per_s"], ratio(r["deliveries_per_s"]), "", "")
        elif name == "slow":
            yield (name, f"deliveries/s ({r['endpoints']} receivers, {r['answer_after_s']} s)",
                   r["deliveries_per_s"], ratio(r["deliveries_per_s"]), cpu(r), rss(r))
            yield (name, "healthy receiver: delivered/s of emitted/s",
                   f"{r['healthy_delivered_per_s']} of {r['healthy_emit_rate']}", "", "", "")
            yield (name, "healthy receiver: p50 / p99 ms", f"{r['healthy_p50_ms']} / {r['healthy_p99_ms']}",
                   "", "", "")
        elif name == "retry_storm":
            yield (name, f"drain after recovery, s ({r['failing_for_s']} s of 500s)", r["drain_after_recovery_s"],
                   "", cpu(r), rss(r))
            yield (name, "attempts answered 500 / 200",
                   f"{r['attempts_answered_500']} / {r['attempts_answered_200']}", "", "", "")
            yield (name, "healthy receiver: p50 / p99 ms", f"{r['healthy_p50_ms']} / {r['healthy_p99_ms']}",
                   "", "", "")
        elif name == "producer":
            yield (name, "emit() triggers/s", r["emit_per_s"], "", "", "")
            if "emit_many_per_s" in r:
                yield (name, "emit_many() triggers/s", r["emit_many_per_s"], "", "", "")
        if r.get("note"):
            yield (name, "note", r["note"], "", "", "")
    peak = results.get("peak_rss_mb")
    if peak:
        yield ("peak RSS", "worker / scheduler MB", f"{peak['worker']} / {peak['scheduler']}", "", "", "")


def table(results):
    header = ("scenario", "metric", "value", "x baseline", "CPU ms/deliv", "peak RSS MB w/s")
    body = [tuple(str(c) for c in row) for row in rows(results)]
    widths = [max(len(r[i]) for r in [header, *body]) for i in range(len(header))]
    line = "  ".join("{:<%d}" % w for w in widths)
    out = [line.format(*header), line.format(*("-" * w for w in widths))]
    out += [line.format(*r) for r in body]
    return "\n".join(out)


def peak_rss(results):
    """The largest VmHWM seen per kind of process over all scenarios."""
    peak = {"worker": 0.0, "scheduler": 0.0}
    for r in results["scenarios"].values():
        for name, p in (r.get("peak_rss_mb") or {}).items():
            kind = "scheduler" if name.endswith("scheduler") else "worker"
            peak[kind] = max(peak[kind], p["process"], p["largest_child"])
    return peak if any(peak.values()) else None


# --- main --------------------------------------------------------------------------------------------

def _interrupted(signum, frame):
    # one is enough: a second signal must not cut the cleanup short
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    raise KeyboardInterrupt(f"signal {signum}")


def main(argv=None):
    args = parse_args(argv)
    if args.show:
        with open(args.show) as f:
            print(table(json.load(f)))
        return 0
    # SIGTERM, and SIGINT even where a shell started us with it ignored (a background job), go
    # through the finally blocks: processes stopped, databases dropped, Redis claim released.
    signal.signal(signal.SIGTERM, _interrupted)
    signal.signal(signal.SIGINT, _interrupted)
    if args.project:
        harness.use_project(args.project)
    sizes = dict(scenarios.QUICK if args.quick else scenarios.FULL)
    if args.timeout:
        sizes["timeout"] = args.timeout
    chosen = args.only or list(scenarios.SCENARIOS)
    log_dir = tempfile.mkdtemp(prefix="doo-webhooks-bench-")
    claims = [redis_claims.RedisClaim(args.broker)]
    args.broker = claims[0].url
    if args.redis and args.redis != args.broker:
        claims.append(redis_claims.RedisClaim(args.redis))
    args.redis = claims[-1].url
    from cryptography.fernet import Fernet
    behaviours = {"ok": "ok", "timed": "ok", "healthy": "ok", "fail": "ok",
                  **{f"slow{i}": f"delay:{sizes['slow_delay']}" for i in range(sizes["slow_endpoints"])}}
    results = {"date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
               "quick": args.quick, **commit(args), "machine": machine(), "sizes": sizes,
               "workers": args.workers, "concurrency": args.concurrency or "worker default",
               "scenarios": {}}
    print(f"logs in {log_dir}; broker {args.broker}", flush=True)
    nginx = shutil.which(args.nginx) if args.receiver != "python" else None
    if args.receiver == "nginx" and not nginx:
        raise SystemExit(f"--receiver nginx: no nginx at {args.nginx!r} (--nginx PATH)")
    receiver = receivers.Receivers(behaviours, log_dir, nginx)
    results["receiver"] = receiver.kind
    run = scenarios.Run(args, sizes, receiver, log_dir, Fernet.generate_key().decode())
    try:
        print("baseline ...", flush=True)
        results["baseline"] = scenarios.baseline(run)
        print(f"  {results['baseline']['deliveries_per_s']} deliveries/s", flush=True)
        for name in chosen:
            print(f"{name} ...", flush=True)
            started = time.monotonic()
            try:
                results["scenarios"][name] = scenarios.SCENARIOS[name](run)
            except Exception:
                results["scenarios"][name] = {"error": traceback.format_exc()}
                print(traceback.format_exc(), file=sys.stderr, flush=True)
            print(f"  done in {time.monotonic() - started:.0f} s", flush=True)
    finally:
        receiver.close()
        for claim in claims:
            claim.release()
    results["peak_rss_mb"] = peak_rss(results)
    results["settings_not_in_this_code"] = sorted(run.dropped)
    results["settings"] = {k: v for k, v in run.base.items() if k != "SECRET_KEYS"}
    os.makedirs(os.path.dirname(os.path.abspath(args.json)), exist_ok=True)
    with open(args.json, "w") as f:
        json.dump(results, f, indent=2, default=str)
    print()
    print(table(results))
    print(f"\nJSON: {args.json}; process logs: {log_dir}")
    if run.dropped:
        print(f"settings this code does not read (not passed): {', '.join(sorted(run.dropped))}")
    print("retry storm runs with " + ", ".join(f"DOO_WEBHOOKS_{k}={v}" for k, v in scenarios.STORM_SETTINGS.items())
          + ": it measures the system, not the retry schedule.")
    return 1 if any("error" in r for r in results["scenarios"].values()) else 0


if __name__ == "__main__":
    sys.exit(main())
