#!/usr/bin/python3
"""reencrypt_bench.py: `rbd-luks reencrypt`, `decrypt` and `encrypt` next to the copies of the same
bytes their peers make, in one run on one machine.

On RBD: an image of --size with --data of random plaintext written at its start (the rest never
written). Each round times, in an order that alternates round by round:
  deep-cp    `rbd deep cp` of the image to a new one (the cluster copying every allocated byte),
             which is then removed; and of an image of the same size with no data
  reencrypt  `rbd-luks reencrypt` of the image (a new volume key, every allocated byte read,
             checksummed, decrypted, encrypted and written back, with two header commits per step);
             and of the image with no data, whose time (the cost that does not depend on the data)
             every ratio is also reported without
  decrypt, then encrypt
             `rbd-luks decrypt` of the image (every allocated byte read, decrypted and written the
             data offset lower), then `rbd-luks encrypt` of the plain image it left (the reverse),
             which makes it a volume again for the next round; and both of the image with no data
On a file (with --files): a LUKS2 file of --data, reencrypted by `cryptsetup reencrypt` (on a loop
device when losetup works, else the file) and by `rbd-luks reencrypt`, alternately.
Throughput is allocated data bytes per second of wall time; ratios are taken within a round, then
their median (with the lowest and highest round). The machine's busy CPU seconds (/proc/stat: the
client and, on one host, the OSD) per GB are recorded too.

Run (CEPH_CONF names the cluster):
  CEPH_CONF=... tests/bench/reencrypt_bench.py [--pool rbd] [--size 8G] [--data 1G] [--rounds 5]
      [--files] [--build build] [--json reencrypt.json] [--png docs/performance/reencrypt-bench.png]
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from clients_bench import busy_cpu_seconds, cpu_model  # noqa: E402

PASSPHRASE = b"reencrypt bench passphrase"
FAST = ["--pbkdf", "pbkdf2", "--pbkdf-force-iterations", "1000"]


def run(cmd, **kw):
    return subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, **kw)


def timed(cmd):
    cpu0, t0 = busy_cpu_seconds(), time.monotonic()
    run(cmd)
    return time.monotonic() - t0, busy_cpu_seconds() - cpu0


def parse_size(text):
    units = {"K": 10, "M": 20, "G": 30, "T": 40}
    return int(text[:-1]) << units[text[-1].upper()] if text[-1].upper() in units else int(text)


def random_file(path, size):
    with open(path, "wb") as f:
        for _ in range(size >> 20):
            f.write(os.urandom(1 << 20))


def rounds(count, label, runs):
    """Each round runs every entry of runs (a call returning {name: (seconds, busy CPU seconds)} for
    what it timed), the order reversed every other round."""
    rows = []
    for r in range(count):
        row = {}
        for entry in (runs if r % 2 == 0 else list(reversed(runs))):
            row.update(entry())
        rows.append(row)
        print(f"{label} round {r + 1}: " + ", ".join(f"{k} {v[0]:.2f} s" for k, v in row.items()), file=sys.stderr)
    return rows


def rbd_rounds(a, rbd_luks, work):
    image = f"{a.pool}/reencrypt-bench-{os.getpid()}"
    key = os.path.join(work, "pass")
    data = os.path.join(work, "data")
    random_file(data, a.data)
    run([rbd_luks, "create", f"rbd:{image}", "--size", str(a.size), "--passphrase-file", key, *FAST])
    run([rbd_luks, "import", data, f"rbd:{image}", "--passphrase-file", key, "-q"])
    os.unlink(data)
    # The same size with no data: what a command costs whatever the data (opening, and for
    # reencrypt cryptsetup's 125 ms PBKDF2 digests of the keys and of the state).
    empty = image + "-empty"
    run([rbd_luks, "create", f"rbd:{empty}", "--size", str(a.size), "--passphrase-file", key, *FAST])

    def copy(source):
        result = timed(["rbd", "deep", "cp", source, source + "-copy", "--no-progress"])
        run(["rbd", "rm", source + "-copy", "--no-progress"])
        return result

    def deep_cp():
        return {"deep-cp": copy(image), "deep-cp-empty": copy(empty)}

    def reencrypt():
        return {"reencrypt": timed([rbd_luks, "reencrypt", f"rbd:{image}", "--passphrase-file", key, "-q"]),
                "reencrypt-empty": timed([rbd_luks, "reencrypt", f"rbd:{empty}", "--passphrase-file", key, "-q"])}

    def round_trip():
        times = {}
        for name, suffix in ((image, ""), (empty, "-empty")):
            times["decrypt" + suffix] = timed([rbd_luks, "decrypt", f"rbd:{name}", "--passphrase-file", key, "-q"])
            times["encrypt" + suffix] = timed(
                [rbd_luks, "encrypt", f"rbd:{name}", "--passphrase-file", key, "-q", *FAST])
        return times

    try:
        return rounds(a.rounds, "rbd", [
            deep_cp,
            reencrypt,
            round_trip,
        ])
    finally:
        for name in (image, empty):
            subprocess.run(["rbd", "rm", name, "--no-progress"], stderr=subprocess.DEVNULL)


def file_rounds(a, rbd_luks, work):
    key = os.path.join(work, "pass")
    image = os.path.join(work, "file.img")
    run(["truncate", "-s", str((16 << 20) + a.data), image])
    run(["cryptsetup", "luksFormat", "-q", "--type", "luks2", "--sector-size", "4096", *FAST, "--key-file", key, image])
    run(["dd", f"if=/dev/urandom", f"of={image}", "bs=1M", "seek=16", f"count={a.data >> 20}", "conv=notrunc",
         "status=none"])
    loop = None
    if os.geteuid() == 0:
        found = subprocess.run(["losetup", "--find", "--show", image], capture_output=True, text=True)
        loop = found.stdout.strip() if found.returncode == 0 else None
    cs_target = loop or image
    try:
        rows = rounds(a.rounds, "file", [
            lambda: {"cryptsetup": timed(["cryptsetup", "reencrypt", "-q", "--force-offline-reencrypt", "--key-file",
                                          key, *FAST, cs_target])},
            lambda: {"rbd-luks": timed([rbd_luks, "reencrypt", f"file:{image}", "--passphrase-file", key, "-q"])},
        ])
    finally:
        if loop:
            subprocess.run(["losetup", "-d", loop])
    return rows, ("loop device" if loop else "file")


def summary(rows, data, base, other):
    mbps = {k: [data / row[k][0] / 1e6 for row in rows] for k in (base, other)}
    cpu = {k: statistics.median(row[k][1] / (data / 1e9) for row in rows) for k in (base, other)}
    ratios = [row[base][0] / row[other][0] for row in rows]
    return {"mb_per_s": mbps, "busy_cpu_s_per_gb": cpu, "ratio": ratios}


def marginal(rows, names):
    """Rows with each command's time less its time on the empty image of the same round: the cost of
    the data alone."""
    return [{n: (max(row[n][0] - row[n + "-empty"][0], 1e-3), max(row[n][1] - row[n + "-empty"][1], 0.0))
             for n in names} for row in rows]


def table(title, s, base, other):
    lines = [f"| {title} | median MB/s (lowest, highest) | busy CPU s/GB |", "|---|---|---|"]
    for k in (base, other):
        v = s["mb_per_s"][k]
        lines.append(f"| {k} | {statistics.median(v):.0f} ({min(v):.0f}, {max(v):.0f}) | {s['busy_cpu_s_per_gb'][k]:.2f} |")
    r = s["ratio"]
    lines.append(f"| {other} / {base} | {statistics.median(r):.2f} ({min(r):.2f}, {max(r):.2f}) | |")
    return "\n".join(lines)


def plot(report, path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    groups = [(key, "deep-cp", command, f"RBD: rbd deep cp vs rbd-luks {command}")
              for key, command in (("rbd", "reencrypt"), ("rbd_decrypt", "decrypt"), ("rbd_encrypt", "encrypt"))
              if key in report]
    if "files" in report:
        groups.append(("files", "cryptsetup", "rbd-luks", f"file: cryptsetup reencrypt ({report['files']['target']}) "
                       "vs rbd-luks reencrypt"))
    fig, axes = plt.subplots(1, len(groups), figsize=(4.5 * len(groups), 3.6), squeeze=False)
    for ax, (key, base, other, title) in zip(axes[0], groups):
        s = report[key]
        names = [base, other]
        medians = [statistics.median(s["mb_per_s"][n]) for n in names]
        errors = [[m - min(s["mb_per_s"][n]) for m, n in zip(medians, names)],
                  [max(s["mb_per_s"][n]) - m for m, n in zip(medians, names)]]
        ax.bar(names, medians, yerr=errors, capsize=4, color=["#888888", "#3070b0"])
        ax.set_ylabel("MB/s of allocated data")
        ratio = f"ratio {statistics.median(s['ratio']):.2f}"
        if f"rbd_{other}_data_only" in report:
            ratio += f", less the empty image's time {statistics.median(report[f'rbd_{other}_data_only']['ratio']):.2f}"
        ax.set_title(f"{title}\n{ratio}", fontsize=8)
    fig.suptitle(f"In-place rewrites, {report['data_bytes'] >> 20} MiB of data, {report['cpu']}", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--pool", default="rbd")
    p.add_argument("--size", default="8G")
    p.add_argument("--data", default="1G")
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--files", action="store_true")
    p.add_argument("--build", default="build")
    p.add_argument("--json")
    p.add_argument("--png")
    a = p.parse_args()
    a.size, a.data = parse_size(a.size), parse_size(a.data)
    rbd_luks = os.path.join(a.build, "plugin", "rbd-luks")
    with tempfile.TemporaryDirectory() as work:
        with open(os.path.join(work, "pass"), "wb") as f:
            f.write(PASSPHRASE)
        rows = rbd_rounds(a, rbd_luks, work)
        report = {"cpu": cpu_model(), "data_bytes": a.data, "image_bytes": a.size,
                  "rbd": summary(rows, a.data, "deep-cp", "reencrypt")}
        for command in ("decrypt", "encrypt"):
            report["rbd_" + command] = summary(rows, a.data, "deep-cp", command)
        commands = ("reencrypt", "decrypt", "encrypt")
        data_only = marginal(rows, ("deep-cp", *commands))
        for command in commands:
            report[f"rbd_{command}_data_only"] = summary(data_only, a.data, "deep-cp", command)
        report["empty_image_s"] = {n: statistics.median(row[n + "-empty"][0] for row in rows)
                                   for n in ("deep-cp", *commands)}
        for key, command in (("rbd", "reencrypt"), ("rbd_decrypt", "decrypt"), ("rbd_encrypt", "encrypt")):
            print(table("RBD", report[key], "deep-cp", command))
            print()
        for command in commands:
            print(table("RBD, less the empty image's time", report[f"rbd_{command}_data_only"], "deep-cp", command))
            print()
        print("empty image, median s: " + ", ".join(f"{k} {v:.2f}" for k, v in report["empty_image_s"].items()))
        print()
        if a.files:
            rows, target = file_rounds(a, rbd_luks, work)
            report["files"] = summary(rows, a.data, "cryptsetup", "rbd-luks")
            report["files"]["target"] = target
            print()
            print(table(f"file ({target})", report["files"], "cryptsetup", "rbd-luks"))
    print(f"\n{report['cpu']}")
    if a.json:
        with open(a.json, "w") as f:
            json.dump(report, f, indent=1)
    if a.png:
        plot(report, a.png)


if __name__ == "__main__":
    main()
