#!/usr/bin/env python3
"""Packet loss and delay on the path from this host to one other, in user space.

Usage (inside a lab namespace; scripts/netlab.sh impair runs it): netlab_impair.py PEER_ADDR
LOSS_PERCENT DELAY_MS

The machines hykex is tested on run a kernel without netem and without tc actions, so the lab
impairs a path itself: a TUN device takes the route to PEER_ADDR; every IPv4 packet read from it
is dropped with probability LOSS_PERCENT / 100 or sent on after DELAY_MS through a raw socket
whose mark (0x77) selects a routing table that reaches the peer directly on eth0. Only this
host's packets to the peer are impaired (run it on both hosts for both directions). SIGTERM
removes the route, the rule and the device. Prints "ready" once the route is in place.
"""
import fcntl
import heapq
import os
import random
import signal
import socket
import struct
import subprocess
import sys
import threading
import time

TUNSETIFF = 0x400454CA
IFF_TUN, IFF_NO_PI = 0x0001, 0x1000
MARK, TABLE = 0x77, "77"


def ip(*argv, check=True):
    subprocess.run(["ip", *argv], check=check, capture_output=True)


def main():
    peer, loss, delay = sys.argv[1], float(sys.argv[2]) / 100.0, float(sys.argv[3]) / 1000.0
    dev = "imp" + peer.split(".")[-1]
    tun = os.open("/dev/net/tun", os.O_RDWR)
    fcntl.ioctl(tun, TUNSETIFF, struct.pack("16sH", dev.encode(), IFF_TUN | IFF_NO_PI))
    raw = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)
    raw.setsockopt(socket.SOL_SOCKET, socket.SO_MARK, MARK)
    subnet = subprocess.run(["ip", "-o", "-4", "route", "show", "dev", "eth0", "scope", "link"],
                            capture_output=True, text=True, check=True).stdout.split()[0]
    src = subprocess.run(["ip", "-o", "-4", "addr", "show", "dev", "eth0"], capture_output=True,
                         text=True, check=True).stdout.split()[3].split("/")[0]
    ip("route", "replace", subnet, "dev", "eth0", "table", TABLE)
    ip("rule", "add", "fwmark", hex(MARK), "lookup", TABLE)
    ip("link", "set", dev, "up")
    ip("route", "replace", f"{peer}/32", "dev", dev, "src", src)

    def cleanup(*_):
        ip("route", "del", f"{peer}/32", "dev", dev, check=False)
        ip("rule", "del", "fwmark", hex(MARK), "lookup", TABLE, check=False)
        os._exit(0)
    signal.signal(signal.SIGTERM, cleanup)
    signal.signal(signal.SIGINT, cleanup)

    queue, cv = [], threading.Condition()

    def sender():
        while True:
            with cv:
                while not queue or queue[0][0] > time.monotonic():
                    cv.wait(None if not queue else queue[0][0] - time.monotonic())
                _, _, pkt = heapq.heappop(queue)
            dst = socket.inet_ntoa(pkt[16:20])
            try:
                raw.sendto(pkt, (dst, 0))
            except OSError:
                pass
    threading.Thread(target=sender, daemon=True).start()
    print("ready", flush=True)
    rng, seq = random.Random(), 0
    while True:
        pkt = os.read(tun, 65536)
        if len(pkt) < 20 or pkt[0] >> 4 != 4 or rng.random() < loss:
            continue
        seq += 1
        with cv:
            heapq.heappush(queue, (time.monotonic() + delay, seq, pkt))
            cv.notify()


if __name__ == "__main__":
    main()
