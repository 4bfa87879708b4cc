"""``manage.py deadletters CHANNEL``: list, replay or discard a channel's dead letters.

A message on a reliable channel (``DJWIRE_RELIABLE_CHANNELS``) whose consumer kept
failing ends up in the channel's dead letters once its attempts are used up::

    manage.py deadletters thumbnails                 # list them, oldest first
    manage.py deadletters thumbnails --json          # the same, one JSON object per line
    manage.py deadletters thumbnails --replay        # send them all to the channel again
    manage.py deadletters thumbnails --replay 17 18  # ... or those two
    manage.py deadletters thumbnails --discard 17    # drop one for good
"""

from __future__ import annotations

import datetime
import json
from typing import Any

from asgiref.sync import async_to_sync
from django.core.management import BaseCommand, CommandError
from django.core.management.base import CommandParser

from djwire.layers import DEFAULT_CHANNEL_LAYER, BaseChannelLayer, get_channel_layer
from djwire.layers.queue_types import DeadLetter

#: Characters of a message shown in the listing (--json shows it whole).
SUMMARY_LENGTH = 120


class Command(BaseCommand):
    help = "List, replay or discard the dead letters of a reliable channel."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("channel", help="The named channel.")
        parser.add_argument("--layer", default=DEFAULT_CHANNEL_LAYER, help="Channel layer alias.")
        action = parser.add_mutually_exclusive_group()
        action.add_argument(
            "--replay",
            nargs="*",
            metavar="ID",
            help="Send these dead letters (all, if no ID is given) to the channel again.",
        )
        action.add_argument(
            "--discard",
            nargs="*",
            metavar="ID",
            help="Drop these dead letters (all, if no ID is given).",
        )
        parser.add_argument("--limit", type=int, default=100, help="Most letters listed.")
        parser.add_argument("--json", action="store_true", help="List as JSON lines.")

    def handle(self, *args: Any, **options: Any) -> None:
        layer = get_channel_layer(options["layer"])
        if layer is None:
            raise CommandError("You do not have any CHANNEL_LAYERS configured.")
        channel = options["channel"]
        try:
            layer.require_valid_channel_name(channel)
        except TypeError as exc:
            raise CommandError(str(exc)) from exc
        try:
            if options["replay"] is not None:
                count = self._run(layer.replay_dead_letters, channel, options["replay"] or None)
                self.stdout.write(f"Replayed {count} dead letter(s) to {channel}.")
            elif options["discard"] is not None:
                count = self._run(layer.discard_dead_letters, channel, options["discard"] or None)
                self.stdout.write(f"Discarded {count} dead letter(s) of {channel}.")
            else:
                self._list(layer, channel, options["limit"], options["json"])
        except NotImplementedError as exc:
            raise CommandError(f"This channel layer keeps no dead letters: {exc}") from exc

    def _run(self, operation: Any, *args: Any) -> int:
        async def run() -> int:
            try:
                result: int = await operation(*args)
                return result
            finally:
                await _close(operation.__self__)

        return async_to_sync(run)()

    def _list(self, layer: BaseChannelLayer, channel: str, limit: int, as_json: bool) -> None:
        async def fetch() -> list[DeadLetter]:
            try:
                return await layer.dead_letters(channel, limit)
            finally:
                await _close(layer)

        letters = async_to_sync(fetch)()
        if as_json:
            for letter in letters:
                self.stdout.write(json.dumps(_as_dict(letter), default=repr))
            return
        if not letters:
            self.stdout.write(f"No dead letters on {channel}.")
            return
        for letter in letters:
            when = datetime.datetime.fromtimestamp(letter.failed_at, datetime.UTC)
            summary = json.dumps(letter.message, default=repr)
            if len(summary) > SUMMARY_LENGTH:
                summary = summary[: SUMMARY_LENGTH - 3] + "..."
            self.stdout.write(
                f"{letter.id}  {when:%Y-%m-%d %H:%M:%S}Z  attempts {letter.attempts}  "
                f"{letter.reason}\n    {summary}"
            )
        self.stdout.write(f"{len(letters)} dead letter(s) on {channel}.")


def _as_dict(letter: DeadLetter) -> dict[str, Any]:
    return {
        "id": letter.id,
        "failed_at": letter.failed_at,
        "attempts": letter.attempts,
        "reason": letter.reason,
        "message": letter.message,
    }


async def _close(layer: BaseChannelLayer) -> None:
    # A one-shot command: its event loop ends with it, and so must the layer's connections.
    await layer.close()
