"""Chart for scripts/bench: how many times better gregor is than Kafka on each metric.

For throughput that is gregor/Kafka; for latency, memory, start-up and CPU it is Kafka/gregor, so
every bar reads the same way (right of 1 = gregor ahead). Log scale; dots are the single rounds,
ticks the issue's targets. Usage: plot.py results.json chart.png
"""
import json
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def main(src, dst):
    with open(src) as f:
        data = json.load(f)
    rows = [s for s in data["summary"] if s["ratio"]]
    rows.reverse()  # first metric at the top

    def adv(r, s):
        return r if s["higher_is_better"] else 1 / r

    labels = [f"{s['metric']} ({s['unit']})" for s in rows]
    vals = [adv(s["ratio"], s) for s in rows]
    fig, ax = plt.subplots(figsize=(10, 0.42 * len(rows) + 1.6))
    colors = ["#2a9d8f" if v >= 1 else "#e76f51" for v in vals]
    y = range(len(rows))
    ax.barh(y, vals, color=colors, height=0.6)
    for i, s in enumerate(rows):
        pts = [adv(r, s) for r in s["ratios"] if r]
        if len(pts) > 1:
            ax.plot(pts, [i] * len(pts), "k.", markersize=4)
        if s["target"]:
            t = adv(s["target"], s)
            ax.plot([t, t], [i - 0.38, i + 0.38], color="#264653", linewidth=2)
        ax.text(vals[i], i, f" {vals[i]:.0f}×" if vals[i] >= 10 else f" {vals[i]:.2g}×", va="center", fontsize=8)
    ax.set_yticks(list(y))
    ax.set_yticklabels(labels, fontsize=8)
    ax.set_xscale("log")
    ax.axvline(1, color="grey", linewidth=1)
    ax.set_xlabel("times better than Apache Kafka (log scale; >1 = gregor ahead; dark ticks = targets)")
    m = data["meta"]
    ax.set_title(f"gregor {m['gregor_version']} vs Apache Kafka {m['kafka_version']}, "
                 f"{m['date']}, median of {m['rounds']} round(s)", fontsize=10)
    lo = min(vals + [0.5]) / 2
    hi = max(vals + [2]) * 3
    ax.set_xlim(lo, hi)
    fig.tight_layout()
    fig.savefig(dst, dpi=110)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
