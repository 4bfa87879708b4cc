"""Workers: processes that run Django code for messages from the channel layer.

* :class:`Worker` consumes named channels (background tasks):
  ``manage.py runworker thumbnails``.
* :class:`~djwire.worker.connections.ConnectionHost` runs the consumers and views
  of connections held by gateways (``manage.py runworker --connections``).
"""

from .channels import Worker
from .settings import Reliability, WorkerSettings

__all__ = ["Reliability", "Worker", "WorkerSettings"]
