"""``python -m djwire serve APP``: the same as the ``djwire`` command."""

from __future__ import annotations

import sys

from djwire.server.cli import main

if __name__ == "__main__":
    sys.exit(main())
