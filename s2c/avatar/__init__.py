"""Avatar mode: send a face's pose and expression instead of its picture.

Owns nothing itself; the parts are:

- ``s2c.avatar.pose``: the ``Pose`` value, its wire payload (``encode_pose`` / ``parse_pose``) and
  the sender policy (``PoseSender``). Sans-I/O.
- ``s2c.avatar.face``: ``FaceTracker``, camera frames -> ``Pose`` with OpenCV's Haar cascades.
  Sans-I/O: frames and ``now_ms`` in, poses out; no capture, no clock.
- ``s2c.avatar.figure``: ``Pose`` -> a little character person in a tile (text + colours, ANSI).
- ``s2c.avatar.puppet``: a generated, deterministic moving/blinking/talking pose stream for the demo,
  and moving real photos for the demo's video participants.
"""

from .pose import (MOUTH_CLOSED, MOUTH_OPEN, MOUTH_TALKING, NEUTRAL_POSE, POSE_PAYLOAD_BYTES,  # noqa: F401
                   Pose, PoseSender, encode_pose, parse_pose)
