"""The sender's picture path: ``source`` (capture thread) -> ``downsample`` (to the wire size) ->
``codec`` (delta coding; its decoder is the receiver's first stage); ``scene`` is the generated
test picture. Must not: render characters (s2c.render) or touch the network.
"""
