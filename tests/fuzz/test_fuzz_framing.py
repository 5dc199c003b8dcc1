"""Fuzzing how a request reaches the real server: cut into fragments, as Content-Length or chunked.

However the bytes arrive on the socket — any split of head and body into
fragments (each its own send, Nagle off, so loopback delivers them apart),
chunked instead of a length, chunks of any size — the server answers exactly
as it answers the request sent whole: the same status and the same speech.
(Trickles slower than the read timeout are tests/e2e/test_slow_clients.py's.)
"""

from __future__ import annotations

import itertools
import json
import socket

from hypothesis import given
from hypothesis import strategies as st

from tests.fuzz import strategies as s
from tests.fuzz.conftest import FUZZ_SERVER, assert_no_crash_logged, headers_for


def _request(shot: s.Shot, dev_ca, *, chunked: bool, chunk_size: int) -> bytes:
    lines = [b"POST / HTTP/1.1", b"Host: fuzz", b"Connection: close"]
    lines += [f"{name}: {value}".encode() for name, value in headers_for(shot, dev_ca)]
    if not chunked:
        lines.append(f"Content-Length: {len(shot.body)}".encode())
        return b"\r\n".join(lines) + b"\r\n\r\n" + shot.body
    lines.append(b"Transfer-Encoding: chunked")
    body = b""
    for start in range(0, len(shot.body), chunk_size):
        piece = shot.body[start : start + chunk_size]
        body += f"{len(piece):x}\r\n".encode() + piece + b"\r\n"
    return b"\r\n".join(lines) + b"\r\n\r\n" + body + b"0\r\n\r\n"


def _exchange(url: str, data: bytes, cuts: list[int]) -> tuple[int, dict]:
    host, port = url.removeprefix("http://").split(":")
    points = sorted({c % (len(data) + 1) for c in cuts} | {0, len(data)})
    with socket.create_connection((host, int(port)), timeout=15) as sock:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        for start, end in itertools.pairwise(points):
            sock.sendall(data[start:end])
        reply = b""
        while chunk := sock.recv(65536):
            reply += chunk
    head, _, body = reply.partition(b"\r\n\r\n")
    return int(head.split()[1]), json.loads(body) if body else {}


def _speech(answer: dict) -> object:
    return answer.get("response", {}).get("outputSpeech") if "response" in answer else answer


def test_fragmented_delivery_is_answered_as_the_whole_request(fuzz_server, dev_ca):
    @FUZZ_SERVER
    @given(
        base=st.sampled_from(["routed intent", "launch"]),
        cuts=st.lists(st.integers(min_value=0, max_value=10_000), max_size=12),
        chunked=st.booleans(),
        chunk_size=st.integers(min_value=1, max_value=4096),
    )
    def fragmented(base, cuts, chunked, chunk_size):
        shot = s.Shot(body=s.encode(s.BASES[base]()))
        whole = _request(shot, dev_ca, chunked=False, chunk_size=chunk_size)
        expected = _exchange(fuzz_server.url, whole, [])
        data = _request(shot, dev_ca, chunked=chunked, chunk_size=chunk_size)
        status, answer = _exchange(fuzz_server.url, data, cuts)
        assert status == expected[0] == 200, answer
        assert _speech(answer) == _speech(expected[1])

    fragmented()
    assert_no_crash_logged(fuzz_server)
