#!/usr/bin/env python3
"""The round trip of one byte over TCP (TCP_NODELAY), as ping would give it
for a link where there is no ping: the floor of a call between emulated
hosts (tools/emulated_hosts.sh).

    tcp_rtt.py serve PORT              echo bytes back (one client, then exit)
    tcp_rtt.py ADDRESS PORT [N]        N round trips (default 500): prints
                                       "median_us p99_us"
"""
import socket
import sys
import time


def serve(port):
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("0.0.0.0", port))
    s.listen(1)
    c, _ = s.accept()
    c.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    while True:
        b = c.recv(1)
        if not b:
            return
        c.sendall(b)


def client(addr, port, n):
    for _ in range(100):  # the server may still be starting
        try:
            c = socket.create_connection((addr, port))
            break
        except OSError:
            time.sleep(0.05)
    else:
        sys.exit("tcp_rtt: cannot connect to %s:%d" % (addr, port))
    c.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    rtt = []
    for i in range(n + 20):
        t = time.perf_counter()
        c.sendall(b"x")
        c.recv(1)
        if i >= 20:  # after a warm-up
            rtt.append((time.perf_counter() - t) * 1e6)
    rtt.sort()
    print("%.1f %.1f" % (rtt[len(rtt) // 2], rtt[len(rtt) * 99 // 100]))


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "serve":
        serve(int(sys.argv[2]))
    elif len(sys.argv) in (3, 4):
        client(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]) if len(sys.argv) == 4 else 500)
    else:
        sys.exit(__doc__)
