"""``python -m benchmarks.tool [--quick]``: every figure of the tool's own cost (see run_all)."""

from benchmarks.tool.run_all import main

raise SystemExit(main())
