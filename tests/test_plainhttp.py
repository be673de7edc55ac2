"""plainhttp: one HTTP/1.1 exchange without http.client (the no-op path's calls to local services)."""
from __future__ import annotations

import socket
import subprocess
import sys
import threading

import pytest

from copilot_doit import plainhttp


def test_content_length_chunked_head_and_no_framing():
    r = plainhttp.parse(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}")
    assert (r.status, r.headers["content-type"], r.body) == (200, "application/json", b"{}")
    r = plainhttp.parse(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2;x=1\r\nde\r\n0\r\n\r\n")
    assert r.body == b"abcde"
    r = plainhttp.parse(b"HTTP/1.1 200 OK\r\nContent-Length: 512\r\nDocker-Content-Digest: sha256:ab\r\n\r\n", "HEAD")
    assert (r.body, r.headers["docker-content-digest"]) == (b"", "sha256:ab")
    assert plainhttp.parse(b"HTTP/1.0 404 Not Found\r\n\r\nnope").body == b"nope"
    assert plainhttp.parse(b"HTTP/1.1 200 OK\r\nSet-Cookie: a\r\nset-cookie: b\r\n\r\n", "HEAD").headers["set-cookie"] == "a, b"


@pytest.mark.parametrize("raw", [b"", b"HTTP/1.1 200 OK\r\nContent-Le", b"SSH-2.0-OpenSSH\r\n\r\n",
                                 b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort",
                                 b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nab",
                                 b"HTTP/1.1 200 OK\r\nno colon here\r\n\r\n"])
def test_a_cut_or_malformed_answer_is_an_io_error(raw):
    with pytest.raises(OSError):
        plainhttp.parse(raw)


def _serve_once(listener: socket.socket, answer: bytes, seen: list) -> None:
    conn, _ = listener.accept()
    with conn:
        data = b""
        while b"\r\n\r\n" not in data:
            data += conn.recv(4096)
        head, _, body = data.partition(b"\r\n\r\n")
        length = next((int(line.split(b":")[1]) for line in head.split(b"\r\n") if line.lower().startswith(b"content-length")), 0)
        while len(body) < length:
            body += conn.recv(4096)
        seen.append((head.decode(), body))
        conn.sendall(answer)


def test_a_round_trip_over_tcp_and_over_a_unix_socket(tmp_path):
    answer = b"HTTP/1.1 201 Created\r\nContent-Length: 5\r\n\r\nhello"
    tcp = socket.create_server(("127.0.0.1", 0))
    seen: list = []
    t = threading.Thread(target=_serve_once, args=(tcp, answer, seen))
    t.start()
    r = plainhttp.request("POST", "/x?a=1", host="127.0.0.1", port=tcp.getsockname()[1], body=b"Action=Go",
                          headers={"Content-Type": "application/x-www-form-urlencoded"})
    t.join(5)
    tcp.close()
    assert (r.status, r.body) == (201, b"hello")
    head, body = seen[0]
    assert head.startswith("POST /x?a=1 HTTP/1.1\r\n") and "Connection: close" in head and body == b"Action=Go"

    path = str(tmp_path / "engine.sock")
    unix = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    unix.bind(path)
    unix.listen(1)
    t = threading.Thread(target=_serve_once, args=(unix, b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n", seen))
    t.start()
    r = plainhttp.request("GET", "/images/x/json", unix_socket=path)
    t.join(5)
    unix.close()
    assert (r.status, r.body) == (404, b"")


def test_a_peer_that_never_answers_times_out():
    listener = socket.create_server(("127.0.0.1", 0))   # accepts (backlog) but never answers
    try:
        with pytest.raises(socket.timeout):
            plainhttp.request("GET", "/", host="127.0.0.1", port=listener.getsockname()[1], read_timeout=0.3)
    finally:
        listener.close()


def test_the_no_op_modules_load_neither_http_client_nor_ssl():
    code = ("import sys; import copilot_doit.engine, copilot_doit.targets.local.lite; "
            "print(sorted(m for m in ('http.client', 'ssl', 'email.parser', 'encodings.idna') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]", out


def _answer_and_hold(listener: socket.socket, answer: bytes, closed_by_client: list) -> None:
    """Answer, then keep the connection open until the client closes it (werkzeug, the emulator's server,
    closed ~10 ms after its answer: a client waiting for the close paid that on every call)."""
    conn, _ = listener.accept()
    with conn:
        conn.settimeout(10)
        data = b""
        while b"\r\n\r\n" not in data:
            data += conn.recv(4096)
        conn.sendall(answer)
        try:
            closed_by_client.append(conn.recv(1) == b"")
        except OSError:
            closed_by_client.append(False)


@pytest.mark.parametrize("method,answer,body", [
    ("GET", b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello", b"hello"),
    ("GET", b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", b""),
    ("HEAD", b"HTTP/1.1 200 OK\r\nContent-Length: 512\r\nDocker-Content-Digest: sha256:ab\r\n\r\n", b""),
    ("GET", b"HTTP/1.1 204 No Content\r\n\r\n", b""),
])
def test_a_framed_answer_ends_where_its_framing_says_not_at_the_close(method, answer, body):
    listener = socket.create_server(("127.0.0.1", 0))
    closed: list = []
    t = threading.Thread(target=_answer_and_hold, args=(listener, answer, closed))
    t.start()
    try:
        # The peer never closes first: waiting for its close would end in socket.timeout.
        r = plainhttp.request(method, "/x", host="127.0.0.1", port=listener.getsockname()[1], read_timeout=3)
    finally:
        t.join(15)
        listener.close()
    assert (r.status, r.body) == (int(answer[9:12]), body)
    assert closed == [True], "the client did not close the connection after the answer"


def test_an_answer_without_length_still_ends_at_the_close_and_a_short_one_is_refused():
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    try:
        for answer, expect in [(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n", b"abc"),
                               (b"HTTP/1.0 200 OK\r\n\r\nuntil the close", b"until the close"),
                               (b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort", None)]:
            t = threading.Thread(target=_serve_once, args=(listener, answer, []))
            t.start()
            try:
                if expect is None:
                    with pytest.raises(plainhttp.ProtocolError):
                        plainhttp.request("GET", "/", host="127.0.0.1", port=port, read_timeout=3)
                else:
                    assert plainhttp.request("GET", "/", host="127.0.0.1", port=port, read_timeout=3).body == expect
            finally:
                t.join(5)
    finally:
        listener.close()
