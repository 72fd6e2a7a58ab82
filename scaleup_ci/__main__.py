from scaleup_ci.cli import main

raise SystemExit(main())
