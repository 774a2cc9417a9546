#!/usr/bin/env python3
"""A local webhook target for the end-to-end tests: appends each POST as one JSON line
{"path", "signature", "raw", "body"} to the file named by argv[2], listening on 127.0.0.1:argv[1]."""
import http.server
import json
import sys


class Handler(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", "0"))).decode()
        with open(sys.argv[2], "a") as f:
            f.write(json.dumps({"path": self.path, "signature": self.headers.get("X-Portalwatch-Signature", ""),
                                "raw": body, "body": json.loads(body)}) + "\n")
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args):
        pass


http.server.HTTPServer(("127.0.0.1", int(sys.argv[1])), Handler).serve_forever()
