#!/usr/bin/env python3
"""A lab web server that says who it is (the seed's Web1/Web2).

GET /                     200, body "<name>\n"
GET /health_check.html    200 "ok\n"; 500 while the file STATE_DIR/health_fail exists
GET /slow?seconds=N       200, streams "<name> <i>\n" every 100 ms for N seconds
anything else             404
"""

import argparse
import os
import sys
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class Handler(BaseHTTPRequestHandler):
    server_version = "testlab-web"

    def do_GET(self):
        url = urllib.parse.urlsplit(self.path)
        if url.path == "/":
            self.reply(200, f"{self.server.name}\n")
        elif url.path == "/health_check.html":
            if os.path.exists(os.path.join(self.server.state_dir, "health_fail")):
                self.reply(500, "failing on purpose\n")
            else:
                self.reply(200, "ok\n")
        elif url.path == "/slow":
            query = urllib.parse.parse_qs(url.query)
            try:
                seconds = float(query.get("seconds", ["1"])[0])
            except ValueError:
                self.reply(400, "seconds must be a number\n")
                return
            self.send_response(200)
            self.send_header("Content-Type", "text/plain")
            self.end_headers()
            ticks = max(1, int(seconds * 10))
            started = time.monotonic()
            for i in range(ticks):
                self.wfile.write(f"{self.server.name} {i}\n".encode())
                self.wfile.flush()
                # Pace against the start time so the stream lasts `seconds`.
                delay = started + (i + 1) / 10 - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
        else:
            self.reply(404, "not found\n")

    def reply(self, status, body):
        data = body.encode()
        self.send_response(status)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, fmt, *args):
        sys.stderr.write("%s %s\n" % (self.address_string(), fmt % args))


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--name", required=True)
    parser.add_argument("--port", type=int, default=80)
    parser.add_argument("--state-dir", required=True)
    args = parser.parse_args()
    ThreadingHTTPServer.daemon_threads = True
    ThreadingHTTPServer.request_queue_size = 128
    server = ThreadingHTTPServer(("0.0.0.0", args.port), Handler)
    server.name = args.name
    server.state_dir = args.state_dir
    sys.stderr.write(f"{args.name} serving on 0.0.0.0:{args.port}\n")
    sys.stderr.flush()
    server.serve_forever()


if __name__ == "__main__":
    main()
