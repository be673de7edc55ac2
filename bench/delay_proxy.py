"""A TCP proxy on 127.0.0.1 that adds a fixed delay to every request/response round trip (for P2L).

    python3 bench/delay_proxy.py UPSTREAM_HOST:PORT [--delay-ms 50] [--port 0] [--stats FILE]

Prints `listening 127.0.0.1:<port>` on stdout once ready. Every chunk read from one side is written to
the other side half the delay after it arrived (client->upstream +delay/2, upstream->client +delay/2), as a
link with that round-trip time would: a request and its response cost one full delay, and chunks are
scheduled by arrival time rather than slept one after another, so throughput is not cut.

New connections cost nothing extra by default (--connect-delay-ms 0): moto's server answers HTTP/1.0 style
and closes the connection after every response, so boto3 opens one connection per call here, where against
real AWS it keeps its pooled TLS connections alive. Charging a handshake per connection would bill every call
twice; the default charges every call exactly one round trip. Real AWS's first TLS handshake per client
(~2 round trips) is therefore not modelled: the proxy errs on the cheap side by about 2 x delay per client.

On SIGTERM/SIGINT it writes {"connections": N, "requests": N} to --stats (requests = client->upstream
chunks that started a new request after a response, i.e. round trips) and exits.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import signal
import sys

STATS = {"connections": 0, "requests": 0, "chunks_up": 0, "chunks_down": 0}


async def _pump(reader, writer, half: float, key: str, state: dict, side: str) -> None:
    loop = asyncio.get_running_loop()
    q: asyncio.Queue = asyncio.Queue()

    async def send():
        while True:
            due, data = await q.get()
            wait = due - loop.time()
            if wait > 0:
                await asyncio.sleep(wait)
            if data is None:
                try:
                    writer.write_eof()
                except (OSError, RuntimeError):
                    pass
                return
            writer.write(data)
            await writer.drain()

    sender = asyncio.create_task(send())
    try:
        while True:
            data = await reader.read(65536)
            STATS[key] += 1
            if data and side == "up" and state.get("last") != "up":
                STATS["requests"] += 1
            state["last"] = side
            await q.put((loop.time() + half, data or None))
            if not data:
                break
        await sender
    except (ConnectionError, OSError):
        sender.cancel()


async def handle(cr, cw, upstream: tuple[str, int], delay: float, connect_delay: float) -> None:
    STATS["connections"] += 1
    if connect_delay:
        await asyncio.sleep(connect_delay)  # the connection's handshake round trip(s)
    try:
        ur, uw = await asyncio.open_connection(*upstream)
    except OSError:
        cw.close()
        return
    state: dict = {}
    try:
        await asyncio.gather(_pump(cr, uw, delay / 2, "chunks_up", state, "up"),
                             _pump(ur, cw, delay / 2, "chunks_down", state, "down"))
    finally:
        for w in (uw, cw):
            try:
                w.close()
            except OSError:
                pass


async def main_async(args) -> None:
    host, port = args.upstream.rsplit(":", 1)
    upstream = (host, int(port))
    delay = args.delay_ms / 1000.0
    server = await asyncio.start_server(lambda r, w: handle(r, w, upstream, delay, args.connect_delay_ms / 1000.0), "127.0.0.1", args.port)
    print(f"listening 127.0.0.1:{server.sockets[0].getsockname()[1]}", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    async with server:
        await stop.wait()
    if args.stats:
        with open(args.stats, "w") as f:
            json.dump(STATS, f)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("upstream", help="HOST:PORT to forward to (the moto server)")
    ap.add_argument("--delay-ms", type=float, default=50.0, help="added per request/response round trip")
    ap.add_argument("--connect-delay-ms", type=float, default=0.0, help="added once per new connection")
    ap.add_argument("--port", type=int, default=0, help="listen port on 127.0.0.1 (0: a free one)")
    ap.add_argument("--stats", help="write connection/request counts here on exit")
    asyncio.run(main_async(ap.parse_args()))
    sys.exit(0)


if __name__ == "__main__":
    main()
