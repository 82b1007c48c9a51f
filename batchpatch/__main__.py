"""`python -m batchpatch` is the `batchpatch` command."""

import sys

from .cli import main

sys.exit(main())
