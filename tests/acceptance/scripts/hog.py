"""Allocate memory step by step until killed: 20 MiB every 20 ms, touching every page."""

import sys
import time

chunks = []
print("hog: allocating", flush=True)
while True:
    chunks.append(bytearray(20 * 1024 * 1024))
    for i in range(0, len(chunks[-1]), 4096):
        chunks[-1][i] = 1
    time.sleep(0.02)
    if len(chunks) % 10 == 0:
        print(f"hog: {len(chunks) * 20} MiB", flush=True)
sys.exit(0)
