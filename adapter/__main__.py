"""``python -m adapter`` is the same as the ``beacon-adapter`` console script."""

from adapter.cli import main

raise SystemExit(main())
