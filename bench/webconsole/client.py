#!/usr/bin/env python3
"""The web console's proxy against a direct connection, side by side (a benchmark, not a test).

Usage: client.py BASE_URL TOKEN DOMAIN VNC_SOCKET CONSOLE_SOCKET [ROUNDS]

For each path (direct: the display's unix socket / the serial console's unix socket; proxied:
berthd's WebSocket /v1/domains/NAME/vnc and /console/ws with the API token) it measures
  - VNC latency: a non-incremental 1x1 FramebufferUpdateRequest -> its update (median, p95)
  - VNC throughput: full-screen raw updates back to back (frames/s, MiB/s)
  - serial round trip: Enter -> the shell's prompt back (median, p95)
Every received update is checked (rectangle count, size); standard library only.
"""
import base64
import os
import socket
import statistics
import struct
import sys
import time
from urllib.parse import urlparse

base, token, domain, vnc_socket, console_socket = sys.argv[1:6]
rounds = int(sys.argv[6]) if len(sys.argv) > 6 else 200


class Raw:
    def __init__(self, path):
        self.sock = socket.socket(socket.AF_UNIX)
        self.sock.connect(path)
        self.buffer = b""

    def send(self, data):
        self.sock.sendall(data)

    def fill(self):
        chunk = self.sock.recv(1 << 20)
        if not chunk:
            raise EOFError("closed")
        self.buffer += chunk

    def exact(self, n):
        while len(self.buffer) < n:
            self.fill()
        data, self.buffer = self.buffer[:n], self.buffer[n:]
        return data

    def close(self):
        self.sock.close()


class WebSocket(Raw):
    """A client WebSocket: masked binary frames out, frames in unwrapped into one byte stream."""

    def __init__(self, path):
        url = urlparse(base)
        self.sock = socket.create_connection((url.hostname, url.port))
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        key = base64.b64encode(os.urandom(16)).decode()
        request = (f"GET {path} HTTP/1.1\r\nHost: {url.netloc}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                   f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: binary\r\n"
                   f"Authorization: Bearer {token}\r\n\r\n")
        self.sock.sendall(request.encode())
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = self.sock.recv(4096)
            if not chunk:
                raise EOFError("closed during the upgrade")
            head += chunk
        head, self.raw = head.split(b"\r\n\r\n", 1)
        if not head.startswith(b"HTTP/1.1 101"):
            raise SystemExit(f"upgrade of {path} refused: {head.decode(errors='replace')}")
        self.buffer = b""

    def send(self, data, opcode=0x2):
        mask = os.urandom(4)
        length = len(data)
        header = bytes([0x80 | opcode])
        if length < 126:
            header += bytes([0x80 | length])
        elif length < 65536:
            header += bytes([0x80 | 126]) + struct.pack(">H", length)
        else:
            header += bytes([0x80 | 127]) + struct.pack(">Q", length)
        masked = bytes(b ^ mask[i % 4] for i, b in enumerate(data))
        self.sock.sendall(header + mask + masked)

    def raw_exact(self, n):
        while len(self.raw) < n:
            chunk = self.sock.recv(1 << 20)
            if not chunk:
                raise EOFError("closed")
            self.raw += chunk
        data, self.raw = self.raw[:n], self.raw[n:]
        return data

    def fill(self):
        first, second = self.raw_exact(2)
        length = second & 0x7F
        if length == 126:
            length = struct.unpack(">H", self.raw_exact(2))[0]
        elif length == 127:
            length = struct.unpack(">Q", self.raw_exact(8))[0]
        payload = self.raw_exact(length)
        opcode = first & 0x0F
        if opcode == 8:
            code = struct.unpack(">H", payload[:2])[0] if len(payload) >= 2 else None
            raise EOFError(f"WebSocket closed by the server (code {code}: {payload[2:].decode(errors='replace')!r})")
        if opcode == 9:  # berthd's keep-alive ping: a client that does not answer is closed
            self.send(payload, opcode=0xA)
        if opcode in (0, 1, 2):
            self.buffer += payload


def rfb_open(stream):
    version = stream.exact(12)
    assert version.startswith(b"RFB "), version
    stream.send(b"RFB 003.008\n")
    count = stream.exact(1)[0]
    types = stream.exact(count)
    assert 1 in types, f"the display wants authentication {list(types)}"
    stream.send(b"\x01")
    assert struct.unpack(">I", stream.exact(4))[0] == 0, "security failed"
    stream.send(b"\x01")  # shared
    width, height = struct.unpack(">HH", stream.exact(4))
    bpp = stream.exact(16)[0]
    stream.exact(struct.unpack(">I", stream.exact(4))[0])
    stream.send(struct.pack(">BxHi", 2, 1, 0))  # SetEncodings: raw only
    return width, height, bpp // 8


def rfb_update(stream, x, y, w, h, pixel):
    stream.send(struct.pack(">BBHHHH", 3, 0, x, y, w, h))
    while True:
        kind = stream.exact(1)[0]
        if kind == 0:
            break
        if kind == 2:  # bell
            continue
        if kind == 3:  # cut text
            stream.exact(3)
            stream.exact(struct.unpack(">I", stream.exact(4))[0])
            continue
        raise SystemExit(f"unexpected RFB message {kind}")
    stream.exact(1)
    rects = struct.unpack(">H", stream.exact(2))[0]
    total = 0
    for _ in range(rects):
        rx, ry, rw, rh, encoding = struct.unpack(">HHHHi", stream.exact(12))
        assert encoding == 0, f"encoding {encoding}"
        total += len(stream.exact(rw * rh * pixel))
    # QEMU sends whole 16-pixel tiles: at least the area asked for.
    assert total >= w * h * pixel, f"update of {total} bytes for {w}x{h}"
    return total


def vnc(stream):
    width, height, pixel = rfb_open(stream)
    rfb_update(stream, 0, 0, width, height, pixel)  # warm up
    latencies = []
    for _ in range(rounds):
        start = time.perf_counter()
        rfb_update(stream, 0, 0, 1, 1, pixel)
        latencies.append(time.perf_counter() - start)
    frames = max(20, rounds // 4)
    start = time.perf_counter()
    received = sum(rfb_update(stream, 0, 0, width, height, pixel) for _ in range(frames))
    seconds = time.perf_counter() - start
    stream.close()
    return latencies, frames / seconds, received / seconds / 1048576, f"{width}x{height}x{pixel * 8}"


def serial(stream):
    prompt = b"berth-guest# "
    times = []
    for _ in range(max(20, rounds // 4)):
        stream.buffer = b""
        start = time.perf_counter()
        stream.send(b"\r")
        while prompt not in stream.buffer:
            stream.fill()
        times.append(time.perf_counter() - start)
        time.sleep(0.01)
    stream.close()
    return times


def ms(values):
    values = sorted(values)
    return f"median {statistics.median(values) * 1000:.2f} ms, p95 {values[int(len(values) * 0.95) - 1] * 1000:.2f} ms"


results = {}
for label, make_vnc, make_serial in [
    ("direct", lambda: Raw(vnc_socket), lambda: Raw(console_socket)),
    ("proxied", lambda: WebSocket(f"/v1/domains/{domain}/vnc"), lambda: WebSocket(f"/v1/domains/{domain}/console/ws")),
]:
    latencies, fps, mibs, mode = vnc(make_vnc())
    results[label] = (latencies, fps, mibs, serial(make_serial()))
    print(f"{label:8} VNC {mode}: 1x1 update {ms(latencies)}; full-screen raw updates {fps:.1f} frames/s ({mibs:.1f} MiB/s);"
          f" serial Enter->prompt {ms(results[label][3])}", flush=True)

direct, proxied = results["direct"], results["proxied"]
print(f"proxied/direct: VNC latency {statistics.median(proxied[0]) / statistics.median(direct[0]):.2f}x,"
      f" VNC frame rate {proxied[1] / direct[1]:.2f}x, serial round trip"
      f" {statistics.median(proxied[3]) / statistics.median(direct[3]):.2f}x ({rounds} 1x1 updates per path)")
