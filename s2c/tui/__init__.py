"""The terminal side of a call: ``terminal`` (raw mode, alternate screen), ``keys`` (text ->
keys), ``paint`` (cell text cache), ``chat`` (chat area), ``status`` (status line), ``screen``
(tiles and what keys do), ``view`` (the CallView protocol), ``loop`` (the asyncio adapter),
``record`` (asciicast), ``preview`` (a source full screen). Must not: speak the protocol.
"""
