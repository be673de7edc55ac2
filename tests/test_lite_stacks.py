"""The local target's stack listing: one GET of the emulator's /copilot-doit/stacks (moto patch 19), and the
DescribeStacks walk when the emulator has no such answer (one started by an older copilot-doit, which a run
reuses): the same listing either way."""
from __future__ import annotations

import http.server
import threading

from copilot_doit.targets.local import lite

DESCRIBED = (b'<DescribeStacksResponse xmlns="http://cloudformation.amazonaws.com/doc/2010-05-15/"><DescribeStacksResult>'
             b"<Stacks><member><StackName>app-test</StackName><StackStatus>UPDATE_COMPLETE</StackStatus>"
             b"<Tags><member><Key>copilot-application</Key><Value>app</Value></member></Tags>"
             b"<Outputs><member><OutputKey>VpcId</OutputKey><OutputValue>vpc-1</OutputValue></member></Outputs>"
             b"<CreationTime>2026-11-29T10:00:00.5Z</CreationTime></member>"
             b"<member><StackName>app-test-old</StackName><StackStatus>DELETE_COMPLETE</StackStatus></member></Stacks>"
             b"</DescribeStacksResult></DescribeStacksResponse>")
LISTED = {"app-test": {"status": "UPDATE_COMPLETE", "tags": {"copilot-application": "app"}, "outputs": {"VpcId": "vpc-1"},
                       "parameters": {}, "updated": "2026-11-29T10:00:00.5Z"}}


def emulator(with_listing: bool):
    seen = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def _answer(self, status, body, kind):
            self.send_response(status)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self):
            seen.append(("GET", self.path))
            if with_listing and self.path.startswith("/copilot-doit/stacks?"):
                import json
                rows = [{"name": "app-test", "status": "UPDATE_COMPLETE", "tags": [["copilot-application", "app"]],
                         "outputs": [["VpcId", "vpc-1"]], "parameters": [], "updated": "2026-11-29T10:00:00.5Z"},
                        {"name": "app-test-old", "status": "DELETE_COMPLETE", "tags": [], "outputs": [],
                         "parameters": [], "updated": ""}]
                return self._answer(200, json.dumps({"stacks": rows}).encode(), "application/json")
            return self._answer(404, b"<html>not found</html>", "text/html")   # moto's answer to a path it lacks

        def do_POST(self):
            self.rfile.read(int(self.headers["Content-Length"]))
            seen.append(("POST", self.path))
            return self._answer(200, DESCRIBED, "text/xml")

        def log_message(self, *a):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}", seen


def test_one_answer_when_the_emulator_lists_its_stacks():
    server, url, seen = emulator(with_listing=True)
    try:
        assert lite.describe_stacks(url, "us-east-1", account="123456789012") == LISTED
        assert [m for m, _ in seen] == ["GET"]
        assert "account=123456789012" in seen[0][1] and "region=us-east-1" in seen[0][1]
    finally:
        server.shutdown()


def test_an_emulator_without_the_listing_is_walked():
    server, url, seen = emulator(with_listing=False)
    try:
        assert lite.describe_stacks(url, "us-east-1", account="123456789012") == LISTED
        assert [m for m, _ in seen] == ["GET", "POST"]
    finally:
        server.shutdown()
