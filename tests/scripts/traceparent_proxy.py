#!/usr/bin/python3
"""A loopback TCP proxy to the Docker Engine's unix socket that records the
`traceparent` header of every request passing through (not a test itself).

Usage: traceparent_proxy.py SOCKET OUT_DIR
Writes OUT_DIR/port (the TCP port on 127.0.0.1), then appends each request's
"<method> <path> <traceparent or ->" line to OUT_DIR/requests.txt. Bytes
are forwarded unchanged both ways.
"""
import os
import re
import socket
import sys
import threading

sock_path, out_dir = sys.argv[1], sys.argv[2]
lock = threading.Lock()
REQUEST = re.compile(rb"(?:^|\r\n)([A-Z]+) (/\S*) HTTP/1\.[01]\r\n((?:[^\r\n]+\r\n)*?)\r\n", re.S)
TRACEPARENT = re.compile(rb"^traceparent:[ \t]*([^\r\n]*)\r\n", re.I | re.M)


def pump(src, dst, scan):
    buf = b""
    try:
        while True:
            data = src.recv(65536)
            if not data:
                break
            if scan:
                buf += data
                end = 0
                for m in REQUEST.finditer(buf):
                    tp = TRACEPARENT.search(m.group(3))
                    line = b"%s %s %s\n" % (m.group(1), m.group(2), tp.group(1) if tp else b"-")
                    with lock:
                        with open(os.path.join(out_dir, "requests.txt"), "ab") as f:
                            f.write(line)
                    end = m.end()
                buf = buf[end:] if end else buf[-65536:]
            dst.sendall(data)
    except OSError:
        pass
    finally:
        for s in (src, dst):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


def serve(client):
    upstream = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    upstream.connect(sock_path)
    threading.Thread(target=pump, args=(upstream, client, False), daemon=True).start()
    pump(client, upstream, True)


listener = socket.socket()
listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
listener.bind(("127.0.0.1", 0))
listener.listen(64)
open(os.path.join(out_dir, "requests.txt"), "a").close()
with open(os.path.join(out_dir, "port.tmp"), "w") as f:
    f.write(str(listener.getsockname()[1]))
os.rename(os.path.join(out_dir, "port.tmp"), os.path.join(out_dir, "port"))
while True:
    conn, _ = listener.accept()
    threading.Thread(target=serve, args=(conn,), daemon=True).start()
