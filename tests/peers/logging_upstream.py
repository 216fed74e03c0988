"""An upstream that logs what reaches it: a small HTTP proxy in front of moto that writes one JSON
line per request it receives (method, target, headers, body SHA-256 and text) to LOG before
forwarding it to TARGET and relaying the answer. The attack tests read the log to see what
hoopguard let through.

Usage: logging_upstream.py PORT TARGET_URL LOG_FILE
"""
import hashlib
import http.client
import json
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

PORT = int(sys.argv[1])
TARGET = urlsplit(sys.argv[2])
LOG = sys.argv[3]
lock = threading.Lock()


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def body(self):
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            out = b""
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return out
                out += self.rfile.read(size)
                self.rfile.readline()
        n = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(n) if n else b""

    def handle_any(self):
        body = self.body()
        entry = {
            "method": self.command,
            "target": self.path,
            "headers": [[k.lower(), v] for k, v in self.headers.items()],
            "body_sha256": hashlib.sha256(body).hexdigest(),
            "body": body[:65536].decode("utf-8", "replace"),
        }
        with lock, open(LOG, "a") as f:
            f.write(json.dumps(entry) + "\n")
        conn = http.client.HTTPConnection(TARGET.hostname, TARGET.port, timeout=60)
        headers = {k: v for k, v in self.headers.items() if k.lower() != "transfer-encoding"}
        headers["Content-Length"] = str(len(body))
        conn.request(self.command, self.path, body=body, headers=headers)
        resp = conn.getresponse()
        data = resp.read()
        self.send_response(resp.status)
        for k, v in resp.getheaders():
            if k.lower() not in ("transfer-encoding", "content-length", "connection"):
                self.send_header(k, v)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)
        conn.close()

    do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = do_PATCH = handle_any


ThreadingHTTPServer(("127.0.0.1", PORT), Handler).serve_forever()
