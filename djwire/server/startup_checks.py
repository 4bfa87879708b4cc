"""At start, the Django system checks tagged for it, logged as warnings.

The server does not know the application side: checks that concern how the server
runs it (several processes on a layer each keeps to itself, say) are registered by
the application side with the tag :data:`djwire.extensions.STARTUP_CHECKS`, and
reach the server through Django's check framework.
"""

from __future__ import annotations

import logging

from djwire.extensions import STARTUP_CHECKS

logger = logging.getLogger("djwire.server")


def run_startup_checks() -> int:
    """Run the tagged checks if the application configured Django; return how many spoke."""
    try:
        from django.apps import apps
        from django.conf import settings
    except ImportError:  # pragma: no cover - Django is a dependency
        return 0
    if not settings.configured or not apps.ready:
        return 0  # a bare ASGI application: there is no Django project to check
    from django.core import checks

    messages = checks.run_checks(tags=[STARTUP_CHECKS])
    for message in messages:
        hint = f" {message.hint}" if message.hint else ""
        level = logging.ERROR if message.is_serious() else logging.WARNING
        logger.log(level, "%s%s (%s)", message.msg, hint, message.id)
    return len(messages)
