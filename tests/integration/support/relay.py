#!/usr/bin/env python3
"""A loopback TCP relay that records every byte it forwards.

    relay.py LISTEN_PORT_FILE TARGET_PORT CAPTURE_FILE

Binds 127.0.0.1 on a free port, writes the port to LISTEN_PORT_FILE,
forwards each connection to 127.0.0.1:TARGET_PORT and appends both
directions to CAPTURE_FILE. Exits after 120 s at most.
"""
import select
import socket
import sys
import threading
import time

port_file, target, capture = sys.argv[1], int(sys.argv[2]), sys.argv[3]
lock = threading.Lock()


def pump(a, b):
    try:
        while True:
            r, _, _ = select.select([a, b], [], [], 30)
            if not r:
                return
            for s in r:
                data = s.recv(65536)
                if not data:
                    return
                with lock, open(capture, "ab") as f:
                    f.write(data)
                (b if s is a else a).sendall(data)
    except OSError:
        pass
    finally:
        a.close()
        b.close()


srv = socket.socket()
srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
srv.bind(("127.0.0.1", 0))
srv.listen(16)
with open(port_file, "w") as f:
    f.write(str(srv.getsockname()[1]))
srv.settimeout(1)
deadline = time.time() + 120
while time.time() < deadline:
    try:
        c, _ = srv.accept()
    except socket.timeout:
        continue
    up = socket.create_connection(("127.0.0.1", target))
    threading.Thread(target=pump, args=(c, up), daemon=True).start()
