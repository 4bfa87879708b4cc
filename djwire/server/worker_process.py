"""Entry point of one supervised worker: config from the environment, socket by fd."""

from __future__ import annotations

import os
import sys

from djwire.server.cli import configure_logging
from djwire.server.run import run_config
from djwire.server.supervisor import CONFIG_ENV, config_from_json


def main() -> int:
    config = config_from_json(os.environ[CONFIG_ENV])
    configure_logging(config)
    return run_config(config)


if __name__ == "__main__":
    sys.exit(main())
