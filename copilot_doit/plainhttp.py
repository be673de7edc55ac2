"""One HTTP/1.1 exchange over a TCP or Unix socket, for the no-op path's calls to services on this machine:
the Docker engine's socket, the local target's moto server and registry (engine.py, targets/local/lite.py).

Why not http.client: importing it costs ~20-35 ms of a ~0.23 s no-op here (it imports email.parser,
email.message and ssl), and these calls need none of it — plain HTTP to a local peer, one request per
connection (`Connection: close`). A response framed by Content-Length (or one without a body: HEAD, 204,
304) ends where its framing says, not where the peer closes: the emulator's server (werkzeug) closes ~10 ms
after its answer, which was ~10 ms on every moto call of a no-op. Otherwise (chunked, no framing) the
response ends at the close, and chunked framing is checked against it. Hosts are passed to the socket as
bytes, so no `idna` codec is loaded.
"""
from __future__ import annotations

import socket

MAX_RESPONSE = 64 * 1024 * 1024   # a local peer's answer to a read-only call; more is a broken peer


class ProtocolError(OSError):
    """The peer's answer is not an HTTP/1.x response (cut short, malformed): an I/O failure like any other."""


class Response:
    __slots__ = ("status", "headers", "body")

    def __init__(self, status: int, headers: dict[str, str], body: bytes):
        self.status, self.headers, self.body = status, headers, body


def request(method: str, path: str, *, host: str = "localhost", port: int | None = None,
            unix_socket: str | None = None, body: bytes | None = None, headers: dict | None = None,
            connect_timeout: float = 5.0, read_timeout: float = 30.0) -> Response:
    """Send one request and read the whole response. `socket.timeout` when the peer does not answer within
    `read_timeout`; OSError (ProtocolError included) for any other failure."""
    if unix_socket is not None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(connect_timeout)
        try:
            sock.connect(unix_socket)
        except BaseException:
            sock.close()
            raise
    else:
        sock = socket.create_connection((host.encode("ascii"), port), timeout=connect_timeout)
    try:
        sock.settimeout(read_timeout)
        lines = [f"{method} {path} HTTP/1.1", f"Host: {host}" + (f":{port}" if port else ""),
                 "Connection: close", "Accept-Encoding: identity"]
        if body is not None:
            lines.append(f"Content-Length: {len(body)}")
        lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
        sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + (body or b""))
        return _read_response(sock, method)
    finally:
        sock.close()


def _read_response(sock: socket.socket, method: str) -> Response:
    """The response: up to the end its headers announce, else up to the peer's close. Its head is parsed
    once, as soon as it is in."""
    raw = bytearray()
    head = None   # (status, headers, where the body starts), once the headers are in
    end = None    # where the response ends: past MAX_RESPONSE when only the close says
    while end is None or len(raw) < end:
        data = sock.recv(65536)
        if not data:
            break    # _body tells a complete answer from one cut short
        raw += data
        if len(raw) > MAX_RESPONSE:
            raise ProtocolError(f"response larger than {MAX_RESPONSE} bytes")
        if head is None and (head_end := raw.find(b"\r\n\r\n")) >= 0:
            status, headers = _head(bytes(raw[:head_end]))
            head = (status, headers, head_end + 4)
            length = _framed_length(method, status, headers)
            end = MAX_RESPONSE + 1 if length is None else head_end + 4 + length
    if head is None:
        raise _no_head(raw)
    status, headers, body_start = head
    return _body(method, status, headers, bytes(raw[body_start:]))


def _framed_length(method: str, status: int, headers: dict[str, str]) -> int | None:
    """The body's length as the headers fix it (0 for a response that has none), or None when only the
    close ends it (chunked, no framing, or a Content-Length _body will judge)."""
    if _bodiless(method, status):
        return 0
    if "transfer-encoding" in headers:
        return None
    length = headers.get("content-length", "")
    return int(length) if length.isdigit() else None


def parse(raw: bytes, method: str = "GET") -> Response:
    """A complete response (its framing or the peer's close ended it)."""
    head, sep, rest = raw.partition(b"\r\n\r\n")
    if not sep:
        raise _no_head(raw)
    status, headers = _head(head)
    return _body(method, status, headers, rest)


def _no_head(raw: bytes) -> ProtocolError:
    return ProtocolError("the connection closed before the response's headers ended" if raw else
                         "the connection closed without a response")


def _head(head: bytes) -> tuple[int, dict[str, str]]:
    """(status, headers by lower-case name) of a response's head, without its blank line."""
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    version, _, status_rest = status_line.partition(" ")
    code = status_rest[:3]
    if not version.startswith("HTTP/1.") or not code.isdigit():
        raise ProtocolError(f"not an HTTP/1.x status line: {status_line[:80]!r}")
    headers: dict[str, str] = {}
    for line in header_lines:
        name, colon, value = line.partition(":")
        if not colon:
            raise ProtocolError(f"malformed header line: {line[:80]!r}")
        name = name.strip().lower()
        headers[name] = f"{headers[name]}, {value.strip()}" if name in headers else value.strip()
    return int(code), headers


def _bodiless(method: str, status: int) -> bool:
    return method == "HEAD" or status in (204, 304) or 100 <= status < 200


def _body(method: str, status: int, headers: dict[str, str], rest: bytes) -> Response:
    """The response, its body taken from `rest` (what came after the head) as its framing says."""
    if _bodiless(method, status):
        return Response(status, headers, b"")
    if "chunked" in headers.get("transfer-encoding", "").lower():
        return Response(status, headers, _dechunk(rest))
    if "content-length" in headers:
        try:
            length = int(headers["content-length"])
        except ValueError:
            raise ProtocolError(f"bad Content-Length {headers['content-length']!r}") from None
        if len(rest) < length:
            raise ProtocolError(f"the body was cut short ({len(rest)} of {length} bytes)")
        return Response(status, headers, rest[:length])
    return Response(status, headers, rest)   # no framing: the body is what came before the close


def _dechunk(data: bytes) -> bytes:
    out, pos = [], 0
    while True:
        end = data.find(b"\r\n", pos)
        if end < 0:
            raise ProtocolError("a chunked body was cut short")
        try:
            size = int(data[pos:end].split(b";", 1)[0].strip(), 16)
        except ValueError:
            raise ProtocolError(f"bad chunk size {data[pos:end][:20]!r}") from None
        start = end + 2
        if size == 0:
            return b"".join(out)
        if len(data) < start + size + 2:
            raise ProtocolError("a chunked body was cut short")
        out.append(data[start:start + size])
        pos = start + size + 2
