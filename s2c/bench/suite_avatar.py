"""Bench suite ``avatar``: face capture cost beside the video encoder, POSE bandwidth beside the
video stream's, and how often the face is found on a talking head that tilts up to 30 deg.

Input: ``avatar_media.talking_head_roll`` (scikit-image's astronaut, 320x240, 20 fps, roll sweeps
-27..33 deg, sway, lean, blinks, talking; camera noise). Without scikit-image the suite is
unavailable (ModuleNotFoundError), as the runner reports.

- ``avatar.detect_ms``: wall time of ``FaceTracker.update`` per frame, one OpenCV thread, beside
  ``avatar.video_encode_ms`` (``VideoEncoder.encode`` of the send-size picture of the same frame,
  interleaved frame by frame). ``cpu_ms_*`` extras are the thread's CPU time (this machine is
  shared: wall time includes waiting for a core).
- ``avatar.kbps``: POSE bytes per second on the wire (payload + SFrame header and tag, suite 1, +
  the 24-byte frame header; TCP/IP not counted) in 1-s windows, measured through the client's send
  path (s2c.bench.avatar_sendpath: AvatarSender with its tracker thread and own-voice input,
  CallSession.protect, serialize), beside ``avatar.video_kbps``: the same clip as VIDEO frames at
  the client's default 15 fps. ``avatar.kbps_model``: the same from PoseSender alone.
- ``avatar.face_found_share``: share of frames where the cascades found the face (the median and
  p99 fields both hold the share); extras: the share the pose follows it, roll error vs truth.
"""

from __future__ import annotations

import os
import time

import numpy as np

from . import Metric, summarize

VIDEO_FPS = 15.0   # s2c.call.call.Call default


def _wire_bytes(payloads, ftype: int) -> list[int]:
    """Bytes on the wire of each payload: SFrame-protected (suite 1) plus the frame header."""
    from .. import wire as P
    from ..wire import metadata
    from ..crypto.sframe import SenderContext
    ctx = SenderContext(1, 3, os.urandom(32), first_ctr=1 << 20)   # a counter a long call reaches
    return [len(ctx.protect(metadata(ftype, 0, 0, 2), p)) + P.HEADER_BYTES for p in payloads]


def _per_second(times_ms, sizes, duration_ms: int) -> list[float]:
    secs = max(1, duration_ms // 1000)
    acc = np.zeros(secs)
    for t, n in zip(times_ms, sizes):
        i = int(t // 1000)
        if i < secs:
            acc[i] += n
    return list(acc * 8 / 1000)


def run(quick: bool, **_) -> dict[str, Metric]:
    import cv2

    from ..avatar.face import FaceTracker
    from ..avatar.pose import PoseSender, encode_pose
    from ..avatar.puppet import Puppet
    from ..video.codec import VideoEncoder
    from ..video.downsample import area_downsample, send_size
    from .avatar_media import have_photos, talking_head_roll
    if not have_photos():
        raise ModuleNotFoundError("scikit-image (its astronaut photo is the bench input)")
    cv2.setNumThreads(1)
    fps = 20.0
    seq = talking_head_roll(120 if quick else 400, fps=fps)
    h, w = seq[0][0].shape[:2]
    sw, sh = send_size(w, h)
    tracker = FaceTracker()
    enc = VideoEncoder(sw, sh)
    sender = PoseSender()
    clock, cpu = time.perf_counter_ns, time.thread_time_ns
    det, det_cpu, vid, vid_cpu = [], [], [], []
    found = followed = 0
    roll_err = []
    pose_t, pose_payloads, video_payloads = [], [], []
    # warm-up (cascade loading, first allocations) outside the figures
    warm = FaceTracker()
    for f, _ in seq[:3]:
        warm.update(f, 0)
    for i, (frame, truth) in enumerate(seq):
        now_ms = int(i * 1000 / fps)
        speaking = truth.mouth_open > 0
        t0, c0 = clock(), cpu()
        pose = tracker.update(frame, now_ms, speaking=speaking)
        det.append((clock() - t0) / 1e6)
        det_cpu.append((cpu() - c0) / 1e6)
        small = area_downsample(frame, sw, sh)
        t0, c0 = clock(), cpu()
        payload, _key = enc.encode(small, now_ms)
        vid.append((clock() - t0) / 1e6)
        vid_cpu.append((cpu() - c0) / 1e6)
        if i == 0 or int(i * VIDEO_FPS / fps) != int((i - 1) * VIDEO_FPS / fps):   # 15 of every 20
            video_payloads.append((now_ms, payload))
        r = tracker.reading
        found += r.found
        followed += pose.face_found
        if r.found:
            roll_err.append(abs(r.roll_deg - truth.roll_deg))
        if sender.should_send(pose, now_ms):
            pose_t.append(now_ms)
            pose_payloads.append(encode_pose(pose))
    n = len(seq)
    duration_ms = int(n * 1000 / fps)
    out: dict[str, Metric] = {}
    out["avatar.detect_ms"] = summarize(det, "ms", baseline="avatar.video_encode_ms",
                                        cpu_ms_median=float(np.median(det_cpu)),
                                        cpu_ms_p99=float(np.percentile(det_cpu, 99)),
                                        frames=n, size=f"{w}x{h}", threads=1)
    out["avatar.video_encode_ms"] = summarize(vid, "ms", cpu_ms_median=float(np.median(vid_cpu)),
                                              cpu_ms_p99=float(np.percentile(vid_cpu, 99)),
                                              size=f"{sw}x{sh}")
    pose_wire = _wire_bytes(pose_payloads, 16)
    video_wire = _wire_bytes([p for _, p in video_payloads], 16)
    from .avatar_sendpath import send_path_frames
    sent = send_path_frames(seq, fps)
    poses = [(t, n) for t, n, ft in sent if ft == 22]
    out["avatar.kbps"] = summarize(_per_second([t for t, _ in poses], [n for _, n in poses], duration_ms),
                                   "kbit/s", baseline="avatar.video_kbps", poses_sent=len(poses),
                                   video_frames_sent=sum(ft == 16 for _, _, ft in sent), frames=n,
                                   wire_bytes_per_pose=float(np.mean([n for _, n in poses])) if poses else 0.0,
                                   path="AvatarSender+CallSession.protect+serialize")
    out["avatar.kbps_model"] = summarize(_per_second(pose_t, pose_wire, duration_ms), "kbit/s",
                                   baseline="avatar.video_kbps", poses_sent=len(pose_payloads),
                                   frames=n, wire_bytes_per_pose=float(np.mean(pose_wire)),
                                   payload_bytes=len(pose_payloads[0]) if pose_payloads else 0)
    out["avatar.video_kbps"] = summarize(_per_second([t for t, _ in video_payloads], video_wire, duration_ms),
                                         "kbit/s", fps=VIDEO_FPS, size=f"{sw}x{sh}")
    # a longer, camera-free stream: the demo's puppet, 60 s at 20 fps
    puppet, ps = Puppet(1), PoseSender()
    pt, pp = [], []
    for i in range(1200):
        t = i * 50
        p = puppet.pose_at(t)
        if ps.should_send(p, t):
            pt.append(t)
            pp.append(encode_pose(p))
    out["avatar.kbps_puppet"] = summarize(_per_second(pt, _wire_bytes(pp, 16), 60_000), "kbit/s",
                                          baseline="avatar.video_kbps", poses_sent=len(pp), seconds=60)
    share = found / n
    err = np.asarray(roll_err) if roll_err else np.asarray([float("nan")])
    out["avatar.face_found_share"] = Metric(share, share, "share", None, {
        "frames": n, "followed_share": followed / n, "max_roll_deg": 30,
        "roll_err_deg_median": float(np.median(err)), "roll_err_deg_p90": float(np.percentile(err, 90))})
    return out
