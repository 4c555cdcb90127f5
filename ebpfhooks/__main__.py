"""``python -m ebpfhooks``: the same as the ``ebpfhooks`` command."""

import sys

from ebpfhooks.cli import main

sys.exit(main())
