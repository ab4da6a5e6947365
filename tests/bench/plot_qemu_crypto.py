#!/usr/bin/python3
"""Plots the CSV written by tests/bench/qemu_crypto_bench.sh (medians over its rounds).

  plot_qemu_crypto.py RESULT.csv --png OUT.png

Left: AES-XTS throughput of the cipher alone, 512-bit keys, log scale. For QEMU that is the bytes
converted divided by the extra CPU seconds of the encrypted conversion over the same one without
encryption in the same round (hatched where the rounds disagree by more than that); for rbd-luks
and OpenSSL it is their reported wall-clock rate times wall / CPU seconds of their run, so all bars
are GB per CPU second. Right: qemu-img's CPU seconds per GiB against the qcow2 cluster size, with
and without encryption, raw and luks as level lines.
"""
import argparse
import csv
import statistics
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

OPS = ("encrypt", "decrypt")
COLOURS = {"encrypt": "#1f77b4", "decrypt": "#ff7f0e"}


def load(path):
    meta, lines = {}, []
    with open(path, encoding="utf-8") as f:
        for line in f:
            if line.startswith("# "):
                key, _, value = line[2:].partition(": ")
                meta[key] = value.strip()
            elif line.strip():
                lines.append(line)
    rows = list(csv.DictReader(lines))
    if not rows or "tool" not in rows[0]:
        sys.exit(f"{path}: not the output of qemu_crypto_bench.sh")
    return meta, rows


def medians(rows):
    """qemu-img's CPU seconds per round, their medians, and the medians of the tools' GB/s."""
    cpu, rate, size = {}, {}, None
    for r in rows:
        if r["tool"] == "qemu-img":
            key = (r["op"], r["format"], int(r["cluster_size"]), r["variant"])
            cpu.setdefault(key, {})[r["round"]] = float(r["user_s"]) + float(r["sys_s"])
            size = int(r["bytes"])
        else:
            key = (r["tool"], r["op"], int(r["sector_size"]), int(r["key_bits"]), r["variant"])
            gbps, cpu_s = float(r["gb_per_s"]), float(r["user_s"] or 0) + float(r["sys_s"] or 0)
            if cpu_s > 0:  # the wall-clock rate scaled to GB per CPU second of the tool's run
                gbps *= float(r["wall_s"]) / cpu_s
            rate.setdefault(key, []).append(gbps)
    return (cpu, {k: statistics.median(v.values()) for k, v in cpu.items()},
            {k: statistics.median(v) for k, v in rate.items()}, size)


def size_label(n):
    if n >= 1 << 20:
        return f"{n >> 20}M"
    return f"{n >> 10}K" if n >= 1024 else str(n)


def cipher_bars(per_round, cpu, rate, size):
    """(label, {op: GB/s}, {op: within noise}) from the slowest kind of thing to the fastest.

    QEMU's cipher cost is the encrypted conversion's CPU seconds minus the plain one's in the same
    round, median over the rounds; within noise when those differences spread wider than that.
    """
    def qemu(fmt, cluster, variant, base):
        out, noisy = {}, {}
        for op in OPS:
            enc, plain = per_round.get((op, fmt, cluster, variant), {}), per_round.get((op,) + base, {})
            diffs = [enc[r] - plain[r] for r in enc if r in plain]
            extra = statistics.median(diffs) if diffs else 0
            if extra > 0:
                out[op] = size / extra / 1e9
                noisy[op] = max(diffs) - min(diffs) > extra
        return out, noisy

    bars = []
    raw = ("raw", 0, "default")
    if ("encrypt", "luks", 0, "nettle-noaesni") in cpu:
        bars.append(("QEMU luks, NETTLE_FAT_OVERRIDE=none",) + qemu("luks", 0, "nettle-noaesni", raw))
    if ("encrypt", "luks", 0, "gnutls-noaccel") in cpu:
        bars.append(("QEMU luks, GNUTLS_CPUID_OVERRIDE=0x1",) + qemu("luks", 0, "gnutls-noaccel", raw))
    clusters = sorted({k[2] for k in cpu if k[1] == "qcow2-luks"})
    for c in clusters:
        bars.append((f"QEMU qcow2+LUKS, {size_label(c)} clusters",)
                    + qemu("qcow2-luks", c, "default", ("qcow2", c, "default")))
    bars.append(("QEMU luks",) + qemu("luks", 0, "default", raw))
    for tool, name in (("openssl", "OpenSSL EVP aes-256-xts"), ("rbd-luks", "rbd-luks")):
        for sector in (512, 4096):
            found = {k[1]: v for k, v in rate.items()
                     if k[0] == tool and k[2] == sector and k[3] == 512}
            backend = next((k[4] for k in rate if k[0] == tool and k[4] != "evp"), "")
            label = f"{name} ({backend})" if backend else name
            if found:
                bars.append((f"{label}, {sector} B", found, {}))
    return bars


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("csv")
    parser.add_argument("--png", required=True)
    args = parser.parse_args()
    meta, rows = load(args.csv)
    per_round, cpu, rate, size = medians(rows)
    if size is None:
        sys.exit(f"{args.csv}: no qemu-img rows")

    fig, (left, right) = plt.subplots(1, 2, figsize=(15, 6.5), gridspec_kw={"width_ratios": [1.3, 1]})
    bars = cipher_bars(per_round, cpu, rate, size)
    height = 0.38
    for i, (_, values, noisy) in enumerate(bars):
        for j, op in enumerate(OPS):
            if op in values:
                y = i + (0.5 - j) * height
                hatch = "//" if noisy.get(op) else None
                left.barh(y, values[op], height, color=COLOURS[op], hatch=hatch, alpha=0.5 if hatch else 1,
                          label=op if i == 0 else None)
                note = " (within noise)" if hatch else ""
                left.text(values[op] * 1.05, y, f"{values[op]:.2f}{note}", va="center", fontsize=7)
    left.set_yticks(range(len(bars)), [b[0] for b in bars], fontsize=8)
    left.set_xscale("log")
    left.set_xlabel("AES-XTS, 512-bit key: GB per CPU second of one thread (log)\n"
                    "QEMU: 512-byte sectors; rbd-luks, OpenSSL: sector / buffer size given")
    left.set_title("Cipher alone")
    left.legend(loc="lower right", fontsize=8)
    left.grid(axis="x", which="both", alpha=0.3)
    left.set_xlim(min(v for _, d, _ in bars for v in d.values()) / 1.5,
                  max(v for _, d, _ in bars for v in d.values()) * 2)

    gib = size / (1 << 30)
    clusters = sorted({k[2] for k in cpu if k[1] == "qcow2"})
    for fmt, style in (("qcow2", "--"), ("qcow2-luks", "-")):
        for op in OPS:
            ys = [cpu.get((op, fmt, c, "default"), float("nan")) / gib for c in clusters]
            name = "qcow2+LUKS" if fmt == "qcow2-luks" else "qcow2"
            right.plot(clusters, ys, style, marker="o", color=COLOURS[op], label=f"{name} {op}")
    for fmt, style in (("raw", ":"), ("luks", "-.")):
        for op in OPS:
            if (op, fmt, 0, "default") in cpu:
                right.axhline(cpu[(op, fmt, 0, "default")] / gib, linestyle=style, linewidth=1,
                              color=COLOURS[op], label=f"{fmt} {op}")
    right.set_xscale("log", base=2)
    right.set_xticks(clusters, [size_label(c) for c in clusters])
    right.set_yscale("log")
    right.set_xlabel("qcow2 cluster size")
    right.set_ylabel("qemu-img CPU seconds (user+system) per GiB (log)")
    right.set_title("Whole conversion")
    right.legend(fontsize=7, ncol=2)
    right.grid(alpha=0.3)

    rounds = meta.get("rounds", "?")
    fig.suptitle(f"QEMU LUKS vs rbd-luks vs OpenSSL, {meta.get('cpu', '')}\n"
                 f"{meta.get('qemu-img', 'qemu-img')}; {size >> 20} MiB in RAM, "
                 f"medians of {rounds} rounds", fontsize=10)
    fig.tight_layout()
    fig.savefig(args.png, dpi=110)


if __name__ == "__main__":
    main()
