#!/usr/bin/env python3
"""Turns bench/run.sh's results (one loadgen JSON line per run) into the
markdown tables of BENCHMARKS.md.

    tables.py MACHINE.json RESULTS.jsonl... [--write BENCHMARKS.md]

Without --write it prints the tables; with it, it replaces what lies between
the `<!-- bench:generated:start -->` and `<!-- bench:generated:end -->`
markers of that file. Every figure is the median of the runs of one scenario
on one server; where there was more than one run, the key figure also shows
the range (min-max).
"""

import json
import re
import shlex
import statistics
import sys

SERVERS = ["sse-hub", "node", "nchan"]
START = "<!-- bench:generated:start -->"
END = "<!-- bench:generated:end -->"


def load(paths):
    runs = []
    for path in paths:
        with open(path) as f:
            for line in f:
                line = line.strip()
                if line.startswith("{"):
                    runs.append(json.loads(line))
    return runs


def get(run, path):
    value = run
    for key in path.split("."):
        if not isinstance(value, dict) or key not in value:
            return None
        value = value[key]
    return value


class Table:
    def __init__(self, runs):
        self.runs = runs

    def of(self, scenario, server):
        return [r for r in self.runs if r["tags"].get("scenario") == scenario and r["label"] == server]

    def values(self, scenario, server, path):
        return [v for v in (get(r, path) for r in self.of(scenario, server)) if isinstance(v, (int, float))]

    def median(self, scenario, server, path):
        values = self.values(scenario, server, path)
        return statistics.median(values) if values else None


def fmt(value, digits=2):
    if value is None:
        return "-"
    if isinstance(value, float) and abs(value) >= 1000:
        return f"{value:,.0f}"
    if isinstance(value, int) or float(value).is_integer() and abs(value) >= 100:
        return f"{int(value):,}"
    return f"{value:.{digits}f}"


def with_range(table, scenario, server, path, digits=2):
    values = table.values(scenario, server, path)
    if not values:
        return "-"
    median = fmt(statistics.median(values), digits)
    if len(values) < 2:
        return median
    return f"{median} ({fmt(min(values), digits)}-{fmt(max(values), digits)})"


def ratio(a, b):
    if a is None or b is None or b == 0:
        return "-"
    return f"{a / b:.2f}x"


def row(cells):
    return "| " + " | ".join(str(c) for c in cells) + " |"


def header(cells):
    return [row(cells), row(["---"] * len(cells))]


def command_of(run):
    words = list(run.get("argv", []))
    if not words:
        return "-"
    words[0] = "target/release/loadgen"
    out = []
    skip = False
    for i, w in enumerate(words):
        if skip:
            skip = False
            continue
        if w == "--pid":
            out.append("--pid PID")
            skip = True
        elif w == "--addr":
            out.append("--addr 127.0.0.1:PORT")
            skip = True
        elif w == "--tag":
            skip = True
        else:
            out.append(shlex.quote(w))
    return " ".join(out)


def servers_in(runs):
    present = {r["label"] for r in runs}
    return [s for s in SERVERS if s in present] + sorted(present - set(SERVERS))


def generate(runs, machine):
    t = Table(runs)
    servers = servers_in(runs)
    scenarios = sorted({r["tags"].get("scenario", "") for r in runs})
    idle = sorted((s for s in scenarios if s.startswith("idle-")), key=lambda s: int(s.split("-")[1]))
    out = []

    busy = [int(r["tags"]["busy_before_pct"]) for r in runs if r["tags"].get("busy_before_pct", "").isdigit()]
    load = [r.get("load1_start") for r in runs if isinstance(r.get("load1_start"), (int, float))]
    out.append("### Machine and run")
    out.append("")
    out += header(["", ""])
    out.append(row(["date", machine.get("date", "?")]))
    out.append(row(["CPU", f"{machine.get('cpu', '?')}, {machine.get('cores', '?')} cores"]))
    out.append(row(["memory", f"{machine.get('memory_gib', '?')} GiB"]))
    out.append(row(["kernel", f"Linux {machine.get('kernel', '?')}, vm.max_map_count {machine.get('max_map_count', '?')}"]))
    builds = sorted({r["tags"].get("version", "?").replace("sse-hub ", "") for r in runs if r["label"] == "sse-hub"})
    out.append(row(["sse-hub", f"{', '.join(builds) or '?'} (git describe; {machine.get('rustc', '?')}, release profile)"]))
    out.append(row(["Node.js peer", f"node {machine.get('node', '?')}"]))
    out.append(row(["nchan peer", f"nginx {machine.get('nginx', '?')}, libnginx-mod-nchan {machine.get('nchan', '?')}, 2 workers"]))
    out.append(row(["runs", f"{len(runs)} runs; the last invocation ran {machine.get('scenarios', '?')} in {machine.get('seconds', '?')} s"]))
    if busy:
        out.append(row(["other processes' CPU use before each run", f"median {statistics.median(busy):.0f}%, max {max(busy)}% (1 s sample, both cores)"]))
    if load:
        out.append(row(["1-minute load average at run starts", f"median {statistics.median(load):.2f}, min {min(load):.2f}, max {max(load):.2f}"]))
    out.append("")

    # Idle.
    if idle:
        out.append("### Idle subscribers: memory, threads, time to connect")
        out.append("")
        out += header(["subscribers", "server", "open", "time to connect all (s)", "RSS per subscriber (KiB)",
                       "PSS per subscriber (KiB)", "threads per subscriber", "kernel stacks per subscriber (KiB)",
                       "handshakes retried"])
        for scenario in idle:
            n = scenario.split("-")[1]
            for s in servers:
                if not t.of(scenario, s):
                    continue
                out.append(row([
                    f"{int(n):,}", s,
                    fmt(t.median(scenario, s, "open")),
                    with_range(t, scenario, s, "connect_s", 3),
                    with_range(t, scenario, s, "rss_kib_per_client", 1),
                    fmt(t.median(scenario, s, "pss_kib_per_client"), 1),
                    fmt(t.median(scenario, s, "threads_per_client"), 2),
                    fmt(t.median(scenario, s, "kernel_stack_kib_per_client"), 1),
                    fmt(t.median(scenario, s, "retried")),
                ]))
        out.append("")

    def fanout_table(scenario, title, key_first):
        if not any(t.of(scenario, s) for s in servers):
            return
        out.append(title)
        out.append("")
        cols = ["server", "deliveries/s", "publish rate (msg/s)", "latency p50 (ms)", "p99 (ms)", "max (ms)",
                "fan-out done p50 (ms)", "fan-out done p99 (ms)", "lost", "dup / out of order",
                "streams closed", "server CPU s per 1M deliveries", "handshakes retried"]
        out.extend(header(cols))
        for s in servers:
            if not t.of(scenario, s):
                continue
            # Runs too large for the duplicate bitmap count no duplicates.
            unchecked = False in t.values(scenario, s, "dup_check")
            dup = "unchecked" if unchecked else fmt(t.median(scenario, s, "duplicated"))
            ooo = t.median(scenario, s, "out_of_order")
            out.append(row([
                s,
                with_range(t, scenario, s, "deliveries_per_s", 0) if key_first == "rate" else fmt(t.median(scenario, s, "deliveries_per_s"), 0),
                fmt(t.median(scenario, s, "publish_rate"), 0),
                fmt(t.median(scenario, s, "latency_ms.p50")),
                with_range(t, scenario, s, "latency_ms.p99") if key_first == "latency" else fmt(t.median(scenario, s, "latency_ms.p99")),
                fmt(t.median(scenario, s, "latency_ms.max")),
                fmt(t.median(scenario, s, "fanout_ms.p50")),
                fmt(t.median(scenario, s, "fanout_ms.p99")),
                fmt(t.median(scenario, s, "lost")),
                f"{dup} / {fmt(ooo)}",
                fmt(t.median(scenario, s, "closed_early")),
                fmt(t.median(scenario, s, "server_cpu_s_per_million"), 2),
                fmt(t.median(scenario, s, "retried")),
            ]))
        out.append("")

    fanout_table("steady", "### Steady: 1,000 subscribers x 100 msg/s x 256 B (1,000 messages)", "latency")
    fanout_table("burst", "### Burst: 1,000 subscribers x 10,000 messages of 256 B, as fast as publishing allows (2 publishers)", "rate")

    if any(t.of("publish", s) for s in servers):
        out.append("### Publish only: POST per second over 4 keep-alive connections, no subscribers")
        out.append("")
        out += header(["server", "POST/s", "round trip p50 (ms)", "p99 (ms)", "server CPU per POST (us)", "errors"])
        for s in servers:
            if not t.of("publish", s):
                continue
            out.append(row([
                s,
                with_range(t, "publish", s, "posts_per_s", 0),
                fmt(t.median("publish", s, "publish_rtt_ms.p50"), 3),
                fmt(t.median("publish", s, "publish_rtt_ms.p99"), 3),
                fmt(t.median("publish", s, "server_cpu_us_per_post"), 1),
                fmt(t.median("publish", s, "publish_errors")),
            ]))
        out.append("")

    # Ratios and targets.
    hub = "sse-hub"
    if hub in servers:
        out.append("### sse-hub against its peers (median against median)")
        out.append("")
        out += header(["figure", "sse-hub", "vs node", "vs nchan", "better is"])
        def line(label, scenario, path, digits, better):
            mine = t.median(scenario, hub, path)
            out.append(row([label, fmt(mine, digits),
                            ratio(mine, t.median(scenario, "node", path)),
                            ratio(mine, t.median(scenario, "nchan", path)), better]))
        line("steady latency p99 (ms)", "steady", "latency_ms.p99", 2, "lower")
        line("steady server CPU s per 1M deliveries", "steady", "server_cpu_s_per_million", 2, "lower")
        line("burst deliveries/s", "burst", "deliveries_per_s", 0, "higher")
        line("burst server CPU s per 1M deliveries", "burst", "server_cpu_s_per_million", 2, "lower")
        if idle:
            line(f"idle RSS per subscriber at {idle[-1].split('-')[1]} (KiB)", idle[-1], "rss_kib_per_client", 1, "lower")
            line(f"time to connect {idle[-1].split('-')[1]} (s)", idle[-1], "connect_s", 3, "lower")
        line("publish-only POST/s", "publish", "posts_per_s", 0, "higher")
        out.append("")

        out.append("### Targets")
        out.append("")
        out += header(["target", "measured (sse-hub, median)", "met"])
        p99 = t.median("steady", hub, "latency_ms.p99")
        if p99 is not None:
            out.append(row(["steady p99 < 5 ms", f"{p99:.2f} ms", "yes" if p99 < 5 else "**no**"]))
        mine, theirs = t.median("burst", hub, "deliveries_per_s"), t.median("burst", "nchan", "deliveries_per_s")
        if mine is not None and theirs:
            out.append(row(["burst >= 1.5x nchan's deliveries/s", f"{mine:,.0f}/s = {mine / theirs:.2f}x nchan ({theirs:,.0f}/s)",
                            "yes" if mine >= 1.5 * theirs else "**no**"]))
        if idle:
            rss = [(sc, t.median(sc, hub, "rss_kib_per_client")) for sc in idle]
            rss = [(sc, v) for sc, v in rss if v is not None]
            if rss:
                worst = max(v for _, v in rss)
                text = ", ".join(f"{v:.1f} KiB at {int(sc.split('-')[1]):,}" for sc, v in rss)
                out.append(row(["idle RSS <= 20 KiB per subscriber", text, "yes" if worst <= 20 else "**no**"]))
        posts = t.median("publish", hub, "posts_per_s")
        if posts is not None:
            out.append(row(["publish-only >= 20,000 POST/s", f"{posts:,.0f} POST/s", "yes" if posts >= 20000 else "**no**"]))
        out.append("")

    out.append("### Commands")
    out.append("")
    out.append("Each figure comes from `bench/run.sh`, which starts a fresh server for every run and calls:")
    out.append("")
    out.append("```sh")
    seen = set()
    for r in runs:
        key = (r["tags"].get("scenario"), r["label"])
        if key in seen:
            continue
        seen.add(key)
        out.append(f"# {key[0]}, {key[1]}")
        out.append(command_of(r))
    out.append("```")
    return "\n".join(out)


def main():
    args = sys.argv[1:]
    write = None
    if "--write" in args:
        at = args.index("--write")
        write = args[at + 1]
        del args[at:at + 2]
    if len(args) < 2:
        sys.exit(__doc__)
    machine = json.load(open(args[0]))
    runs = load(args[1:])
    text = generate(runs, machine)
    if write:
        path = write
        doc = open(path).read()
        pattern = re.compile(re.escape(START) + ".*?" + re.escape(END), re.S)
        if not pattern.search(doc):
            sys.exit(f"{path} has no {START} ... {END} markers")
        doc = pattern.sub(lambda _: f"{START}\n{text}\n{END}", doc)
        open(path, "w").write(doc)
    else:
        print(text)


if __name__ == "__main__":
    main()
