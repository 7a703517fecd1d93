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

SERVERS = ["sse-hub", "nchan", "axum", "node"]
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


def describe(t, scenario):
    """The sizes of a fan-out scenario, read from its runs."""
    runs = [r for r in t.runs if r["tags"].get("scenario") == scenario and "subscribers" in r]
    if not runs:
        return ""
    r = runs[0]
    text = f"{r['subscribers']:,} subscribers x {r.get('messages', 0):,} messages of {r.get('size', 0)} B"
    if r.get("rate"):
        text += f" at {r['rate']:g} msg/s"
    else:
        text += ", as fast as publishing allows"
    if r.get("batch", 1) > 1:
        text += f", in POSTs of {r['batch']} (a JSON array)"
    publishers = r.get("publishers", 1)
    text += f" ({publishers} publisher{'s' if publishers != 1 else ''})"
    return text


def short(t, scenario):
    """`steady (1,000 x 100 msg/s)`, `idle at 5,000`: a scenario as run."""
    if scenario.startswith("idle-"):
        return f"idle at {int(scenario.split('-')[1]):,}"
    runs = [r for r in t.runs if r["tags"].get("scenario") == scenario]
    if not runs:
        return scenario
    r = runs[0]
    if "subscribers" not in r:
        return f"publish only ({r.get('publishers', '?')} connections)"
    sizes = f"{r['subscribers']:,} x {r.get('messages', 0):,}"
    if r.get("rate"):
        sizes = f"{r['subscribers']:,} x {r['rate']:g} msg/s"
    if r.get("batch", 1) > 1:
        sizes += f" in POSTs of {r['batch']}"
    return f"{scenario.rstrip('0123456789k')} ({sizes})"


def generate(runs, machine):
    unsupported = [r for r in runs if r.get("unsupported")]
    runs = [r for r in runs if not r.get("unsupported")]
    t = Table(runs)
    servers = servers_in(runs + unsupported)
    scenarios = sorted({r["tags"].get("scenario", "") for r in runs})
    idle = sorted((s for s in scenarios if s.startswith("idle-")), key=lambda s: int(s.split("-")[1]))
    out = []

    def why_not(scenario, server):
        """Why SERVER has no runs of SCENARIO, if run.sh said so."""
        for r in unsupported:
            if r["label"] == server and r["tags"].get("scenario") == scenario:
                return r["unsupported"]
        return None

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
    out.append(row(["axum peer", f"{machine.get('axum') or '?'} (bench/peers/axum, release profile, tokio's default multi-threaded runtime)"]))
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
                       "PSS per subscriber (KiB)", "threads per subscriber",
                       "kernel stack per subscriber, outside RSS (KiB: threads x 16)",
                       "machine-wide kernel stack growth per subscriber (KiB)", "handshakes retried"])
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
                    fmt(t.median(scenario, s, "thread_kernel_stack_kib_per_client"), 1),
                    fmt(t.median(scenario, s, "kernel_stack_kib_per_client"), 1),
                    fmt(t.median(scenario, s, "retried")),
                ]))
        out.append("")

    def fanout_table(scenario, name, key):
        if not any(t.of(scenario, s) or why_not(scenario, s) for s in servers):
            return
        out.append(f"### {name}: {describe(t, scenario)}")
        out.append("")
        cols = ["server", "deliveries/s", "publish rate (msg/s)", "publish round trip p50 (ms)",
                "latency p50 (ms)", "p99 (ms)", "max (ms)",
                "fan-out done p50 (ms)", "fan-out done p99 (ms)", "lost", "dup / out of order",
                "streams closed", "server CPU per delivery (us)", "publish errors", "handshakes retried"]
        out.extend(header(cols))
        for s in servers:
            if not t.of(scenario, s):
                why = why_not(scenario, s)
                if why:
                    out.append(row([s, f"not supported: {why}"] + ["-"] * (len(cols) - 2)))
                continue
            # Runs too large for the duplicate bitmap count no duplicates.
            unchecked = False in t.values(scenario, s, "dup_check")
            dup = "unchecked" if unchecked else fmt(t.median(scenario, s, "duplicated"))
            ooo = t.median(scenario, s, "out_of_order")
            errors = fmt(t.median(scenario, s, "publish_errors"))
            if not t.median(scenario, s, "published_ok"):
                samples = [e for r in t.of(scenario, s) for e in r.get("publish_error_samples", [])]
                if samples:
                    errors += f" (e.g. {samples[0].replace('|', '/')})"
                out.append(row([s, "nothing published"] + ["-"] * (len(cols) - 4) + [errors, fmt(t.median(scenario, s, "retried"))]))
                continue
            out.append(row([
                s,
                with_range(t, scenario, s, "deliveries_per_s", 0) if key == "rate" else fmt(t.median(scenario, s, "deliveries_per_s"), 0),
                with_range(t, scenario, s, "publish_rate", 1) if key == "publish" else fmt(t.median(scenario, s, "publish_rate"), 1),
                fmt(t.median(scenario, s, "publish_rtt_ms.p50"), 3),
                fmt(t.median(scenario, s, "latency_ms.p50")),
                with_range(t, scenario, s, "latency_ms.p99") if key == "latency" else fmt(t.median(scenario, s, "latency_ms.p99")),
                fmt(t.median(scenario, s, "latency_ms.max")),
                fmt(t.median(scenario, s, "fanout_ms.p50")),
                fmt(t.median(scenario, s, "fanout_ms.p99")),
                fmt(t.median(scenario, s, "lost")),
                f"{dup} / {fmt(ooo)}",
                fmt(t.median(scenario, s, "closed_early")),
                fmt(t.median(scenario, s, "server_cpu_s_per_million"), 2),
                errors,
                fmt(t.median(scenario, s, "retried")),
            ]))
        out.append("")

    fanout_table("steady", "Steady", "latency")
    fanout_table("steady5k", "Steady, more subscribers", "publish")
    fanout_table("burst", "Burst", "rate")
    fanout_table("batch", "Batch publish", "rate")

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

    # The key figures side by side, then as ratios.
    hub = "sse-hub"
    peers = [s for s in servers if s != hub]
    at = next((sc for sc in idle if sc == "idle-5000"), idle[-1] if idle else None)
    figures = [
        # scenario, what, path, digits, better
        ("burst", "deliveries/s", "deliveries_per_s", 0, "higher"),
        ("burst", "server CPU per delivery (us)", "server_cpu_s_per_million", 2, "lower"),
        ("burst", "messages lost", "lost", 0, "lower"),
        ("steady", "delivery p99 (ms)", "latency_ms.p99", 2, "lower"),
        ("steady", "publish rate reached (msg/s)", "publish_rate", 1, "higher"),
        ("steady", "publish round trip p50 (ms)", "publish_rtt_ms.p50", 3, "lower"),
        ("steady", "server CPU per delivery (us)", "server_cpu_s_per_million", 2, "lower"),
        ("steady5k", "publish rate reached (msg/s)", "publish_rate", 1, "higher"),
        ("steady5k", "delivery p99 (ms)", "latency_ms.p99", 2, "lower"),
        ("batch", "deliveries/s", "deliveries_per_s", 0, "higher"),
        ("batch", "server CPU per delivery (us)", "server_cpu_s_per_million", 2, "lower"),
        ("publish", "POST/s", "posts_per_s", 0, "higher"),
        ("publish", "server CPU per POST (us)", "server_cpu_us_per_post", 1, "lower"),
    ]
    if at:
        figures += [
            (at, "RSS per subscriber (KiB)", "rss_kib_per_client", 1, "lower"),
            (at, "kernel stack per subscriber, outside RSS (KiB)", "thread_kernel_stack_kib_per_client", 1, "lower"),
            (at, "time to connect all (s)", "connect_s", 3, "lower"),
        ]
    figures = [f for f in figures if any(t.of(f[0], s) for s in servers)]
    fanouts = {"steady", "steady5k", "burst", "batch"}

    def published_nothing(scenario, server):
        return scenario in fanouts and t.of(scenario, server) and not t.median(scenario, server, "published_ok")

    def cell(scenario, server, path, digits):
        if why_not(scenario, server):
            return "not supported"
        if published_nothing(scenario, server):
            return "nothing published"
        return fmt(t.median(scenario, server, path), digits)

    if figures:
        out.append("### Side by side (medians)")
        out.append("")
        out += header(["figure"] + servers + ["better is"])
        for scenario, what, path, digits, better in figures:
            label = f"{short(t, scenario)}: {what}"
            out.append(row([label] + [cell(scenario, s, path, digits) for s in servers] + [better]))
        out.append("")

    if hub in servers and peers and figures:
        out.append("### sse-hub / peer (median over median)")
        out.append("")
        out.append("Above 1 is better where higher is better, below 1 where lower is better.")
        out.append("")
        out += header(["figure", "sse-hub"] + [f"sse-hub / {p}" for p in peers] + ["better is"])
        for scenario, what, path, digits, better in figures:
            if path == "lost":
                continue
            label = f"{short(t, scenario)}: {what}"
            mine = t.median(scenario, hub, path)
            cells = []
            for p in peers:
                theirs = t.median(scenario, p, path)
                if why_not(scenario, p) or published_nothing(scenario, p) or published_nothing(scenario, hub):
                    cells.append("n/a")
                elif theirs == 0 and mine is not None:
                    cells.append("- (peer: 0)")
                else:
                    cells.append(ratio(mine, theirs))
            out.append(row([label, cell(scenario, hub, path, digits)] + cells + [better]))
        out.append("")

    if hub in servers:
        out.append("### Targets")
        out.append("")
        out += header(["target", "measured (sse-hub, median)", "met"])

        def target(text, measured, met):
            out.append(row([text, measured, "-" if met is None else ("yes" if met else "**no**")]))

        def m(scenario, path, server=hub):
            return t.median(scenario, server, path)

        posts, nchan_posts = m("publish", "posts_per_s"), m("publish", "posts_per_s", "nchan")
        if posts is not None:
            target(f"{short(t, 'publish')}: POST/s >= nchan's", f"{posts:,.0f} POST/s; nchan {fmt(nchan_posts, 0)}",
                   posts >= nchan_posts if nchan_posts else None)
            cpu = m("publish", "server_cpu_us_per_post")
            target(f"{short(t, 'publish')}: server CPU per POST <= 15 us", f"{cpu:.1f} us", cpu <= 15)
        rate = m("steady", "publish_rate")
        if rate is not None:
            name = short(t, "steady")
            target(f"{name}: publish rate reached >= 99 msg/s", f"{rate:.1f} msg/s", rate >= 99)
            rtt = m("steady", "publish_rtt_ms.p50")
            target(f"{name}: publish round trip p50 < 1 ms", f"{rtt:.3f} ms", rtt < 1)
            p99, nchan_p99 = m("steady", "latency_ms.p99"), m("steady", "latency_ms.p99", "nchan")
            target(f"{name}: delivery p99 <= nchan's", f"{p99:.2f} ms; nchan {fmt(nchan_p99)} ms",
                   p99 <= nchan_p99 if nchan_p99 is not None else None)
        rate = m("steady5k", "publish_rate")
        if rate is not None:
            target(f"{short(t, 'steady5k')}: publish rate reached >= 49 msg/s", f"{rate:.1f} msg/s", rate >= 49)
        burst = m("burst", "deliveries_per_s")
        if burst is not None:
            name = short(t, "burst")
            nchan_burst, axum_burst = m("burst", "deliveries_per_s", "nchan"), m("burst", "deliveries_per_s", "axum")
            target(f"{name}: deliveries/s >= 2x nchan's",
                   f"{burst:,.0f}/s = {ratio(burst, nchan_burst)} nchan ({fmt(nchan_burst, 0)}/s)",
                   burst >= 2 * nchan_burst if nchan_burst else None)
            target(f"{name}: deliveries/s >= 0.5x axum's",
                   f"{burst:,.0f}/s = {ratio(burst, axum_burst)} axum ({fmt(axum_burst, 0)}/s)",
                   burst >= 0.5 * axum_burst if axum_burst else None)
            cpu, nchan_cpu = m("burst", "server_cpu_s_per_million"), m("burst", "server_cpu_s_per_million", "nchan")
            target(f"{name}: server CPU per delivery <= nchan's", f"{cpu:.2f} us; nchan {fmt(nchan_cpu)} us",
                   cpu <= nchan_cpu if nchan_cpu is not None else None)
            lost = max(t.values("burst", hub, "lost") or [0])
            target(f"{name}: no loss", f"{lost:,} lost in the worst run", lost == 0)
        batch = m("batch", "deliveries_per_s")
        if batch is not None:
            measured = "nothing published" if published_nothing("batch", hub) else f"{batch:,.0f}/s"
            target(f"{short(t, 'batch')}: >= 1,000,000 deliveries/s", measured, batch >= 1_000_000)
        if at:
            rss, nchan_rss = m(at, "rss_kib_per_client"), m(at, "rss_kib_per_client", "nchan")
            stack = m(at, "thread_kernel_stack_kib_per_client")
            if rss is not None:
                target(f"{short(t, at)}: RSS per subscriber <= nchan's",
                       f"{rss:.1f} KiB (and {fmt(stack, 1)} KiB of kernel stack outside RSS); nchan {fmt(nchan_rss, 1)} KiB",
                       rss <= nchan_rss if nchan_rss is not None else None)
                connect, nchan_connect = m(at, "connect_s"), m(at, "connect_s", "nchan")
                target(f"{short(t, at)}: time to connect <= 2x nchan's",
                       f"{connect:.3f} s = {ratio(connect, nchan_connect)} nchan ({fmt(nchan_connect, 3)} s)",
                       connect <= 2 * nchan_connect if nchan_connect else None)
        out.append("")

    out.append("### Commands")
    out.append("")
    out.append("Each figure comes from `bench/run.sh`, which starts a fresh server for every run and calls:")
    out.append("")
    out.append("```sh")
    seen = set()
    for r in sorted(runs, key=lambda r: (r["tags"].get("scenario", ""), servers.index(r["label"]))):
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
