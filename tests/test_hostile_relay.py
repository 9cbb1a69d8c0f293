"""Issue 13: a hostile relay (tests/_hostile_relay.py, a proxy between real headless ``s2c`` clients
and a real ``s2c-server``) replays, re-announces, swaps names and keys, flips bits and invents a
participant. Each test asserts what the victim (alice) shows — her headless event lines (chat,
security_alert, peer_joined) and her stats — with and without --secret. Rows of the threat table in
docs/security.md name these tests."""

from __future__ import annotations

import time

import pytest

from s2c import wire as P
from s2c.wire import metadata
from s2c.crypto.keys import KeyManager
from s2c.errors import CryptoError

from _call_fixtures import HeadlessClient
from _hostile_relay import HostileRelay
from _relay_fixtures import relay_server

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def server():
    with relay_server() as srv:
        yield srv


_sessions = iter(range(1, 10**6))


@pytest.fixture
def world(tmp_path):
    """start(proxy, name, secret, say) -> a joined headless client; a fresh session per test
    (world.session), so clients of an earlier test never share the room."""
    made = {"clients": [], "proxy": None}
    session = f"hostile-{next(_sessions)}"

    def start(proxy, name, secret=None, say=()):
        extra = []
        if secret:
            extra += ["--secret", secret]
        for s in say:
            extra += ["--say", s]
        c = HeadlessClient(proxy.port, name, tmp_path, session=session, video=None, extra=tuple(extra))
        made["clients"].append(c)
        assert c.wait_event(lambda e: e.get("event") == "joined", 30), c.stderr_text()
        return c

    start.session = session
    yield start
    for c in made["clients"]:
        c.stop()


def chats(c, text=None, name=None):
    return [e for _t, e in list(c.events) if e.get("event") == "chat"
            and (text is None or e["text"] == text) and (name is None or e["name"] == name)]


def alert(kind, contains=""):
    return lambda e: e.get("event") == "security_alert" and e["kind"] == kind and contains in e["text"]


def poll(fn, timeout_s=20.0):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        v = fn()
        if v:
            return v
        time.sleep(0.05)
    return fn()


def code(c):
    try:
        return c.stats()["crypto"]["safety_code"]
    except AssertionError:  # no stats file yet
        return ""


def rejected(c, pid, reason):
    try:
        return c.stats()["crypto"]["rejected_by_peer"].get(str(pid), {}).get(reason, 0)
    except (KeyError, AssertionError):
        return 0


def _alice_and_bob(server, world, secret, hook=None):
    proxy = HostileRelay(server.port, hook)
    alice = world(proxy, "alice", secret)
    bob = world(proxy, "bob", secret, say=["hello from bob"])
    return proxy, alice, bob


SECRETS = [None, "correct horse battery"]
IDS = ["no-secret", "secret"]


@pytest.mark.parametrize("secret", SECRETS, ids=IDS)
def test_replayed_chat_is_shown_once_and_the_replay_is_shown(server, world, secret):
    proxy, alice, bob = _alice_and_bob(server, world, secret)
    try:
        assert alice.wait_event(lambda e: e.get("event") == "chat", 30)
        la = proxy.link("alice")
        recorded = [f for f in la.down if f.type == P.CHAT]
        bob_id = recorded[0].sender
        for _ in range(3):
            la.to_client(recorded[0])
        assert alice.wait_event(alert("replayed", "bob"), 15)
        assert poll(lambda: rejected(alice, bob_id, "replay") == 3)
        assert len(chats(alice, "hello from bob")) == 1
        assert alice.stats()["crypto"]["state"].startswith("e2e ! bob: 3 replayed")
    finally:
        proxy.close()


@pytest.mark.parametrize("secret", SECRETS, ids=IDS)
def test_reannounce_with_junk_key_then_real_key_then_replay(server, world, secret):
    """Finding 1: the junk key is refused (loudly), replay state is kept, nothing opens twice."""
    proxy, alice, bob = _alice_and_bob(server, world, secret)
    try:
        assert alice.wait_event(lambda e: e.get("event") == "chat", 30)
        la = proxy.link("alice")
        bob_id = [f for f in la.down if f.type == P.CHAT][0].sender
        recorded = [f for f in la.down if f.sender == bob_id and f.type in (P.KEY, P.CHAT)]
        junk = KeyManager(world.session, secret)
        junk.reset(bob_id, "bob")
        la.to_client(P.Frame(P.KEY, junk.outgoing()[0][1], sender=bob_id))
        for f in recorded:  # bob's real announcement, his recorded wraps, his recorded chat
            la.to_client(f)
        assert alice.wait_event(alert("key_changed", "bob's key changed — the relay may be attacking; "
                                                     "compare codes"), 15)
        assert poll(lambda: rejected(alice, bob_id, "replay") >= 1)
        assert len(chats(alice, "hello from bob")) == 1
        assert alice.stats()["crypto"]["state"].startswith("e2e ! bob's key changed")
    finally:
        proxy.close()


def _swap(name):
    return {"bob": "carol", "carol": "bob"}.get(name, name)


def _swap_names_for_alice(link, direction, f):
    if direction != "down" or link.name != "alice":
        return None
    if f.type == P.WELCOME:
        w = P.parse_welcome(f.payload)
        roster = [P.Peer(p.id, _swap(p.name), p.caps) for p in w.roster]
        return [P.Frame(P.WELCOME, P.encode_welcome(w.id, w.name, w.session, roster, w.limits))]
    if f.type == P.PEER_JOINED:
        p = P.parse_peer_joined(f.payload)
        return [P.Frame(P.PEER_JOINED, P.encode_peer_joined(P.Peer(p.id, _swap(p.name), p.caps)))]
    if f.type == P.KEY and f.payload[1] == 1:  # rewrite the name inside the announcement too
        n = f.payload[37]
        new = _swap(f.payload[38:38 + n].decode()).encode()
        payload = f.payload[:37] + bytes((len(new),)) + new + f.payload[38 + n:]
        return [P.Frame(P.KEY, payload, f.flags, f.stream, f.sender, f.dest, f.seq, f.ts_us)]
    return None


@pytest.mark.parametrize("secret", SECRETS, ids=IDS)
def test_relay_swapping_names_is_refused_and_nothing_is_misattributed(server, world, secret):
    """Finding 2: names are bound into the key exchange and the safety code."""
    proxy = HostileRelay(server.port, _swap_names_for_alice)
    try:
        alice = world(proxy, "alice", secret)
        world(proxy, "carol", secret)
        bob = world(proxy, "bob", secret, say=["hello from bob"])
        assert alice.wait_event(alert("wrap_failed"), 20)
        assert bob.wait_event(lambda e: e.get("event") == "security_alert", 20)  # bob can't open alice's key
        codes = poll(lambda: (code(alice), code(bob)) if code(alice) and code(bob) else None, 30)
        assert codes and codes[0] != codes[1]
        time.sleep(0.5)  # bob's message was sent; give it a moment to (not) appear
        assert chats(alice, "hello from bob", name="carol") == []
        assert chats(alice, "hello from bob") == []
        assert alice.stats()["crypto"]["state"].startswith("e2e !")
    finally:
        proxy.close()


def test_key_swap_mid_call_without_secret_is_refused_and_announced(server, world):
    """Finding 3: the relay re-announces bob with its own key; alice refuses it, says so, and her
    next wraps are still for bob's real key (the relay cannot open them)."""
    proxy, alice, bob = _alice_and_bob(server, world, None)
    try:
        assert alice.wait_event(lambda e: e.get("event") == "chat", 30)
        la = proxy.link("alice")
        bob_id = [f for f in la.down if f.type == P.CHAT][0].sender
        evil = KeyManager(world.session)
        evil.reset(bob_id, "bob")
        la.to_client(P.Frame(P.KEY, evil.outgoing()[0][1], sender=bob_id))
        assert alice.wait_event(alert("key_changed", "bob's key changed"), 15)
        n_up = len(la.up)
        world(proxy, "carol")  # a roster change: alice makes a new sender key and wraps it for everyone
        wraps = poll(lambda: [f for f in la.up[n_up:] if f.type == P.KEY and f.dest == bob_id
                              and f.payload[1] == 2], 20)
        assert wraps
        ann = [f for f in la.up if f.type == P.KEY and f.payload[1] == 1][0]
        evil.on_roster({bob_id: "bob", la.id: "alice"})
        evil.receive_key_message(la.id, ann.payload)
        for w in wraps:
            with pytest.raises(CryptoError, match="not ours"):
                evil.receive_key_message(la.id, w.payload)
    finally:
        proxy.close()


def _flip_chat_for_alice(link, direction, f):
    if direction == "down" and link.name == "alice" and f.type == P.CHAT:
        bad = bytearray(f.payload)
        bad[-1] ^= 0x01
        return [P.Frame(f.type, bytes(bad), f.flags, f.stream, f.sender, f.dest, f.seq, f.ts_us)]
    return None


@pytest.mark.parametrize("secret", SECRETS, ids=IDS)
def test_bit_flips_are_shown_as_tampering_naming_the_peer(server, world, secret):
    """Finding 5: the first failed tag turns the status to 'e2e !' with the peer's name."""
    proxy, alice, bob = _alice_and_bob(server, world, secret, hook=_flip_chat_for_alice)
    try:
        assert alice.wait_event(alert("auth_failed", "bob"), 30)
        assert poll(lambda: alice.stats()["crypto"]["state"] == "e2e ! bob: 1 frame failed authentication")
        assert chats(alice) == []
    finally:
        proxy.close()


@pytest.mark.parametrize("secret", SECRETS, ids=IDS)
def test_fake_participant_is_visible_and_cannot_speak_with_a_secret(server, world, secret):
    fake_id = 999

    def drop_to_fake(link, direction, f):
        return [] if direction == "up" and f.dest == fake_id else None

    proxy, alice, bob = _alice_and_bob(server, world, secret, hook=drop_to_fake)
    try:
        assert alice.wait_event(lambda e: e.get("event") == "chat", 30)
        la = proxy.link("alice")
        evil = KeyManager(world.session, "a guess" if secret else None)
        evil.reset(fake_id, "mallory")
        ids = {la.id: "alice", fake_id: "mallory"}
        evil.on_roster(ids)
        n_up = len(la.up)
        la.to_client(P.Frame(P.PEER_JOINED, P.encode_peer_joined(P.Peer(fake_id, "mallory", {}))))
        assert alice.wait_event(lambda e: e.get("event") == "peer_joined" and e["name"] == "mallory", 15)
        ann = poll(lambda: [f for f in la.up[n_up:] if f.type == P.KEY and f.dest == fake_id and f.payload[1] == 1])
        evil.receive_key_message(la.id, ann[0].payload)
        for _dest, payload in evil.outgoing():
            la.to_client(P.Frame(P.KEY, payload, sender=fake_id))
        chat = evil.protect(metadata(P.CHAT, 0, 0, fake_id), b"i am mallory")
        la.to_client(P.Frame(P.CHAT, chat, sender=fake_id))
        if secret:
            assert alice.wait_event(alert("wrap_failed", "mallory"), 15)
            assert poll(lambda: rejected(alice, fake_id, "no_key") >= 1)
            assert chats(alice, "i am mallory") == []
        else:
            # without a secret the invented participant is in alice's roster (visible) and her
            # safety code no longer matches bob's
            assert alice.wait_event(lambda e: e.get("event") == "chat" and e["name"] == "mallory", 15)
            codes = poll(lambda: (code(alice), code(bob)) if code(alice) and code(bob) else None, 30)
            assert codes[0] != codes[1]
        assert all(e["name"] == "bob" for e in chats(alice, "hello from bob"))
    finally:
        proxy.close()
