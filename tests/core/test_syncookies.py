"""SYN cookies (RFC 4987 3.6): the Listener answers SYNs without keeping state, and
the ACK that returns a valid cookie becomes an ESTABLISHED connection (RFC 9293 3.5)
whose options come from the cookie and the echoed timestamp (RFC 7323)."""

from __future__ import annotations

import gc
import sys
from collections.abc import Callable, Hashable, Sequence
from dataclasses import replace

import pytest
from engine_helpers import ISN, PEER_ISN, events, fire, payload, seg, sent

from rudp.core.config import Config
from rudp.core.connection import Connection
from rudp.core.events import (
    Connected,
    ConnectionTerminated,
    DataReceived,
    EofReceived,
    Event,
)
from rudp.core.listener import Listener
from rudp.core.segment import ACK, FIN, HEADER_LEN, PSH, RST, SYN, Segment, decode, encode
from rudp.core.seq import seq_add, seq_sub
from rudp.core.state import State
from rudp.core.syncookies import (
    COOKIE_PERIOD,
    MSS_TABLE,
    TS_OPTION_MASK,
    SynCookies,
    mss_index,
    stamp_ts_val,
    ts_option_bits,
)
from rudp.testing import ConnectionHost, EventHook, Impairment, ListenerHost, SimulatedNetwork

SERVER_PORT = 8080
CLIENT_PORT = 40000
RCV = PEER_ISN + 1
SECRET = bytes(range(16))
PEER_TS = 7_000
OUR_MSS = Config().max_segment_size - HEADER_LEN


def fixed_isn(now: float, local: Hashable, remote: Hashable) -> int:
    return ISN


def from_client(segment: Segment, *, checksum: bool = True) -> bytes:
    segment.src_port, segment.dst_port = CLIENT_PORT, SERVER_PORT
    return encode(segment, checksum=checksum)


def to_client(segment: Segment) -> Segment:
    segment.src_port, segment.dst_port = SERVER_PORT, CLIENT_PORT
    return segment


def client_syn(
    seq: int = PEER_ISN,
    *,
    mss: int | None = 1460,
    sack: bool = True,
    wscale: int | None = 7,
    ts: int | None = PEER_TS,
) -> Segment:
    return seg(
        seq,
        0,
        SYN,
        mss=mss,
        sack_permitted=sack,
        wscale=wscale,
        ts_val=ts,
        ts_ecr=0 if ts is not None else None,
    )


def cookie_listener(
    backlog: int = 100, syn_cookies: bool | None = True, **overrides: object
) -> Listener:
    return Listener(
        Config(**overrides),  # type: ignore[arg-type]
        backlog=backlog,
        local_port=SERVER_PORT,
        isn_source=fixed_isn,
        syn_cookies=syn_cookies,
        cookies=SynCookies(SECRET),
    )


def replies(lst: Listener, *, checksum: bool = True) -> list[tuple[Segment, Hashable]]:
    return [(decode(d, verify_checksum=checksum), p) for d, p in lst.datagrams_to_send()]


def cookie_syn_ack(lst: Listener, syn: Segment, peer: Hashable, now: float) -> Segment:
    """Send ``syn``; the Listener must answer with a SYN-ACK and create nothing."""
    assert lst.receive_datagram(from_client(syn), peer, now) is None
    [(answer, to)] = replies(lst)
    assert to == peer and answer.flags == SYN | ACK, answer
    return answer


def ack_of(syn_ack: Segment, *, flags: int = ACK, data: bytes = b"", window: int = 1000) -> Segment:
    """The client's ACK of ``syn_ack`` (echoing its TSval when it has one)."""
    ts = syn_ack.ts_val is not None
    return seg(
        RCV,
        seq_add(syn_ack.seq, 1),
        flags,
        window=window,
        payload=data,
        ts_val=PEER_TS + 100 if ts else None,
        ts_ecr=syn_ack.ts_val if ts else None,
    )


def accept(lst: Listener, ack: Segment, peer: Hashable, now: float) -> Connection:
    conn = lst.receive_datagram(from_client(ack), peer, now)
    assert isinstance(conn, Connection)
    assert replies(lst) == []
    return conn


# ------------------------------------------------------------- the cookie itself
@pytest.mark.parametrize(
    ("mss", "remembered"),
    [
        (None, 536),
        (1460, 1460),
        (1459, 1452),
        (1380, 1380),
        (9000, 8952),
        (65535, 65487),
        (100, 44),
        (10, 44),
    ],
)
def test_cookie_mss_rounds_down_to_table_rfc4987_3_6(mss: int | None, remembered: int) -> None:
    """RFC 4987 3.6: the cookie keeps the MSS as an index in a small table, the largest
    entry not above the peer's (RFC 9293 3.7.1: 536 without the option)."""
    assert MSS_TABLE[mss_index(mss)] == remembered
    assert len(MSS_TABLE) == 16 and list(MSS_TABLE) == sorted(MSS_TABLE)


def test_cookie_layout_and_check_round_trip_rfc4987_3_6() -> None:
    """Low 4 bits: MSS index; next 2: the 64 s counter mod 4; the rest: the MAC.
    check() gives back the MSS and options the SYN offered."""
    cookies = SynCookies(SECRET)
    syn = replace(
        client_syn(mss=1380, wscale=9, sack=False), src_port=CLIENT_PORT, dst_port=SERVER_PORT
    )
    cookie = cookies.make(syn, "A", 3 * COOKIE_PERIOD + 1, timestamps=True)
    assert cookie & 0xF == MSS_TABLE.index(1380)
    assert (cookie >> 4) & 3 == 3
    ack = replace(syn, seq=RCV, ack=seq_add(cookie, 1), flags=ACK, ts_ecr=0x40 | 9)
    options = cookies.check(ack, "A", 3 * COOKIE_PERIOD + 2, timestamps=True)
    assert options is not None
    assert (options.mss, options.wscale, options.sack_permitted, options.timestamps) == (
        1380,
        9,
        False,
        True,
    )
    assert (
        SynCookies(b"another secret").check(ack, "A", 3 * COOKIE_PERIOD + 2, timestamps=True)
        is None
    )


def test_cookie_timestamp_bits_layout_rfc7323() -> None:
    """Linux's layout in TSval: 4 bits of window scale (15: none), 1 bit of SACK;
    a shift above 14 is taken as 14 (RFC 7323 2.3)."""
    assert ts_option_bits(None, False) == 0x0F
    assert ts_option_bits(0, True) == 0x10
    assert ts_option_bits(7, True) == 0x17
    assert ts_option_bits(20, False) == 14


@pytest.mark.parametrize("ts_val", [0, 31, 32, 1000, 2**32 - 1, 2**32 - 40])
@pytest.mark.parametrize("bits", [0, 0x0F, 0x17, 0x1F])
def test_cookie_tsval_never_ahead_of_clock_rfc7323_5_3(ts_val: int, bits: int) -> None:
    """The stamped TSval is at most 31 ticks behind the clock and never ahead of it,
    so the connection's later TSvals never look old to the peer's PAWS."""
    stamped = stamp_ts_val(ts_val, bits)
    assert stamped & TS_OPTION_MASK == bits
    assert 0 <= seq_sub(ts_val, stamped) < 32


def test_cookie_secret_must_suit_blake2b() -> None:
    with pytest.raises(ValueError):
        SynCookies(b"")
    with pytest.raises(ValueError):
        SynCookies(bytes(65))


# ------------------------------------------------------------ SYN: stateless answer
def test_backlog_full_syn_gets_cookie_and_no_state_rfc4987_3_6() -> None:
    """RFC 4987 3.6 (default mode, like Linux's tcp_syncookies=1): past the backlog a
    SYN gets the SYN-ACK <SEQ=cookie><ACK=SEG.SEQ+1> and nothing is kept.  Without
    timestamps there is nowhere to keep window scale and SACK: neither is offered."""
    lst = cookie_listener(backlog=2, syn_cookies=None)
    for peer in ("A", "B"):
        assert lst.receive_datagram(from_client(client_syn(ts=None)), peer, 0.0) is not None
    answer = cookie_syn_ack(lst, client_syn(ts=None), "C", 1.0)
    syn = client_syn(ts=None)
    syn.src_port, syn.dst_port = CLIENT_PORT, SERVER_PORT
    cookie = SynCookies(SECRET).make(syn, "C", 1.0, timestamps=False)
    assert answer == to_client(seg(cookie, RCV, SYN | ACK, window=0xFFFF, mss=OUR_MSS))
    assert cookie != ISN
    assert lst.half_open == 2
    assert (lst.stats.syn_cookies_sent, lst.stats.syns_dropped_backlog_full) == (1, 0)
    assert lst.stats.connections_created == 2


def test_syn_flood_of_10000_spoofed_peers_keeps_no_state_rfc4987_3_6() -> None:
    """RFC 4987 3.6: "the server maintains no state for half-open connections".
    10,000 SYNs from distinct spoofed addresses and ports leave the backlog where it
    was, every container of the Listener at its size, and memory where it was."""
    lst = cookie_listener(backlog=2, syn_cookies=None)
    for peer in ("A", "B"):
        lst.receive_datagram(from_client(client_syn()), peer, 0.0)
    flood = [
        (
            encode(replace(client_syn(i * 7919), src_port=1024 + i, dst_port=SERVER_PORT)),
            (f"10.{i >> 16}.{(i >> 8) & 255}.{i & 255}", 1024 + i),
        )
        for i in range(10_100)
    ]

    def syn_flood(datagrams: Sequence[tuple[bytes, Hashable]]) -> None:
        for n, (data, peer) in enumerate(datagrams):
            assert lst.receive_datagram(data, peer, 1.0 + n / 1000) is None
            assert len(lst.datagrams_to_send()) == 1

    def sizes() -> dict[str, int]:
        return {k: len(v) for k, v in vars(lst).items() if hasattr(v, "__len__")}

    syn_flood(flood[:100])  # warm up: lazily built caches are not state
    gc.collect()
    before, before_sizes = sys.getallocatedblocks(), sizes()
    syn_flood(flood[100:])
    gc.collect()
    # One object kept per peer would be 10,000 blocks at least.
    assert sys.getallocatedblocks() - before < 500
    assert sizes() == before_sizes
    assert lst.half_open == 2
    assert lst.stats.syn_cookies_sent == 10_100


def test_cookies_false_drops_syns_past_backlog() -> None:
    """syn_cookies=False: past the backlog SYNs are dropped silently, as before."""
    lst = cookie_listener(backlog=1, syn_cookies=False)
    assert lst.receive_datagram(from_client(client_syn()), "A", 0.0) is not None
    assert lst.receive_datagram(from_client(client_syn()), "B", 0.0) is None
    assert replies(lst) == []
    assert (lst.stats.syns_dropped_backlog_full, lst.stats.syn_cookies_sent) == (1, 0)


def test_cookies_default_only_past_backlog_rfc4987_3_6() -> None:
    """syn_cookies=None: within the backlog a SYN makes an ordinary half-open
    connection; once a place frees up, SYNs get one again."""
    lst = cookie_listener(backlog=1, syn_cookies=None)
    a = lst.receive_datagram(from_client(client_syn()), "A", 0.0)
    assert a is not None and lst.half_open == 1
    syn_ack = cookie_syn_ack(lst, client_syn(), "B", 0.0)
    b = accept(lst, ack_of(syn_ack), "B", 0.1)
    assert b.state is State.ESTABLISHED
    [a_syn_ack] = sent(a, 0.0)
    a.receive_datagram(from_client(ack_of(a_syn_ack)), 0.1)
    assert a.state is State.ESTABLISHED and lst.half_open == 0
    c = lst.receive_datagram(from_client(client_syn()), "C", 0.2)
    assert c is not None and c.state is State.SYN_RECEIVED
    assert lst.stats.syn_cookies_sent == 1 and lst.stats.connections_created == 3


def test_retransmitted_syn_gets_another_cookie_syn_ack_rfc4987_3_6() -> None:
    """No state: a retransmitted SYN (the SYN-ACK was lost) is simply answered again,
    with the same cookie within the same 64 s period."""
    lst = cookie_listener(syn_cookies=True)
    first = cookie_syn_ack(lst, client_syn(ts=None), "A", 0.0)
    again = cookie_syn_ack(lst, client_syn(ts=None), "A", 1.0)
    assert again == first
    assert lst.half_open == 0 and lst.stats.syn_cookies_sent == 2
    conn = accept(lst, ack_of(again), "A", 1.1)
    assert conn.state is State.ESTABLISHED


def test_retransmitted_syn_across_periods_either_cookie_completes_rfc4987_3_6() -> None:
    lst = cookie_listener(syn_cookies=True)
    first = cookie_syn_ack(lst, client_syn(), "A", COOKIE_PERIOD - 0.5)
    again = cookie_syn_ack(lst, client_syn(), "A", COOKIE_PERIOD + 0.5)
    assert again.seq != first.seq
    for syn_ack in (first, again):
        assert accept(lst, ack_of(syn_ack), "A", COOKIE_PERIOD + 1).state is State.ESTABLISHED


# ------------------------------------------------------------- ACK: the connection
def test_cookie_ack_with_timestamps_restores_wscale_sack_rfc7323_rfc4987_3_6() -> None:
    """With timestamps the SYN-ACK offers what a connection would (MSS, SACK-permitted,
    timestamps, window scale); the peer's window scale and SACK-permitted ride in the
    low bits of our TSval and come back in TSecr.  The ACK makes an ESTABLISHED
    connection (RFC 9293 3.10.7.4 fifth) with MSS from the table, the peer's shift,
    SACK and timestamps."""
    lst = cookie_listener()
    syn_ack = cookie_syn_ack(lst, client_syn(mss=1460, wscale=7, sack=True), "A", 0.0)
    assert (syn_ack.ack, syn_ack.mss, syn_ack.sack_permitted) == (RCV, OUR_MSS, True)
    assert syn_ack.wscale is not None and syn_ack.ts_ecr == PEER_TS
    assert syn_ack.ts_val is not None and syn_ack.ts_val & TS_OPTION_MASK == 0x17

    conn = accept(lst, ack_of(syn_ack, window=100), "A", 0.125)
    assert conn.state is State.ESTABLISHED
    assert events(conn) == [Connected()]
    assert conn.iss == syn_ack.seq and conn.irs == PEER_ISN and conn.rcv_nxt == RCV
    assert (conn.local_port, conn.remote_port) == (SERVER_PORT, CLIENT_PORT)
    assert conn.peer_mss == 1460
    assert (conn.window_scaling, conn.snd_wscale, conn.rcv_wscale) == (True, 7, syn_ack.wscale)
    assert conn.sack_permitted and conn.timestamps_enabled
    assert conn.snd_wnd == 100 << 7
    assert sent(conn, 0.125) == [] and conn.next_timer() is None
    assert lst.half_open == 0
    assert (lst.stats.syn_cookies_accepted, lst.stats.connections_created) == (1, 1)
    # RFC 7323 (4.2): the handshake RTT comes from TSecr, off by at most the 31 ms
    # the option bits took from TSval.
    assert conn.rtt.srtt is not None and 0.125 <= conn.rtt.srtt < 0.125 + 0.032

    # RFC 7323 (4.3, 5.3): TS.Recent is the ACK's TSval, echoed; our clock goes on
    # from the SYN-ACK's, never behind it (the peer's PAWS would drop us).
    conn.send(b"hello")
    [data] = sent(conn, 0.25)
    assert data.ts_ecr == PEER_TS + 100
    assert data.ts_val is not None and 250 <= seq_sub(data.ts_val, syn_ack.ts_val) < 250 + 32


def test_cookie_ack_with_timestamps_no_wscale_offered_rfc7323_2_2() -> None:
    """A SYN without window scale (bits 15) and SACK: the connection has neither."""
    lst = cookie_listener()
    syn_ack = cookie_syn_ack(lst, client_syn(wscale=None, sack=False), "A", 0.0)
    assert syn_ack.wscale is None and not syn_ack.sack_permitted
    assert syn_ack.ts_val is not None and syn_ack.ts_val & TS_OPTION_MASK == 0x0F
    conn = accept(lst, ack_of(syn_ack), "A", 0.1)
    assert not conn.window_scaling and (conn.snd_wscale, conn.rcv_wscale) == (0, 0)
    assert not conn.sack_permitted and conn.timestamps_enabled


def test_cookie_ack_without_timestamps_has_no_wscale_no_sack_rfc4987_3_6() -> None:
    """Without timestamps the cookie keeps only the MSS: the SYN-ACK offered no
    window scale and no SACK, and the connection uses neither (as Linux).  When the
    SYN-ACK left is unknown: no RTT sample, RTO at its initial value (RFC 6298 2.1)."""
    lst = cookie_listener()
    syn_ack = cookie_syn_ack(lst, client_syn(mss=1300, ts=None), "A", 0.0)
    assert (syn_ack.wscale, syn_ack.sack_permitted, syn_ack.ts_val) == (None, False, None)
    conn = accept(lst, ack_of(syn_ack), "A", 0.125)
    assert conn.state is State.ESTABLISHED
    assert conn.peer_mss == 1232
    assert not (conn.window_scaling or conn.sack_permitted or conn.timestamps_enabled)
    assert conn.rtt.srtt is None and conn.rtt.rto == Config().initial_rto
    assert conn.min_rtt is None or conn.min_rtt > 0
    assert conn.next_timer() is None


def test_cookie_ack_echo_older_than_initial_rto_gives_no_rtt_sample_rfc6298_2_1() -> None:
    """The handshake's ACK was lost; the client's first data, sent 5 s later, still
    echoes the SYN-ACK's TSval.  A stateful listener would have retransmitted its
    SYN-ACK after the initial RTO and ignored that echo (RFC 7323 4.2, Karn): no
    sample here either, where it would have been 5 s."""
    lst = cookie_listener()
    syn_ack = cookie_syn_ack(lst, client_syn(), "A", 0.0)
    conn = accept(lst, ack_of(syn_ack, flags=ACK | PSH, data=b"late"), "A", 5.0)
    assert conn.state is State.ESTABLISHED and conn.timestamps_enabled
    assert conn.rtt.srtt is None and conn.rtt.rto == Config().initial_rto


def test_cookie_ack_data_is_delivered_rfc9293_3_10_7_4() -> None:
    """RFC 9293 3.10.7.4: text on the ACK that completes the handshake is processed
    (seventh step) -- the client's first data segment may be the cookie's ACK."""
    lst = cookie_listener()
    syn_ack = cookie_syn_ack(lst, client_syn(ts=None), "A", 0.0)
    conn = accept(lst, ack_of(syn_ack, flags=ACK | PSH, data=payload(100)), "A", 0.125)
    assert events(conn) == [Connected(), DataReceived(payload(100))]
    assert conn.rcv_nxt == RCV + 100
    # RFC 9293 3.8.6.3: acknowledged within the delayed-ACK time.
    [ack] = fire(conn, 0.125 + Config().delayed_ack)
    assert (ack.flags, ack.seq, ack.ack) == (ACK, seq_add(syn_ack.seq, 1), RCV + 100)


def test_cookie_ack_with_fin_enters_close_wait_rfc9293_3_10_7_4() -> None:
    lst = cookie_listener()
    syn_ack = cookie_syn_ack(lst, client_syn(), "A", 0.0)
    conn = accept(lst, ack_of(syn_ack, flags=ACK | FIN | PSH, data=b"bye"), "A", 0.1)
    assert conn.state is State.CLOSE_WAIT
    assert events(conn) == [Connected(), DataReceived(b"bye"), EofReceived()]
    [ack] = sent(conn, 0.1)
    assert ack.ack == RCV + 4


def test_cookie_handshake_in_udp_checksum_mode() -> None:
    lst = cookie_listener(checksum="udp")
    assert lst.receive_datagram(from_client(client_syn(), checksum=False), "A", 0.0) is None
    [(syn_ack, _)] = replies(lst, checksum=False)
    assert syn_ack.flags == SYN | ACK
    data = from_client(ack_of(syn_ack), checksum=False)
    assert data[16:18] == b"\x00\x00"
    conn = lst.receive_datagram(data, "A", 0.1)
    assert conn is not None and conn.state is State.ESTABLISHED


# ---------------------------------------------------------------- invalid cookies
Tamper = Callable[[Segment], tuple[Segment, Hashable]]

TAMPERINGS: dict[str, Tamper] = {
    "wrong-ack-number": lambda a: (replace(a, ack=seq_add(a.ack, 1)), "A"),
    "other-peer-address": lambda a: (a, "B"),
    "other-peer-isn": lambda a: (replace(a, seq=seq_add(a.seq, 1)), "A"),
    "option-bits-changed": lambda a: (replace(a, ts_ecr=(a.ts_ecr or 0) ^ 0x10), "A"),
    "timestamps-dropped": lambda a: (replace(a, ts_val=None, ts_ecr=None), "A"),
}


@pytest.mark.parametrize("how", TAMPERINGS)
def test_invalid_cookie_ack_gets_reset_rfc9293_3_10_7_2(how: str) -> None:
    """RFC 4987 3.6 / RFC 9293 3.10.7.2 second: an ACK whose SEG.ACK-1 is no valid
    cookie for this peer, its ports and SEG.SEQ-1 (and the option bits it echoes)
    makes nothing and gets <SEQ=SEG.ACK><CTL=RST>."""
    lst = cookie_listener()
    syn_ack = cookie_syn_ack(lst, client_syn(), "A", 0.0)
    ack, peer = TAMPERINGS[how](ack_of(syn_ack))
    assert lst.receive_datagram(from_client(ack), peer, 0.1) is None
    assert replies(lst) == [(to_client(seg(ack.ack, 0, RST, window=0)), peer)]
    assert (lst.stats.syn_cookies_rejected, lst.stats.syn_cookies_accepted) == (1, 0)
    assert lst.stats.resets_sent == 1 and lst.half_open == 0


@pytest.mark.parametrize("port", ["src", "dst"])
def test_cookie_ack_from_other_port_gets_reset_rfc9293_3_10_7_2(port: str) -> None:
    lst = cookie_listener()
    syn_ack = cookie_syn_ack(lst, client_syn(), "A", 0.0)
    ack = ack_of(syn_ack)
    ports = {"src": (CLIENT_PORT + 1, SERVER_PORT), "dst": (CLIENT_PORT, SERVER_PORT + 1)}
    ack.src_port, ack.dst_port = ports[port]
    assert lst.receive_datagram(encode(ack), "A", 0.1) is None
    [(rst, _)] = replies(lst)
    assert rst.flags == RST and rst.seq == ack.ack
    assert lst.stats.syn_cookies_rejected == 1


@pytest.mark.parametrize(
    ("syn_at", "ack_at", "valid"),
    [
        (0.0, 63.999, True),
        (63.999, 64.0, True),  # the previous counter value
        (0.0, 127.999, True),
        (0.0, 128.0, False),  # two periods on: too old
        (0.0, 4 * COOKIE_PERIOD + 1, False),  # same counter bits, four periods on
        (64.0, 63.999, False),  # from the future
    ],
)
def test_cookie_lifetime_is_current_or_previous_counter_rfc4987_3_6(
    syn_at: float, ack_at: float, valid: bool
) -> None:
    """The counter ticks every 64 s; a cookie made at counter t checks out at t and
    t+1 only (Linux: MAX_SYNCOOKIE_AGE)."""
    lst = cookie_listener()
    syn_ack = cookie_syn_ack(lst, client_syn(), "A", syn_at)
    # Another peer's SYN keeps cookies live, so this ACK is checked.
    cookie_syn_ack(lst, client_syn(), "Z", ack_at)
    conn = lst.receive_datagram(from_client(ack_of(syn_ack)), "A", ack_at)
    assert (conn is not None) is valid
    assert lst.stats.syn_cookies_rejected == (0 if valid else 1)
    assert len(replies(lst)) == (0 if valid else 1)


def test_stray_ack_without_recent_cookie_is_not_checked_rfc9293_3_10_7_2() -> None:
    """Like Linux, ACKs are checked as cookies only while a cookie sent may still be
    live; otherwise a stray ACK just gets its RST, and costs no hashing."""
    lst = cookie_listener(syn_cookies=None)
    stray = seg(RCV, 123456, ACK)
    assert lst.receive_datagram(from_client(stray), "A", 0.0) is None
    assert [r.flags for r, _ in replies(lst)] == [RST]
    assert lst.stats.syn_cookies_rejected == 0
    lst = cookie_listener(syn_cookies=True)
    syn_ack = cookie_syn_ack(lst, client_syn(), "A", 0.0)
    assert lst.receive_datagram(from_client(ack_of(syn_ack)), "A", 2 * COOKIE_PERIOD) is None
    assert [r.flags for r, _ in replies(lst)] == [RST]
    assert lst.stats.syn_cookies_rejected == 0


@pytest.mark.parametrize(
    "flags", [SYN | ACK, RST | ACK, ACK | SYN | FIN], ids=["syn-ack", "rst-ack", "syn-fin-ack"]
)
def test_cookie_not_taken_from_syn_or_rst_rfc9293_3_10_7_2(flags: int) -> None:
    """Only an ACK without SYN or RST may return a cookie; the rest is handled as
    before (RST dropped, SYN-ACK reset)."""
    lst = cookie_listener()
    syn_ack = cookie_syn_ack(lst, client_syn(), "A", 0.0)
    ack = ack_of(syn_ack, flags=flags)
    assert lst.receive_datagram(from_client(ack), "A", 0.1) is None
    assert lst.stats.syn_cookies_accepted == 0 and lst.stats.syn_cookies_rejected == 0


# ---------------------------------------------------- over the simulated network
CLIENT = ("10.0.0.1", CLIENT_PORT)
SERVER = ("10.0.0.2", SERVER_PORT)


def cookie_pair(
    seed: int,
    impairment: Impairment,
    *,
    on_server_event: EventHook | None = None,
    **client_config: object,
) -> tuple[SimulatedNetwork, Connection, ConnectionHost, ListenerHost]:
    """A client Connection in SYN-SENT and a Listener that always answers with cookies."""
    net = SimulatedNetwork(seed, default=impairment)
    listener = Listener(
        Config(), local_port=SERVER_PORT, syn_cookies=True, cookies=SynCookies(SECRET)
    )
    server_host = net.attach(SERVER, ListenerHost(listener, SERVER, on_event=on_server_event))
    client = Connection(
        Config(**client_config),  # type: ignore[arg-type]
        isn=seed * 104729,
        local_port=CLIENT_PORT,
        remote_port=SERVER_PORT,
    )
    client_host = net.attach(CLIENT, ConnectionHost(client, CLIENT, SERVER))
    client.connect(net.now)
    return net, client, client_host, server_host


@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize("timestamps", [True, False], ids=["ts", "no-ts"])
def test_simnet_cookie_connection_100kb_both_ways_with_loss_rfc4987_3_6(
    seed: int, timestamps: bool
) -> None:
    """End to end, cookies always on, 5% loss each way: the client connects, 100 KB
    go each way, the client closes and the server closes on EOF: both end cleanly,
    and the server never held a half-open connection."""

    def server_reacts(conn: Connection, event: Event) -> None:
        if isinstance(event, Connected):
            conn.send(down)
        elif isinstance(event, EofReceived):
            net.call_later(0.0, conn.close)

    up, down = payload(100_000, 1), payload(100_000, 2)
    net, client, client_host, server_host = cookie_pair(
        seed,
        Impairment(loss=0.05, delay=0.02, jitter=0.005),
        on_server_event=server_reacts,
        timestamps=timestamps,
    )
    client.send(up)
    assert net.run(stop=lambda: client_host.received(client) == down, until=600) == "stopped"
    client.close()
    assert net.run(until=net.now + 600) == "idle"
    [server] = server_host.accepted
    assert client.is_closed and server.is_closed
    assert server_host.received(server) == up
    assert server_host.events_of(server, Connected) == [Connected()]
    assert server_host.events_of(server, ConnectionTerminated) == [ConnectionTerminated(None)]
    assert client_host.events_of(client, ConnectionTerminated) == [ConnectionTerminated(None)]
    stats = server_host.listener.stats
    assert (stats.syn_cookies_accepted, stats.connections_created) == (1, 1)
    assert server_host.listener.half_open == 0
    assert server.timestamps_enabled is timestamps


def test_simnet_cookie_syn_ack_lost_client_retransmits_syn_rfc4987_3_6() -> None:
    """The cookie SYN-ACK is lost; the client's retransmitted SYN (RFC 6298 timer)
    just gets another one, and the handshake completes."""
    net, client, _, server_host = cookie_pair(1, Impairment(delay=0.01))
    net.set_impairment(SERVER, CLIENT, Impairment(delay=0.01, blackholes=((0.0, 0.5),)))
    assert (
        net.run(
            stop=lambda: client.state is State.ESTABLISHED and bool(server_host.accepted), until=10
        )
        == "stopped"
    )
    stats = server_host.listener.stats
    assert (stats.syns_received, stats.syn_cookies_sent, stats.syn_cookies_accepted) == (2, 2, 1)
    assert server_host.accepted[0].state is State.ESTABLISHED


def test_simnet_cookie_ack_lost_first_data_completes_handshake_rfc4987_3_6() -> None:
    """The client's pure ACK of the cookie SYN-ACK is lost: the server knows nothing.
    The client's first data segment (SEQ = ISN+1, ACK = cookie+1) carries the cookie
    just as well and opens the connection, its data delivered."""
    net, client, _, server_host = cookie_pair(2, Impairment(delay=0.01))
    net.set_impairment(CLIENT, SERVER, Impairment(delay=0.01, blackholes=((0.015, 0.03),)))
    assert net.run(stop=lambda: client.state is State.ESTABLISHED, until=1) == "stopped"
    net.run(until=1.0)
    assert server_host.accepted == [] and net.stats(CLIENT, SERVER).blackholed == 1
    client.send(b"hello")
    assert net.run(stop=lambda: bool(server_host.accepted), until=2) == "stopped"
    [server] = server_host.accepted
    assert server.state is State.ESTABLISHED
    assert server_host.received(server) == b"hello"
