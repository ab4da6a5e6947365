#!/usr/bin/python3
"""clients_bench.py: the routes by which unmodified programs reach an encrypted image, next to plain
librbd, measured with fio on one cluster in one run.

Routes (each fio job: one of 4 KiB random reads/writes or 4 MiB sequential reads/writes, iodepth 16):
  plain    fio's rbd engine on a plain image (librbd, nothing of rbd-luks)
  passthrough  the same with librbd_luks_preload.so preloaded: what the library costs an image
           that did not opt in
  preload  fio's rbd engine on an rbd-luks image, librbd_luks_preload.so preloaded
  nbdkit   fio's nbd engine on nbdkit-rbdluks-plugin.so serving the rbd-luks image (unix socket)
  nbd-server  fio's nbd engine on `rbd-luks nbd-server` serving the rbd-luks image (unix socket)
  qsd      fio's nbd engine on qemu-storage-daemon's NBD export of the same image opened with
           QEMU's rbd driver and librbd's native encryption (encrypt.format=luks2)
  qsd-plain  qemu-storage-daemon's NBD export of the plain image, no encryption at all: what an
           NBD route alone costs on this machine, the reference for the NBD routes' ratios
Each round runs every route, in an order rotated round by round, and every job of a route
back to back; the ratios to plain are taken within a round, then their median. With each job the
machine's busy CPU time (/proc/stat) is recorded per GB moved: on a small machine the routes that
need more processes per request run out of CPU first. Output: a Markdown table (median MB/s with the
lowest and highest round; ratios; CPU per GB), a JSON file and a PNG plot.

Run (CEPH_CONF names the cluster; the pool holds two images of --size):
  CEPH_CONF=... tests/bench/clients_bench.py [--pool rbd] [--size 1G] [--rounds 5] [--seconds 5]
      [--build build] [--json clients.json] [--png docs/performance/clients-bench.png]
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

JOBS = [("randread", "4k"), ("randwrite", "4k"), ("read", "4m"), ("write", "4m")]
ROUTES = ["plain", "passthrough", "preload", "nbdkit", "nbd-server", "qsd", "qsd-plain"]
# The NBD routes, each also compared with qemu-storage-daemon's exports.
NBD_ROUTES = ["nbdkit", "nbd-server"]
NBD_REFERENCES = ["qsd", "qsd-plain"]


def run(cmd, env=None, **kw):
    return subprocess.run(cmd, check=True, env=env, **kw)


def cpu_model():
    """`model name`, with family and model: the same name covers several generations."""
    fields = {}
    for line in open("/proc/cpuinfo"):
        key, _, value = line.partition(":")
        fields.setdefault(key.strip(), value.strip())
    return (f"{fields.get('model name', 'unknown CPU')} (family {fields.get('cpu family', '?')}, "
            f"model {fields.get('model', '?')}), {os.cpu_count()} CPUs")


def busy_cpu_seconds():
    """CPU time the whole machine spent outside idle and iowait so far (every process: fio, the
    server of the route, the OSD), from /proc/stat."""
    fields = [int(x) for x in open("/proc/stat").readline().split()[1:]]
    idle = fields[3] + fields[4]
    return (sum(fields[:8]) - idle) / os.sysconf("SC_CLK_TCK")


def fio(args, target, env, seconds, size):
    """Bytes per second of one job, and the machine's busy CPU seconds per GB it moved."""
    rw, bs = args
    cmd = ["fio", "--name=job", f"--rw={rw}", f"--bs={bs}", "--iodepth=16", "--time_based",
           f"--runtime={seconds}", "--ramp_time=1", f"--size={size}", "--output-format=json"] + target
    busy = busy_cpu_seconds()
    out = run(cmd, env=env, capture_output=True, text=True).stdout
    busy = busy_cpu_seconds() - busy
    job = json.loads(out[out.index("{"):])["jobs"][0]
    if job["error"]:
        sys.exit(f"fio {rw} {bs} failed: {job['error']}")
    stats = job["read" if "read" in rw else "write"]
    # The CPU measure covers fio's start, the image's open and the ramp too; the bytes only the
    # measured part.
    moved = stats["io_bytes"] * (seconds + 1) / seconds
    return stats["bw_bytes"], busy / (moved / 1e9)


class Route:
    """Starts what a route needs for one round and gives fio's target options."""

    def __init__(self, name, a, work, plain, encrypted):
        self.name, self.a, self.work, self.plain, self.encrypted = name, a, work, plain, encrypted
        self.env = dict(os.environ)
        self.pidfile = os.path.join(work, f"{name}.pid")
        self.socket = os.path.join(work, f"{name}.sock")
        self.server = None  # a server this script runs itself (not a daemon)

    def __enter__(self):
        a = self.a
        if self.name in ("plain", "passthrough", "preload"):
            if self.name != "plain":
                self.env["LD_PRELOAD"] = os.path.join(a.build, "plugin/librbd_luks_preload.so")
                self.env["RBD_LUKS_PRELOAD_CONF"] = os.path.join(self.work, "preload.conf")
            image = self.encrypted if self.name == "preload" else self.plain
            self.target = ["--ioengine=rbd", "--clientname=admin", f"--pool={a.pool}", f"--rbdname={image}"]
        elif self.name == "nbdkit":
            run(["nbdkit", "-U", self.socket, "-P", self.pidfile,
                 os.path.join(a.build, "plugin/nbdkit-rbdluks-plugin.so"), f"image={a.pool}/{self.encrypted}",
                 f"passphrase-file={os.path.join(self.work, 'pass')}"])
            self.target = ["--ioengine=nbd", f"--uri=nbd+unix:///?socket={self.socket}"]
        elif self.name == "nbd-server":
            self.server = subprocess.Popen([os.path.join(a.build, "plugin/rbd-luks"), "-q", "nbd-server",
                                            f"rbd:{a.pool}/{self.encrypted}", "--socket", self.socket,
                                            "--pidfile", self.pidfile, "--passphrase-file",
                                            os.path.join(self.work, "pass")])
            while not os.path.exists(self.pidfile) or os.path.getsize(self.pidfile) == 0:
                if self.server.poll() is not None:
                    sys.exit(f"rbd-luks nbd-server exited with {self.server.returncode}")
                time.sleep(0.05)
            self.target = ["--ioengine=nbd", f"--uri=nbd+unix:///?socket={self.socket}"]
        else:
            if self.name == "qsd":
                image = f"image={self.encrypted},encrypt.format=luks2,encrypt.key-secret=sec0"
            else:
                image = f"image={self.plain}"
            run(["qemu-storage-daemon", "--daemonize", "--pidfile", self.pidfile,
                 "--object", f"secret,id=sec0,file={os.path.join(self.work, 'pass')}",
                 "--blockdev", f"driver=rbd,node-name=n0,pool={a.pool},{image},"
                               f"conf={os.environ['CEPH_CONF']},cache.direct=on",
                 "--nbd-server", f"addr.type=unix,addr.path={self.socket}",
                 "--export", "type=nbd,id=e0,node-name=n0,name=disk,writable=on"])
            self.target = ["--ioengine=nbd", f"--uri=nbd+unix:///disk?socket={self.socket}"]
        return self

    def __exit__(self, *exc):
        if self.server:
            self.server.terminate()
            if self.server.wait() != 0:
                sys.exit(f"rbd-luks nbd-server exited with {self.server.returncode}")
        elif os.path.exists(self.pidfile):
            pid = int(open(self.pidfile).read())
            os.kill(pid, 15)
            while os.path.exists(f"/proc/{pid}"):
                time.sleep(0.05)
            for path in (self.pidfile, self.socket):  # nbdkit leaves them, qemu-storage-daemon not
                if os.path.exists(path):
                    os.unlink(path)


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--pool", default="rbd")
    p.add_argument("--size", default="1G")
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--seconds", type=int, default=5)
    p.add_argument("--build", default=os.path.join(os.path.dirname(__file__), "../../build"))
    p.add_argument("--json", default="clients-bench.json")
    p.add_argument("--png")
    p.add_argument("--report", help="only print the table and plot of an earlier run's JSON file")
    a = p.parse_args()
    if a.report:
        report = json.load(open(a.report))
        print(markdown(report))
        if a.png:
            plot(report, a.png)
        return
    a.build = os.path.abspath(a.build)
    rbd_luks = os.path.join(a.build, "plugin/rbd-luks")
    tag = f"clbench{os.getpid()}"
    plain, encrypted = f"{tag}-plain", f"{tag}-luks"
    results = {route: {f"{rw} {bs}": [] for rw, bs in JOBS} for route in ROUTES}
    cpu = {route: {f"{rw} {bs}": [] for rw, bs in JOBS} for route in ROUTES}
    with tempfile.TemporaryDirectory() as work:
        with open(os.path.join(work, "pass"), "w") as f:
            f.write("bench passphrase")
        os.chmod(os.path.join(work, "pass"), 0o600)
        with open(os.path.join(work, "preload.conf"), "w") as f:
            f.write(f"passphrase-file = {os.path.join(work, 'pass')}\n")
        try:
            run(["rbd", "create", "--size", a.size, f"{a.pool}/{plain}"])
            # A cheap key derivation: the preload route opens the image inside each fio run, and the
            # CPU measure would count it.
            run([rbd_luks, "create", f"rbd:{a.pool}/{encrypted}", "--size", a.size, "--passphrase-file",
                 os.path.join(work, "pass"), "--pbkdf", "pbkdf2", "--pbkdf-force-iterations", "1000"],
                capture_output=True)
            run([rbd_luks, "preload", "enable", f"rbd:{a.pool}/{encrypted}", "--passphrase-file",
                 os.path.join(work, "pass")], capture_output=True)
            # Filled first, so that reads read data on every route.
            for route in ("plain", "preload"):
                with Route(route, a, work, plain, encrypted) as r:
                    run(["fio", "--name=fill", "--rw=write", "--bs=4m", "--iodepth=16", f"--size={a.size}"] +
                        r.target, env=r.env, capture_output=True)
            for round_number in range(a.rounds):
                order = ROUTES[round_number % len(ROUTES):] + ROUTES[:round_number % len(ROUTES)]
                for route in order:
                    with Route(route, a, work, plain, encrypted) as r:
                        for job in JOBS:
                            bw, cpu_per_gb = fio(job, r.target, r.env, a.seconds, a.size)
                            results[route][f"{job[0]} {job[1]}"].append(bw)
                            cpu[route][f"{job[0]} {job[1]}"].append(cpu_per_gb)
                print(f"round {round_number + 1}/{a.rounds} done", file=sys.stderr)
        finally:
            for image in (plain, encrypted):
                subprocess.run(["rbd", "rm", f"{a.pool}/{image}"], capture_output=True)
    report = {"cpu": cpu_model(), "seconds": a.seconds, "rounds": a.rounds, "size": a.size, "results": results,
              "cpu_seconds_per_gb": cpu}
    with open(a.json, "w") as f:
        json.dump(report, f, indent=1)
    print(markdown(report))
    if a.png:
        plot(report, a.png)


def ratios(report, route, job, over="plain"):
    r = report["results"]
    return [x / y for x, y in zip(r[route][job], r[over][job])]


def markdown(report):
    jobs = list(report["results"]["plain"])
    routes = [route for route in ROUTES if route in report["results"]]
    mb = lambda values: f"{statistics.median(values) / 1e6:.0f} ({min(values) / 1e6:.0f}-{max(values) / 1e6:.0f})"
    nbd_pairs = [(r, ref) for ref in NBD_REFERENCES for r in NBD_ROUTES if r in routes and ref in routes]
    ratio_columns = 2 * len(routes) + len(nbd_pairs)
    lines = [f"{report['cpu']}, {report['rounds']} rounds of {report['seconds']} s per job, iodepth 16; "
             "MB/s as median (lowest-highest round); ratios are medians of per-round ratios", "",
             "| job | " + " | ".join(routes) + " | " + " | ".join(f"{r}/plain" for r in routes[1:]) + " |" + "".join(f" {r}/{ref} |" for r, ref in nbd_pairs),
             "|---" * ratio_columns + "|"]
    for job in jobs:
        cells = [mb(report["results"][route][job]) for route in routes]
        rs = [statistics.median(ratios(report, route, job)) for route in routes[1:]]
        rs += [statistics.median(ratios(report, r, job, over=ref)) for r, ref in nbd_pairs]
        lines.append(f"| {job} | " + " | ".join(cells) + " | " + " | ".join(f"{x:.2f}" for x in rs) + " |")
    if "cpu_seconds_per_gb" in report:
        lines += ["", "Busy CPU seconds of the whole machine per GB moved (median of the rounds):", "",
                  "| job | " + " | ".join(routes) + " |", "|---" * (len(routes) + 1) + "|"]
        for job in jobs:
            lines.append(f"| {job} | " + " | ".join(
                f"{statistics.median(report['cpu_seconds_per_gb'][route][job]):.2f}" for route in routes) + " |")
    return "\n".join(lines)


def plot(report, path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    jobs = list(report["results"]["plain"])
    fig, ax = plt.subplots(figsize=(8, 4))
    shown = [route for route in ROUTES[1:] if route in report["results"]]
    width = 0.8 / len(shown)
    for i, route in enumerate(shown):
        values = [ratios(report, route, job) for job in jobs]
        medians = [statistics.median(v) for v in values]
        errors = [[m - min(v) for m, v in zip(medians, values)], [max(v) - m for m, v in zip(medians, values)]]
        label = {"passthrough": "plain image, preload library loaded (fio rbd)",
                 "preload": "preload library (fio rbd)", "nbdkit": "nbdkit plugin (fio nbd)",
                 "nbd-server": "rbd-luks nbd-server (fio nbd)",
                 "qsd": "qemu-storage-daemon NBD, native luks2 (fio nbd)",
                 "qsd-plain": "qemu-storage-daemon NBD, plain image (fio nbd)"}[route]
        ax.bar([j + (i - (len(shown) - 1) / 2) * width for j in range(len(jobs))], medians, width, yerr=errors,
               capsize=3, label=label)
    ax.axhline(1.0, color="grey", linewidth=0.8)
    ax.set_xticks(range(len(jobs)), jobs)
    ax.set_ylabel("throughput / plain librbd (fio rbd)")
    ax.set_title(f"Unmodified clients on an encrypted image, {report['cpu']}", fontsize=9)
    ax.set_ylim(0, 1.5)
    ax.legend(fontsize=7, ncol=2, loc="upper right")
    fig.tight_layout()
    fig.savefig(path, dpi=110)


if __name__ == "__main__":
    main()
