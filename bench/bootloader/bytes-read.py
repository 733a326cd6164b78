#!/usr/bin/env python3
"""Sums the bytes a process read from one file, from an strace log (-f -e trace=file,read,desc)."""
import re
import sys

log, image = sys.argv[1], sys.argv[2]
fds = {}  # (pid, fd) -> True when the fd is the image
total = 0
calls = 0
open_re = re.compile(r'^(\d+)\s+(?:openat|open)\((?:AT_FDCWD, )?"([^"]*)".*= (\d+)')
dup_re = re.compile(r'^(\d+)\s+(?:dup|dup2|dup3|fcntl)\((\d+)(?:,.*)?\)\s+= (\d+)')
read_re = re.compile(r'^(\d+)\s+(read|pread64|readv|preadv|preadv2)\((\d+),.*= (\d+)')
close_re = re.compile(r'^(\d+)\s+close\((\d+)\)')
with open(log, errors="replace") as f:
    for line in f:
        m = open_re.match(line)
        if m:
            # threads share descriptors: key by fd only
            fds[int(m.group(3))] = m.group(2) == image
            continue
        m = dup_re.match(line)
        if m and fds.get(int(m.group(2))):
            fds[int(m.group(3))] = True
            continue
        m = read_re.match(line)
        if m and fds.get(int(m.group(3))):
            total += int(m.group(4))
            calls += 1
            continue
        m = close_re.match(line)
        if m:
            fds.pop(int(m.group(2)), None)
print(f"{total} {calls}")
