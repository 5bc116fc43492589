"""``python -m jaxrnn demo`` / ``python -m jaxrnn train ...``: see `jaxrnn.cli`."""

from jaxrnn.cli import main

raise SystemExit(main())
