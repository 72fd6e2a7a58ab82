"""One small real script with many ways to fail, used by the fault suite.

usage: fault.py INPUT OUTPUT --mode MODE [--at N] [--pids DIR] [--sleep S]

Until the stage whose size is N (``--at``, default: every stage) it behaves: one JSONL record
per input example, flushed as it goes. At that stage it fails in the way MODE says. Processes it
starts write their pids to ``--pids DIR`` so the tests can check that none is left alive.
"""

import argparse
import json
import os
import signal
import subprocess
import sys
import time
import traceback


def load(path):
    with open(path, encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]


def good(examples, output, sleep=0.0, bad_at=None, nan_at=None):
    with open(output, "w", encoding="utf-8") as out:
        for i, ex in enumerate(examples):
            if sleep:
                time.sleep(sleep)
            rec = {"id": str(ex.get("id", i)), "score": 0.5, "length": len(json.dumps(ex))}
            if i == bad_at:
                rec["score"] = "high"
            if i == nan_at:
                out.write('{"id": "' + str(i) + '", "score": NaN, "length": 1}\n')
                continue
            out.write(json.dumps(rec) + "\n")
            out.flush()


def note_pid(pids, pid, tag):
    if pids:
        os.makedirs(pids, exist_ok=True)
        with open(os.path.join(pids, f"{tag}-{pid}"), "w") as fh:
            fh.write(str(pid))


def spawn(code, pids, tag, **kw):
    p = subprocess.Popen([sys.executable, "-c", code], **kw)
    note_pid(pids, p.pid, tag)
    return p


def touch(mb):
    b = bytearray(mb * 1024 * 1024)
    for i in range(0, len(b), 4096):
        b[i] = 1
    return b


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("input")
    ap.add_argument("output")
    ap.add_argument("--mode", required=True)
    ap.add_argument("--at", type=int, default=-1)
    ap.add_argument("--pids", default="")
    ap.add_argument("--sleep", type=float, default=0.0)
    args = ap.parse_args()
    ex = load(args.input)
    n = len(ex)
    note_pid(args.pids, os.getpid(), f"root{n}")
    print(f"fault: stage of {n} examples, mode {args.mode}", flush=True)
    if args.at not in (-1, n):
        good(ex, args.output)
        return 0
    m = args.mode
    pids = args.pids
    if m == "ok":
        good(ex, args.output, sleep=args.sleep)
    elif m == "segfault":
        os.kill(os.getpid(), signal.SIGSEGV)
    elif m == "abort":
        os.abort()
    elif m == "bad-alloc":
        sys.stderr.write("terminate called after throwing an instance of 'std::bad_alloc'\n"
                         "  what():  std::bad_alloc\n")
        sys.stderr.flush()
        os.abort()
    elif m == "memoryerror-caught":
        try:
            huge = bytearray(1 << 46)  # 64 TiB: refused at once
            del huge
        except MemoryError:
            traceback.print_exc()  # logged, then the script carries on as if all were well
        good(ex, args.output)
    elif m == "memoryerror":
        raise MemoryError("simulated: could not allocate the model")
    elif m == "alloc":
        blocks = [touch(50) for _ in range(12)]  # 600 MiB, really touched
        print(f"fault: holding {len(blocks) * 50} MiB", flush=True)
        good(ex, args.output)
    elif m == "workers":
        code = ("import time\nb = bytearray(200 * 1024 * 1024)\n"
                "for i in range(0, len(b), 4096): b[i] = 1\ntime.sleep(60)\n")
        procs = [spawn(code, pids, "worker") for _ in range(4)]
        for p in procs:
            p.wait()
        good(ex, args.output)
    elif m == "self-sigkill":
        os.kill(os.getpid(), signal.SIGKILL)
    elif m == "self-sigterm":
        os.kill(os.getpid(), signal.SIGTERM)
    elif m == "exit1":
        raise KeyError("label")
    elif m == "busy":
        x = 0
        while True:
            x += 1
    elif m == "hang":
        while True:
            time.sleep(1)
    elif m == "hang-ignore-term":
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        while True:
            time.sleep(1)
    elif m == "print-1gib":
        chunk = (b"x" * 1023 + b"\n") * 1024  # 1 MiB
        out = sys.stdout.buffer
        for _ in range(1024):
            out.write(chunk)
        out.flush()
        good(ex, args.output)
    elif m == "child-floods-pipe":
        code = ("import sys\nchunk = b'y' * 65536\n"
                "for _ in range(800): sys.stdout.buffer.write(chunk)\n")  # 50 MiB
        p = spawn(code, pids, "flooder")
        p.wait()
        good(ex, args.output)
    elif m == "setsid-helper":
        code = "import os, time\nos.setsid()\nprint('helper up', flush=True)\ntime.sleep(300)\n"
        spawn(code, pids, "helper")
        time.sleep(0.3)
        good(ex, args.output)
    elif m == "grandchild":
        spawn("import time\ntime.sleep(300)\n", pids, "grandchild")
        good(ex, args.output)
    elif m == "forker":
        kids = []
        for _ in range(300):  # self-limited: never more than 300 sleeping children
            pid = os.fork()
            if pid == 0:
                time.sleep(60)
                os._exit(0)
            kids.append(pid)
            note_pid(pids, pid, "fork")
        time.sleep(60)
    elif m == "not-json":
        with open(args.output, "w") as fh:
            fh.write("id,score\n1,0.5\n")
    elif m == "no-output":
        print("fault: forgot to write the output", flush=True)
    elif m == "short":
        good(ex[: max(0, n - 2)], args.output)
    elif m == "nan":
        good(ex, args.output, nan_at=1)
    elif m == "invalid-slow":
        good(ex, args.output, sleep=0.2, bad_at=1)
    elif m == "sleep":
        note_pid(pids, os.getpid(), "sleeper")
        spawn("import time\ntime.sleep(300)\n", pids, "sleeperchild")
        while True:
            time.sleep(0.1)
    elif m == "big-records":
        with open(args.output, "w") as fh:
            for i, e in enumerate(ex):
                fh.write(json.dumps({"id": str(e.get("id", i)), "score": 0.5,
                                     "length": 1, "pad": "p" * 100_000}) + "\n")
    elif m == "secret":
        print("connecting with token=sk-SECRET-12345", flush=True)
        print("auth failed for token=sk-SECRET-12345", file=sys.stderr, flush=True)
        return 1
    else:
        print(f"unknown mode {m}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
