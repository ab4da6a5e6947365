#!/usr/bin/python3
"""Cluster-side steps of deploy/ceph-cluster.sh: register OSDs, create and initialise pool rbd,
judge whether a cluster is usable, and wait for an OSD that was restarted.

They run through librados in one process per step because each `ceph` CLI call costs about half
a second, and the whole start is meant to take a few seconds.

  ceph_admin.py CONF register-osds UUID...      osd.0 gets the first UUID, osd.1 the next...
  ceph_admin.py CONF init --osds N --budget S --pid-dir D [--healthy]
                                                create pool rbd, wait until usable (and healthy)
  ceph_admin.py CONF wait-osd N --asok A --budget S --pid-dir D
                                                wait until a restarted osd.N is up and pool rbd
                                                answers
  ceph_admin.py CONF status [--quiet]           print health; exit 0 if usable

Exit status 0 on success; otherwise 1 and a one-line reason on stderr.
"""
import argparse
import glob
import json
import os
import socket
import struct
import sys
import time

import rados
import rbd

POOL = "rbd"
POOL_PGS = 8
# A single local mon answers in milliseconds; waiting longer only delays the failure message.
MON_TIMEOUT_S = 15
OSD_OP_TIMEOUT_S = 3


class Failure(Exception):
    """A step failed; the message is the one line the operator sees."""


def connect(conf, timeout_s, osd_op_timeout_s=None):
    timeout = max(1, int(min(timeout_s, MON_TIMEOUT_S)))
    cluster = rados.Rados(conffile=conf, conf={
        "client_mount_timeout": str(timeout),
        "rados_mon_op_timeout": str(timeout),
        "rados_osd_op_timeout": str(osd_op_timeout_s or timeout),
    })
    try:
        cluster.connect(timeout=timeout)
    except rados.Error as e:
        raise Failure("cannot reach the mon of %s: %s" % (conf, e))
    return cluster


def mon(cluster, prefix, **args):
    args.update(prefix=prefix, format="json")
    ret, out, err = cluster.mon_command(json.dumps(args), b"")
    if ret != 0:
        raise Failure("mon command '%s' failed: %s" % (prefix, err.strip() or ret))
    return json.loads(out) if out else None


def osd_problems(status, want_osds):
    osdmap = status["osdmap"]
    found = []
    if osdmap["num_osds"] < want_osds:
        found.append("%d of %d OSDs registered" % (osdmap["num_osds"], want_osds))
    if osdmap["num_up_osds"] < osdmap["num_osds"] or osdmap["num_in_osds"] < osdmap["num_osds"]:
        found.append("OSDs up %d, in %d of %d" % (
            osdmap["num_up_osds"], osdmap["num_in_osds"], osdmap["num_osds"]))
    return found


def pool_problems(cluster):
    if POOL not in mon(cluster, "osd pool ls"):
        return ["no pool %s" % POOL]
    # The proof that the pool's PGs are active: an OSD answers for the object `rbd pool init`
    # wrote.
    try:
        with cluster.open_ioctx(POOL) as ioctx:
            ioctx.stat("rbd_info")
    except rados.ObjectNotFound:
        return ["pool %s not initialised" % POOL]
    except rados.Error as e:
        return ["pool %s does not answer: %s" % (POOL, e)]
    return []


def problems(cluster, want_osds):
    """What keeps the cluster from being usable (empty if usable), and its status."""
    status = mon(cluster, "status")
    found = osd_problems(status, want_osds)
    return (found or pool_problems(cluster)), status


def health_problems(status):
    found = []
    if not status.get("mgrmap", {}).get("available"):
        found.append("no active mgr")
    if status["health"]["status"] != "HEALTH_OK":
        found.append(status["health"]["status"])
    return found, status


def is_alive(pid):
    """True for a running process; False for a gone one or a zombie not yet reaped by init."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


def check_daemons_alive(pid_dir):
    dead = []
    for pid_file in sorted(glob.glob(os.path.join(pid_dir, "*.pid"))):
        try:
            with open(pid_file) as f:
                pid = int(f.read().strip())
        except (OSError, ValueError):
            continue  # being written by a daemon that is starting
        if not is_alive(pid):
            dead.append(os.path.basename(pid_file)[:-len(".pid")])
    if dead:
        raise Failure("daemon exited: " + ", ".join(dead))


def describe(status):
    health = status["health"]
    lines = [health["status"]]
    mgr = status.get("mgrmap", {})
    if not mgr.get("available"):
        lines[0] += " (no active mgr yet)"
    for name, check in sorted(health.get("checks", {}).items()):
        lines.append("  %s: %s" % (name, check["summary"]["message"]))
    return lines


def register_osds(conf, uuids):
    cluster = connect(conf, 15)
    try:
        for osd_id, uuid in enumerate(uuids):
            mon(cluster, "osd new", uuid=uuid, id=osd_id)
    finally:
        cluster.shutdown()


def init(conf, want_osds, budget_s, pid_dir, healthy):
    deadline = time.monotonic() + budget_s
    # I/O waits for active PGs; short op timeouts let the loops below notice a dead daemon.
    cluster = connect(conf, budget_s, OSD_OP_TIMEOUT_S)

    def osds_ready():
        status = mon(cluster, "status")
        return osd_problems(status, want_osds), status

    def pool_init(ioctx):
        try:
            rbd.RBD().pool_init(ioctx, False)
            return [], None
        except rbd.Timeout:
            return ["pool %s PGs not active" % POOL], None

    def wait_for(check):
        while True:
            check_daemons_alive(pid_dir)
            found, status = check()
            if not found:
                return status
            if time.monotonic() > deadline:
                raise Failure("cluster not ready after %.0f s: %s" % (budget_s, ", ".join(found)))
            time.sleep(0.1)

    try:
        if POOL not in mon(cluster, "osd pool ls"):
            mon(cluster, "osd pool create", pool=POOL, pg_num=POOL_PGS, pgp_num=POOL_PGS)
        wait_for(osds_ready)
        with cluster.open_ioctx(POOL) as ioctx:
            wait_for(lambda: pool_init(ioctx))
        status = wait_for(lambda: problems(cluster, want_osds))
        if healthy:
            # The mgr loads a dozen Python modules first: about 2 s on an idle machine, 10 s
            # and more on a busy one, which is why only --healthy waits for it.
            status = wait_for(lambda: health_problems(mon(cluster, "status")))
        return describe(status)
    except (rados.Error, rbd.Error) as e:
        raise Failure("setting up pool %s failed: %s" % (POOL, e))
    finally:
        cluster.shutdown()


def osd_state(asok):
    """The OSD's own view of itself ("booting", "active"...), from its admin socket; None while
    the socket does not answer yet."""
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.settimeout(2)
            s.connect(asok)
            s.sendall(json.dumps({"prefix": "status"}).encode() + b"\0")
            reply = b""
            while True:
                chunk = s.recv(65536)
                if not chunk:
                    break
                reply += chunk
    except OSError:
        return None
    if len(reply) < 4:
        return None
    (length,) = struct.unpack(">I", reply[:4])
    try:
        return json.loads(reply[4:4 + length]).get("state")
    except ValueError:
        return None


def wait_osd(conf, osd_id, asok, budget_s, pid_dir):
    """A killed OSD stays up in the OSD map until its successor boots, so "up" is the new
    process's own word ("active": it is in the map, at its own address), and then an answer from
    an OSD in pool rbd."""
    deadline = time.monotonic() + budget_s
    cluster = connect(conf, budget_s, OSD_OP_TIMEOUT_S)
    try:
        while True:
            check_daemons_alive(pid_dir)
            state = osd_state(asok)
            found = [] if state == "active" else ["osd.%d is %s" % (osd_id, state or "not answering yet")]
            found = found or pool_problems(cluster)
            if not found:
                return
            if time.monotonic() > deadline:
                raise Failure("osd.%d not back after %.0f s: %s" % (osd_id, budget_s, ", ".join(found)))
            time.sleep(0.1)
    finally:
        cluster.shutdown()


def status(conf, quiet):
    cluster = connect(conf, 5)
    try:
        found, st = problems(cluster, 1)
    finally:
        cluster.shutdown()
    if not quiet:
        lines = describe(st)
        if found:
            lines[0] += ", not usable: " + ", ".join(found)
        print("\n".join(lines))
    return 0 if not found else 1


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("conf")
    sub = parser.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("register-osds")
    p.add_argument("uuids", nargs="+")
    p = sub.add_parser("init")
    p.add_argument("--osds", type=int, default=1)
    p.add_argument("--budget", type=float, default=60.0)
    p.add_argument("--pid-dir", required=True)
    p.add_argument("--healthy", action="store_true")
    p = sub.add_parser("wait-osd")
    p.add_argument("id", type=int)
    p.add_argument("--asok", required=True)
    p.add_argument("--budget", type=float, default=60.0)
    p.add_argument("--pid-dir", required=True)
    p = sub.add_parser("status")
    p.add_argument("--quiet", action="store_true")
    args = parser.parse_args()
    try:
        if args.cmd == "register-osds":
            register_osds(args.conf, args.uuids)
            return 0
        if args.cmd == "init":
            print("\n".join(init(args.conf, args.osds, args.budget, args.pid_dir, args.healthy)))
            return 0
        if args.cmd == "wait-osd":
            wait_osd(args.conf, args.id, args.asok, args.budget, args.pid_dir)
            return 0
        return status(args.conf, args.quiet)
    except Failure as e:
        print(e, file=sys.stderr)
        return 1
    except (rados.Error, rbd.Error) as e:
        print("%s: %s" % (args.cmd, e), file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
