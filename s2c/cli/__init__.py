"""The command lines: ``main`` (dispatch, errors), ``parsers`` (flags), ``conference``, ``demo``,
``headless``, ``snapshot``, ``options`` (arguments -> call parts). Must not: hold call or screen
logic.
"""

from .main import main

__all__ = ["main"]
