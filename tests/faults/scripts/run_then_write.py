"""Run a program (argv after --), then write one record per input line; exit with its status."""

import json
import subprocess
import sys

inp, out = sys.argv[1], sys.argv[2]
cmd = sys.argv[sys.argv.index("--") + 1:]
rc = subprocess.run(cmd).returncode
with open(inp, encoding="utf-8") as fh, open(out, "w", encoding="utf-8") as o:
    for i, line in enumerate(x for x in fh if x.strip()):
        o.write(json.dumps({"id": str(i), "score": 0.5, "length": len(line)}) + "\n")
sys.exit(rc)
