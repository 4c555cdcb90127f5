"""``python -m ebpfhooks.bench``: the same as ``ebpfhooks bench``."""

import sys

from ebpfhooks.bench.cli import main

sys.exit(main())
