"""The classic API of the original Django Channels (1.x): function consumers,
``message.reply_channel``, ``Channel(...).send`` and ``Group(...).add/send``,
routed with ``route()``/``include()``, running on djwire's core.
"""
