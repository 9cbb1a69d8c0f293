"""Network namespaces for the ``net`` bench: one for the relay, one per client, joined by TUN
devices that the link emulator (s2c.bench.linkemu) holds.

Owns: whether namespaces and TUN can be used here (``unavailable_reason``), the names
(``s2cnet-<owner pid>-<role>``: unique per run, and a leftover of a killed run is recognised by
its dead owner), creating and deleting the namespaces, the addresses and routes on the TUN
devices, running a command inside a namespace (``ip netns exec``), and removing leftovers.
Must not: move packets (the emulator does), or use an address outside these namespaces: the
private addresses given here (10.213.K.0/24, one subnet per client link) exist only inside them.

Topology for N clients (K = 1..N): the relay namespace holds ``r<K>`` = 10.213.K.1/24, client
K's namespace holds ``tun0`` = 10.213.K.2/24 with a default route via 10.213.K.1. The emulator
reads what the kernel sends on one device and writes it, delayed or not, into the other.
"""

from __future__ import annotations

import os
import shutil
import subprocess

PREFIX = "s2cnet-"
SUBNET = "10.213"
CLIENT_DEV = "tun0"


def _ip(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run(["ip", *args], capture_output=True, text=True, check=check, timeout=10)


def list_namespaces() -> list[str]:
    try:
        out = _ip("netns", "list").stdout
    except (OSError, subprocess.SubprocessError):
        return []
    return [line.split()[0] for line in out.splitlines() if line.strip()]


def unavailable_reason() -> str | None:
    """None if this process can make namespaces with TUN devices; else why not (one line)."""
    if not hasattr(os, "geteuid") or os.geteuid() != 0:
        return "needs root (network namespaces and TUN devices)"
    if shutil.which("ip") is None:
        return "the 'ip' command (iproute2) is not installed"
    if not os.path.exists("/dev/net/tun"):
        return "no /dev/net/tun (TUN driver not available)"
    probe = f"{PREFIX}{os.getpid()}-probe"
    try:
        r = _ip("netns", "add", probe, check=False)
        if r.returncode != 0:
            return f"'ip netns add' failed: {r.stderr.strip() or r.returncode}"
        from .linkemu import open_tun
        try:
            os.close(open_tun("probe0", probe))
        except OSError as exc:
            return f"cannot create a TUN device in a namespace: {exc}"
    except (OSError, subprocess.SubprocessError) as exc:
        return f"'ip netns' does not work here: {exc}"
    finally:
        _ip("netns", "del", probe, check=False)
    return None


def _owner_alive(name: str) -> bool:
    try:
        pid = int(name[len(PREFIX):].split("-", 1)[0])
    except ValueError:
        return True  # not ours to judge
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def delete_namespace(name: str) -> None:
    """Stop what still runs inside (processes this harness started there) and delete it."""
    try:
        pids = _ip("netns", "pids", name, check=False).stdout.split()
    except (OSError, subprocess.SubprocessError):
        pids = []
    for p in pids:
        try:
            os.kill(int(p), 9)
        except (ValueError, ProcessLookupError, PermissionError):
            pass
    _ip("netns", "del", name, check=False)


def cleanup_leftovers() -> list[str]:
    """Delete namespaces of earlier runs whose owner process is gone; returns their names."""
    gone = [n for n in list_namespaces() if n.startswith(PREFIX) and not _owner_alive(n)]
    for n in gone:
        delete_namespace(n)
    return gone


class Topology:
    """The relay namespace and ``n_clients`` client namespaces of one run."""

    def __init__(self, n_clients: int, tag: str = "run"):
        base = f"{PREFIX}{os.getpid()}-{tag}"
        self.n = n_clients
        self.relay_ns = f"{base}-r"
        self.client_ns = {k: f"{base}-c{k}" for k in range(1, n_clients + 1)}
        self.created: list[str] = []

    @staticmethod
    def relay_addr(k: int) -> str:
        return f"{SUBNET}.{k}.1"

    @staticmethod
    def client_addr(k: int) -> str:
        return f"{SUBNET}.{k}.2"

    @staticmethod
    def relay_dev(k: int) -> str:
        return f"r{k}"

    def emulator_pairs(self) -> dict:
        """The emulator's device spec: pair ``c<K>``, side a = the client, side b = the relay
        (so a_to_b is client K's uplink and b_to_a its downlink)."""
        return {f"c{k}": {"a": [ns, CLIENT_DEV], "b": [self.relay_ns, self.relay_dev(k)], "seed": k}
                for k, ns in self.client_ns.items()}

    def create(self) -> None:
        for ns in (self.relay_ns, *self.client_ns.values()):
            _ip("netns", "add", ns)
            self.created.append(ns)
            _ip("-n", ns, "link", "set", "lo", "up")

    def configure(self) -> None:
        """Addresses and routes, once the emulator has made the TUN devices."""
        for k, ns in self.client_ns.items():
            rdev = self.relay_dev(k)
            _ip("-n", self.relay_ns, "addr", "add", f"{self.relay_addr(k)}/24", "dev", rdev)
            _ip("-n", self.relay_ns, "link", "set", rdev, "up")
            _ip("-n", ns, "addr", "add", f"{self.client_addr(k)}/24", "dev", CLIENT_DEV)
            _ip("-n", ns, "link", "set", CLIENT_DEV, "up")
            _ip("-n", ns, "route", "add", "default", "via", self.relay_addr(k))

    def exec_argv(self, ns: str, argv: list[str]) -> list[str]:
        return ["ip", "netns", "exec", ns, *argv]

    def delete(self) -> None:
        for ns in reversed(self.created):
            delete_namespace(ns)
        self.created.clear()
