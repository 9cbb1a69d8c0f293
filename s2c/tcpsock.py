"""Linux TCP socket figures and knobs the pacing on both ends uses; no-ops elsewhere.

Owns: reading a TCP socket's unacknowledged bytes (SIOCOUTQ: in flight + unsent), the part of
them still on the path (``path_bytes``: without segments the receiver already has out of order
or that were lost and not yet sent again), its min RTT
(TCP_INFO tcpi_min_rtt) and setting TCP_NOTSENT_LOWAT. Must not: decide anything (the pacing
policy is s2c.relay.pacing's and s2c.call.pacing's), read the clock, or raise: a socket that
cannot answer gives 0 / None.
"""

from __future__ import annotations

import socket
import struct
import sys

try:
    import fcntl
except ImportError:  # pragma: no cover - not POSIX
    fcntl = None

_LINUX = sys.platform.startswith("linux")
_SIOCOUTQ = 0x5411 if (fcntl is not None and _LINUX) else None          # include/uapi/asm-generic/ioctls.h
_TCP_NOTSENT_LOWAT = getattr(socket, "TCP_NOTSENT_LOWAT", 25 if _LINUX else None)
_TCP_INFO = getattr(socket, "TCP_INFO", 11 if _LINUX else None)
_TCPI_MIN_RTT_OFFSET = 148   # struct tcp_info: u32 tcpi_min_rtt (us), Linux >= 4.6
_TCPI_SEGS_OFFSET = 16       # u32 tcpi_snd_mss, rcv_mss, unacked, sacked, lost, retrans (segments)


def set_notsent_lowat(sock, nbytes: int) -> None:
    if sock is not None and _TCP_NOTSENT_LOWAT is not None:
        try:
            sock.setsockopt(socket.IPPROTO_TCP, _TCP_NOTSENT_LOWAT, nbytes)
        except (OSError, AttributeError):
            pass


def unacked_bytes(fd: int | None) -> int:
    """Bytes in the kernel's send queue of ``fd``, in flight or not yet sent (0 if unknown)."""
    if fd is None or _SIOCOUTQ is None:
        return 0
    try:
        return struct.unpack("i", fcntl.ioctl(fd, _SIOCOUTQ, b"\0\0\0\0"))[0]
    except OSError:
        return 0


def _tcp_info(sock, nbytes: int) -> bytes | None:
    """The first ``nbytes`` of the socket's struct tcp_info, or None where it cannot answer."""
    if sock is None or _TCP_INFO is None or not _LINUX:
        return None
    try:
        info = sock.getsockopt(socket.IPPROTO_TCP, _TCP_INFO, nbytes)
    except (OSError, AttributeError):
        return None
    return info if len(info) >= nbytes else None


def min_rtt_ms(sock) -> float | None:
    """The kernel's min RTT of a TCP socket, or None: unlike PING samples it remembers the
    path before a standing queue formed."""
    info = _tcp_info(sock, _TCPI_MIN_RTT_OFFSET + 4)
    if info is None:
        return None
    v = struct.unpack_from("I", info, _TCPI_MIN_RTT_OFFSET)[0]
    return v / 1000.0 if 0 < v < 0xFFFFFFFF else None


def path_bytes(fd: int | None, sock) -> int:
    """SIOCOUTQ less the segments that are not on the path any more: SACKed ones (the receiver
    has them, out of order) and lost ones not yet retransmitted (TCP_INFO sacked + lost -
    retrans, times the MSS). During a loss recovery SIOCOUTQ keeps a round trip of delivered
    data; this is what still occupies the path's queue, plus what is unsent."""
    n = unacked_bytes(fd)
    info = _tcp_info(sock, _TCPI_SEGS_OFFSET + 24) if n > 0 else None
    if info is None:
        return n
    mss, _rcv_mss, _unacked, sacked, lost, retrans = struct.unpack_from("6I", info, _TCPI_SEGS_OFFSET)
    gone = sacked + lost - retrans
    return n if gone <= 0 else max(0, n - gone * mss)
