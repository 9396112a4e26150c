"""`pgship serve` against hostile clients: half-sent requests, huge headers, connection floods.

Every test runs a real `pgship serve` process and talks to it over raw sockets on
loopback, as an attacker (or a broken client) would. No assertion is about time: a
test that waits for the server to close a connection waits with a generous bound
(``WAIT_S``), far beyond the small ``--header-timeout`` the server is given.
"""

from __future__ import annotations

import contextlib
import resource
import select
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.serving import ServeProcess, start_serve
from tests.toolkit import run_cli, wait_until

WAIT_S = 30.0  # how long a test waits for the server to act, at most (it acts within ~0.5 s)
LIVE = b"GET /health/live HTTP/1.1\r\nHost: 127.0.0.1\r\n"


@pytest.fixture
def serve(database_url, migrations) -> Iterator:
    migrations.write("001_users.sql", "CREATE TABLE users (id int);")
    assert run_cli("-d", database_url, "-m", str(migrations), "migrate").code == 0
    started: list[ServeProcess] = []

    def start(*extra: str, **popen: object) -> ServeProcess:
        server = start_serve(database_url, str(migrations), *extra, **popen)
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


def connect(server: ServeProcess) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=WAIT_S)
    return sock


def read_to_eof(sock: socket.socket) -> bytes:
    """Everything the server sends until it closes the connection (fails the test after WAIT_S)."""
    received = b""
    while chunk := sock.recv(65536):
        received += chunk
    return received


def read_response(sock: socket.socket) -> bytes:
    """One response (head and content-length body) from a connection that stays open."""
    received = b""
    while b"\r\n\r\n" not in received:
        chunk = sock.recv(65536)
        assert chunk, f"the server closed the connection mid-response: {received!r}"
        received += chunk
    head, _, body = received.partition(b"\r\n\r\n")
    length = next(
        int(line.split(b":")[1])
        for line in head.lower().split(b"\r\n")
        if line.startswith(b"content-length:")
    )
    while len(body) < length:
        chunk = sock.recv(65536)
        assert chunk, "the server closed the connection mid-body"
        body += chunk
    assert len(body) == length, "more bytes than one response"
    return head + b"\r\n\r\n" + body


def status_line(answer: bytes) -> str:
    return answer.split(b"\r\n", 1)[0].decode()


def probe_live(server: ServeProcess) -> str:
    with connect(server) as sock:
        sock.sendall(LIVE + b"Connection: close\r\n\r\n")
        return status_line(read_to_eof(sock))


def closed_by_server(sock: socket.socket) -> bool:
    """True when the server has closed (or answered and closed) this connection already."""
    readable, _, _ = select.select([sock], [], [], 0)
    return bool(readable)


def server_holds(server: ServeProcess, client: socket.socket) -> bool:
    """Whether the server process still has its end of ``client``'s connection open (/proc/net/tcp).

    A socket the process closed or aborted is gone, or left to the kernel (inode 0) to finish.
    """
    local = f"0100007F:{server.port:04X}"
    remote = f"0100007F:{client.getsockname()[1]:04X}"
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        if fields[1] == local and fields[2] == remote:
            return fields[9] != "0"
    return False


def peak_rss_kib(pid: int) -> int:
    line = next(x for x in Path(f"/proc/{pid}/status").read_text().splitlines() if x.startswith("VmHWM:"))
    return int(line.split()[1])


def open_files_limit(pid: int) -> tuple[int, int]:
    line = next(x for x in Path(f"/proc/{pid}/limits").read_text().splitlines() if x.startswith("Max open"))
    soft, hard = line.split()[3:5]
    return int(soft), int(hard)


# -- half-sent requests ----------------------------------------------------------------------
def test_a_half_sent_request_gets_408_and_the_connection_is_closed(serve):
    server = serve("--header-timeout", "0.5")
    with connect(server) as sock:
        sock.sendall(LIVE)  # no blank line: the head never ends
        answer = read_to_eof(sock)  # returns only because the server closed the connection
    assert status_line(answer) == "HTTP/1.1 408 Request Timeout"
    assert b"connection: close" in answer.lower()
    assert probe_live(server) == "HTTP/1.1 200 OK"


def test_a_connection_that_never_sends_a_byte_is_closed_without_an_answer(serve):
    server = serve("--header-timeout", "0.5")
    with connect(server) as sock:
        assert read_to_eof(sock) == b""


def test_a_request_trickled_a_line_at_a_time_is_closed_at_its_deadline_not_kept_alive_by_each_line(serve):
    server = serve("--header-timeout", "0.5")
    lines_sent = 0
    with connect(server) as sock:
        sock.sendall(LIVE)
        # one header line every 100 ms for up to WAIT_S: each line arrives well inside the timeout
        while lines_sent < WAIT_S * 10 and not closed_by_server(sock):
            sock.sendall(b"X-Slow: 1\r\n")
            lines_sent += 1
            select.select([sock], [], [], 0.1)
        assert closed_by_server(sock), "the server let a trickling client keep its connection"
        assert status_line(read_to_eof(sock)) == "HTTP/1.1 408 Request Timeout"
    assert lines_sent < WAIT_S * 10


def test_an_idle_keep_alive_connection_is_closed_after_its_answer(serve):
    server = serve("--header-timeout", "0.5")
    with connect(server) as sock:
        sock.sendall(LIVE + b"\r\n")
        assert status_line(read_response(sock)) == "HTTP/1.1 200 OK"
        sock.sendall(LIVE + b"\r\n")  # the connection is reusable...
        assert status_line(read_response(sock)) == "HTTP/1.1 200 OK"
        assert read_to_eof(sock) == b""  # ...and closed, silently, once idle past the deadline


def test_a_client_that_stops_reading_its_answers_is_cut_off(serve):
    server = serve("--header-timeout", "0.5")
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.settimeout(WAIT_S)
    sock.connect(("127.0.0.1", server.port))
    requests = 10_000  # pipelined; their answers (about 1 KiB each) fill every buffer on the way

    def send() -> None:
        with contextlib.suppress(OSError):  # cut off while sending
            sock.sendall(b"GET /health/database HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n" * requests)

    sender = threading.Thread(target=send, daemon=True)
    sender.start()
    try:
        wait_until(lambda: server_holds(server, sock), "the server accepting the connection", timeout=WAIT_S)
        wait_until(
            lambda: not server_holds(server, sock),
            "the server dropping a client that reads nothing",
            timeout=WAIT_S,
        )
        received = b""
        while chunk := sock.recv(1 << 20):  # what was already on its way, then the end
            received += chunk
        assert received.count(b"HTTP/1.1 200 OK") < requests
    finally:
        sock.close()
        sender.join(timeout=WAIT_S)
    assert probe_live(server) == "HTTP/1.1 200 OK"


# -- header size -----------------------------------------------------------------------------
@pytest.mark.parametrize("pieces", [1, 64], ids=["in one write", "in 64 writes"])
def test_a_head_over_64_kib_gets_431_and_just_under_is_served(serve, pieces):
    server = serve()
    header = b"X-Big: " + b"a" * (65 * 1024)
    with connect(server) as sock:
        step = len(header) // pieces + 1
        sock.sendall(LIVE)
        for start in range(0, len(header), step):
            sock.sendall(header[start : start + step])
        sock.sendall(b"\r\n\r\n")
        answer = read_to_eof(sock)
    assert status_line(answer) == "HTTP/1.1 431 Request Header Fields Too Large"

    with connect(server) as sock:
        sock.sendall(LIVE + b"X-Big: " + b"a" * (60 * 1024) + b"\r\nConnection: close\r\n\r\n")
        assert status_line(read_to_eof(sock)) == "HTTP/1.1 200 OK"


def test_a_big_head_after_a_normal_request_on_the_same_connection_gets_431(serve):
    server = serve()
    with connect(server) as sock:
        # two pipelined requests in one write: a small one, then one with a 100 KiB header
        sock.sendall(LIVE + b"\r\n" + LIVE + b"X-Big: " + b"a" * (100 * 1024) + b"\r\n\r\n")
        answer = read_to_eof(sock)
    first, _, second = answer.partition(b"HTTP/1.1 431 Request Header Fields Too Large")
    assert first.startswith(b"HTTP/1.1 200 OK") and b'"status":"pass"' in first  # answers in order
    assert second


def test_many_small_pipelined_requests_are_all_served_not_taken_for_one_big_head(serve):
    server = serve()
    pipelined = (LIVE + b"\r\n") * 3000 + LIVE + b"Connection: close\r\n\r\n"  # about 120 KiB
    cut = len(pipelined) - 30  # the server reads 100+ KiB of requests ending in half a head...
    with connect(server) as sock:
        sock.sendall(pipelined[:cut])
        first = sock.recv(65536)  # ...and answers (so it has read them) before the rest arrives
        sock.sendall(pipelined[cut:])
        answer = first + read_to_eof(sock)
    assert answer.count(b"HTTP/1.1 200 OK") == 3001 and b"HTTP/1.1 431" not in answer


def test_the_head_size_limit_can_be_changed(serve):
    server = serve("--max-header-size", "2048")
    with connect(server) as sock:
        sock.sendall(LIVE + b"X-Big: " + b"a" * 4096 + b"\r\n\r\n")
        assert status_line(read_to_eof(sock)) == "HTTP/1.1 431 Request Header Fields Too Large"
    assert probe_live(server) == "HTTP/1.1 200 OK"


def test_a_64_mib_header_is_refused_without_the_server_buffering_it(serve):
    server = serve()
    pid = server.process.pid
    before = peak_rss_kib(pid)
    piece = b"a" * (1 << 20)
    with connect(server) as sock:
        sock.sendall(LIVE + b"X-Huge: ")
        for _ in range(64):
            sock.sendall(piece)  # the server drains what follows its 431, so this does not block
        sock.sendall(b"\r\n\r\n")
        answer = read_to_eof(sock)
    assert status_line(answer) == "HTTP/1.1 431 Request Header Fields Too Large"
    growth_mib = (peak_rss_kib(pid) - before) / 1024
    # unguarded, the server's peak memory grew by over 100 MiB; the limit plus a read is < 1 MiB
    assert growth_mib < 16, f"the server's peak RSS grew by {growth_mib:.1f} MiB for one refused header"
    assert probe_live(server) == "HTTP/1.1 200 OK"


# -- connection floods -----------------------------------------------------------------------
def test_the_probe_answers_while_300_half_sent_requests_hold_their_connections(serve):
    server = serve("--header-timeout", "120")
    held = [connect(server) for _ in range(300)]
    try:
        for sock in held:
            sock.sendall(LIVE)  # a head that never ends
        for _ in range(3):
            assert probe_live(server) == "HTTP/1.1 200 OK"
        assert server.get("/health").status == 200
        assert not any(closed_by_server(sock) for sock in held)  # still held: answered beside them
    finally:
        for sock in held:
            sock.close()


def test_at_the_connection_cap_the_connection_waiting_longest_is_closed(serve):
    server = serve("--max-connections", "20", "--header-timeout", "120")
    held = []
    try:
        for _ in range(30):
            sock = connect(server)
            sock.sendall(LIVE)
            held.append(sock)
            # the server closes the oldest waiter as each connection over the cap arrives
        assert probe_live(server) == "HTTP/1.1 200 OK"
        oldest, newest = held[:10], held[-15:]
        for sock in oldest:
            assert status_line(read_to_eof(sock)) == "HTTP/1.1 408 Request Timeout"
        assert not any(closed_by_server(sock) for sock in newest)
    finally:
        for sock in held:
            sock.close()


# -- start-up ----------------------------------------------------------------------------------
def test_the_open_files_soft_limit_is_raised_to_the_hard_limit(serve):
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or hard <= 256:
        pytest.skip(f"needs a finite hard limit on open files above 256 (it is {hard})")

    def low_soft_limit() -> None:
        resource.setrlimit(resource.RLIMIT_NOFILE, (256, hard))

    server = serve(preexec_fn=low_soft_limit)
    assert open_files_limit(server.process.pid) == (hard, hard)


def test_with_a_low_hard_limit_on_open_files_the_probe_still_answers_a_flood(serve):
    def low_limits() -> None:
        resource.setrlimit(resource.RLIMIT_NOFILE, (128, 128))

    server = serve("--header-timeout", "120", preexec_fn=low_limits)
    assert open_files_limit(server.process.pid) == (128, 128)
    held = []
    try:
        for _ in range(200):  # more than the server could ever have open
            sock = connect(server)
            sock.sendall(LIVE)
            held.append(sock)
        assert probe_live(server) == "HTTP/1.1 200 OK"
        assert status_line(read_to_eof(held[0])) == "HTTP/1.1 408 Request Timeout"  # evicted
        assert not closed_by_server(held[-1])
    finally:
        for sock in held:
            sock.close()


@pytest.mark.parametrize(
    "option, value, message",
    [
        ("--header-timeout", "0", "argument --header-timeout: '0': must be at least 0.001 seconds"),
        ("--header-timeout", "nan", "argument --header-timeout: 'nan' is not a finite number of seconds"),
        (
            "--max-header-size",
            "100",
            "argument --max-header-size: '100': the size in bytes must be 1024 or more",
        ),
        (
            "--max-connections",
            "0",
            "argument --max-connections: '0': the number of connections must be 1 or more",
        ),
    ],
)
def test_limits_that_cannot_work_are_refused_before_serving(migrations, option, value, message):
    migrations.write("001_users.sql", "CREATE TABLE users (id int);")
    result = run_cli(
        "-d", "postgresql://nobody@127.0.0.1:9/none", "-m", str(migrations), "serve", option, value
    )
    assert result.code == 2 and message in result.output
