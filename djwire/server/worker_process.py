"""Entry point of one supervised worker: config from the environment, socket by fd."""

from __future__ import annotations

import os
import sys

from djwire.server.logs import configure_logging
from djwire.server.run import run_config
from djwire.server.supervisor import CONFIG_ENV, INDEX_ENV, READY_FD_ENV, read_payload


def main() -> int:
    config, explicit = read_payload(os.environ[CONFIG_ENV])
    ready_fd = int(os.environ[READY_FD_ENV])
    os.set_inheritable(ready_fd, False)  # not for the app's own subprocesses

    def ready() -> None:
        os.write(ready_fd, b"r")
        os.close(ready_fd)

    configure_logging(config)
    first = os.environ.get(INDEX_ENV) == "0"
    return run_config(config, explicit=explicit, on_ready=ready, startup_checks=first)


if __name__ == "__main__":
    sys.exit(main())
