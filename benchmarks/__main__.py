"""``python -m benchmarks``: requests per operation, client overhead, contention."""

from benchmarks.run import main

raise SystemExit(main())
