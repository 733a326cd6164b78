#!/usr/bin/env python3
"""Runs a desktop viewer (Debian's remote-viewer or TigerVNC's vncviewer) against a URI that
`berth domdisplay` printed, on a virtual X server (Xvfb), and reports whether it reached the
guest's display. Standard library only.

Usage: viewer.py ARTIFACT_DIR SHOT_NAME EXPECT VIEWER ARGS...
  EXPECT  a text the viewer prints once it is connected (e.g. "SpiceDisplayChannel"); several
          alternatives separated by "|"
Prints one line per step ("connected: ..." and "screenshot: N distinct colours"); saves the
X screen as ARTIFACT_DIR/SHOT_NAME (PNG); exits non-zero with the reason at the first failure.
"""
import os
import struct
import subprocess
import sys
import tempfile
import time
import zlib

artifacts, shot_name, expect, viewer = sys.argv[1:5]
viewer_arguments = sys.argv[5:]
expected = expect.split("|")
os.makedirs(artifacts, exist_ok=True)


def fail(reason):
    print("FAILED: " + reason)
    sys.exit(1)


def free_display():
    """The first X display number with no socket (Xvfb's -nolisten tcp keeps it off the network)."""
    for number in range(90, 200):
        if not os.path.exists(f"/tmp/.X11-unix/X{number}") and not os.path.exists(f"/tmp/.X{number}-lock"):
            return number
    fail("no free X display number between :90 and :199")


def png(width, height, rgb_rows):
    """A PNG of 8-bit RGB rows (each row bytes of width*3)."""
    def chunk(kind, data):
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body) & 0xFFFFFFFF)
    raw = b"".join(b"\0" + row for row in rgb_rows)
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(raw, 6)) + chunk(b"IEND", b"")


def screenshot(display):
    """The whole X screen through xwd (ZPixmap, depth 24 in 4-byte pixels, LSB first), as RGB rows."""
    dump = subprocess.run(["xwd", "-root", "-silent", "-display", display], capture_output=True, timeout=30)
    if dump.returncode != 0:
        fail("xwd: " + dump.stderr.decode(errors="replace"))
    data = dump.stdout
    fields = struct.unpack(">25I", data[:100])
    header_size, width, height = fields[0], fields[4], fields[5]
    byte_order, bytes_per_line, colours = fields[7], fields[12], fields[19]
    if bytes_per_line != width * 4 or byte_order != 0:
        fail(f"xwd wrote {bytes_per_line} bytes a line for {width} pixels (byte order {byte_order}); this reader expects 4-byte LSB-first pixels")
    start = header_size + colours * 12
    rows = []
    for y in range(height):
        line = data[start + y * bytes_per_line:start + y * bytes_per_line + width * 4]
        row = bytearray()
        for x in range(width):
            b, g, r = line[x * 4], line[x * 4 + 1], line[x * 4 + 2]  # little-endian BGRX
            row += bytes((r, g, b))
        rows.append(bytes(row))
    return width, height, rows


number = free_display()
display = f":{number}"
xvfb = subprocess.Popen(["Xvfb", display, "-screen", "0", "1024x768x24", "-nolisten", "tcp"],
                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
log = tempfile.NamedTemporaryFile(prefix="berth-viewer-", suffix=".log", delete=False)
process = None
try:
    deadline = time.time() + 20
    while not os.path.exists(f"/tmp/.X11-unix/X{number}"):
        if xvfb.poll() is not None or time.time() > deadline:
            fail("Xvfb did not start")
        time.sleep(0.1)
    print("Xvfb " + display)

    environment = dict(os.environ, DISPLAY=display)
    process = subprocess.Popen([viewer] + viewer_arguments, stdout=log, stderr=subprocess.STDOUT, env=environment)
    deadline = time.time() + 90
    found = None
    while found is None:
        with open(log.name, errors="replace") as text:
            output = text.read()
        found = next((e for e in expected if e in output), None)
        if found is not None:
            break
        if process.poll() is not None:
            fail(f"{viewer} exited ({process.returncode}) before connecting:\n{output[-3000:]}")
        if time.time() > deadline:
            fail(f"{viewer} printed none of {expected} in 90 s:\n{output[-3000:]}")
        time.sleep(0.2)
    print(f"connected: {viewer} printed '{found}'")

    time.sleep(3)  # the first frames
    width, height, rows = screenshot(display)
    with open(os.path.join(artifacts, shot_name), "wb") as out:
        out.write(png(width, height, rows))
    colours = {row[x:x + 3] for row in rows[::4] for x in range(0, width * 3, 12)}
    print(f"screenshot: {len(colours)} distinct colours")
finally:
    # SIGKILL: the test runner's children may inherit a signal mask that blocks SIGTERM.
    for child in (process, xvfb):
        if child is not None and child.poll() is None:
            child.kill()
            child.wait(timeout=10)
    os.unlink(log.name)
