"""`python -m funker_dispatch`: the `funker-dispatch` command."""

import sys

from funker_dispatch.cli import main

sys.exit(main())
