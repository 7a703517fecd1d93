#!/usr/bin/env python3
"""Separates a soak's drift from its threads.

    python3 bench/soak-fit.py OUT/samples.jsonl

The hub's RSS moves with the threads alive (a stack's touched pages each),
and under churn their count wanders by a dozen or more from one sample to
the next. This fits RSS = a + b * minutes + c * threads by least squares
over the second half of the load (the samples `bench/soak.sh` took while
the subscribers ran), so that b is the drift with the threads held still
and c what a thread costs. (The change along time alone is in soak.sh's
summary, from the load generator.) Standard library only.
"""

import json
import sys


def main(path):
    with open(path) as f:
        samples = [json.loads(line) for line in f if line.strip()]
    load = [s for s in samples if s.get("phase") == "load"]
    if len(load) < 3:
        sys.exit(f"{path}: fewer than 3 samples under load")
    half = int(load[-1]["t_s"]) / 2
    rows = [s for s in load if s["t_s"] >= half]
    t = [s["t_s"] / 60 for s in rows]
    rss = [float(s["rss_kib"]) for s in rows]
    threads = [float(s["threads"]) for s in rows]

    def mean(xs):
        return sum(xs) / len(xs)

    def cov(xs, ys):
        mx, my = mean(xs), mean(ys)
        return sum((x - mx) * (y - my) for x, y in zip(xs, ys))

    stt, shh, sth = cov(t, t), cov(threads, threads), cov(t, threads)
    str_, shr = cov(t, rss), cov(threads, rss)
    det = stt * shh - sth * sth
    if det == 0:
        sys.exit(f"{path}: the threads did not vary apart from time; no fit")
    drift = (str_ * shh - shr * sth) / det
    per_thread = (shr * stt - str_ * sth) / det
    span = t[-1] - t[0]
    print(
        f"second half: {len(rows)} samples over {span:.1f} min, "
        f"RSS {min(rss):.0f} to {max(rss):.0f} KiB, "
        f"threads {min(threads):.0f} to {max(threads):.0f}"
    )
    print(
        f"RSS on time and threads: {drift:+.1f} KiB a minute "
        f"({100 * drift * span / mean(rss):+.2f}% over the half), "
        f"{per_thread:.1f} KiB a thread"
    )


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    main(sys.argv[1])
