#!/usr/bin/python3
"""Turns the JSON of `rbd-luks bench io --json` into what docs/performance.md shows.

  plot_bench_io.py RESULT.json --png OUT.png [--queue-depth 16] [--markdown OUT.md]

The PNG plots throughput against block size for plain librbd, rbd-luks and librbd's native
encryption at one queue depth, writes and reads side by side. The Markdown is the full table, one
row per (rw, block size, queue depth), with the ratios to plain and the client CPU per GB.
"""
import argparse
import json
import sys

PATHS = ("plain", "rbd-luks", "native")
COLOURS = {"plain": "#555555", "rbd-luks": "#1f77b4", "native": "#d62728"}


def size_label(n):
    return f"{n >> 20}M" if n % (1 << 20) == 0 else f"{n >> 10}K"


def load(path):
    with open(path, encoding="utf-8") as f:
        result = json.load(f)
    if result.get("tool") != "rbd-luks bench io" or not result.get("results"):
        sys.exit(f"{path}: not the output of `rbd-luks bench io --json`")
    return result


def markdown(result):
    present = [p for p in PATHS if any(p in r["paths"] for r in result["results"])]
    head = ["rw", "block", "qd"] + [f"{p} MB/s" for p in present]
    head += [f"{p}/plain" for p in present if p != "plain"]
    head += [f"{p} CPU s/GB" for p in present]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in result["results"]:
        paths = r["paths"]
        cells = [r["rw"], size_label(r["block_size"]), str(r["queue_depth"])]
        cells += [f"{paths[p]['mb_per_s']:.0f}" if p in paths else "-" for p in present]
        cells += [f"{paths[p]['ratio_to_plain']:.2f}" if "ratio_to_plain" in paths.get(p, {}) else "-"
                  for p in present if p != "plain"]
        cells += [f"{paths[p]['cpu_s_per_gb']:.3f}" if p in paths else "-" for p in present]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def plot(result, queue_depth, out):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rws = [rw for rw in ("write", "read") if any(r["rw"] == rw for r in result["results"])]
    fig, axes = plt.subplots(1, len(rws), figsize=(6 * len(rws), 4.5), squeeze=False)
    for ax, rw in zip(axes[0], rws):
        points = sorted((r for r in result["results"] if r["rw"] == rw and r["queue_depth"] == queue_depth),
                        key=lambda r: r["block_size"])
        if not points:
            sys.exit(f"no {rw} results at queue depth {queue_depth}")
        sizes = [r["block_size"] for r in points]
        for path in PATHS:
            if all(path in r["paths"] for r in points):
                ax.plot(sizes, [r["paths"][path]["mb_per_s"] for r in points], marker="o", label=path,
                        color=COLOURS[path])
        ax.set_xscale("log", base=2)
        ax.set_xticks(sizes, [size_label(s) for s in sizes])
        ax.set_xlabel("block size")
        ax.set_ylabel("MB/s")
        ax.set_title(f"random {rw}, queue depth {queue_depth}")
        ax.grid(True, alpha=0.3)
        ax.legend()
    machine = result["machine"]
    fig.suptitle(f"rbd-luks bench io, {result['date']}: {machine['cpu']} x {machine['cpus']}, "
                 f"librbd {machine['librbd']}, cipher {machine['cipher_backend'].split(' ')[0]}", fontsize=9)
    fig.tight_layout()
    fig.savefig(out, dpi=110)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("json")
    parser.add_argument("--png")
    parser.add_argument("--markdown")
    parser.add_argument("--queue-depth", type=int, default=16)
    args = parser.parse_args()
    result = load(args.json)
    if args.png:
        plot(result, args.queue_depth, args.png)
    if args.markdown:
        with open(args.markdown, "w", encoding="utf-8") as f:
            f.write(markdown(result))
    if not args.png and not args.markdown:
        sys.stdout.write(markdown(result))


if __name__ == "__main__":
    main()
