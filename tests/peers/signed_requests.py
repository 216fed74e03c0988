"""Sends requests exactly as given, signed by botocore with hoopguard's pseudo-credentials (fetched
from its container-credentials endpoint, as any SDK does): the attack tests' client.

stdin: one JSON request per line:
  {"service", "method", "path", "query", "headers": [[name, value], ...], "body": text,
   "host": the Host to sign (default: the endpoint's), "region": (default us-east-1),
   "unsigned_headers": [[name, value], ...] added after signing}
stdout: one JSON line per request: {"status", "body"}.
The path and query are sent byte for byte as written (nothing re-encodes them).
"""
import http.client
import json
import os
import sys
from urllib.parse import urlsplit

import botocore.session
from botocore.auth import S3SigV4Auth, SigV4Auth
from botocore.awsrequest import AWSRequest

creds = botocore.session.get_session().get_credentials().get_frozen_credentials()
endpoint = urlsplit(os.environ["AWS_ENDPOINT_URL"])

for line in sys.stdin:
    spec = json.loads(line)
    host = spec.get("host", endpoint.netloc)
    target = spec.get("path", "/")
    if spec.get("query"):
        target += "?" + spec["query"]
    body = spec.get("body", "").encode()
    req = AWSRequest(method=spec["method"], url=f"http://{host}{target}", data=body)
    for k, v in spec.get("headers", []):
        req.headers[k] = v
    auth = S3SigV4Auth if spec["service"] == "s3" else SigV4Auth
    auth(creds, spec["service"], spec.get("region", "us-east-1")).add_auth(req)
    conn = http.client.HTTPConnection(endpoint.hostname, endpoint.port, timeout=30)
    conn.putrequest(spec["method"], target, skip_host=True, skip_accept_encoding=True)
    conn.putheader("Host", host)
    for k, v in req.headers.items():
        conn.putheader(k, v)
    for k, v in spec.get("unsigned_headers", []):
        conn.putheader(k, v)
    conn.putheader("Content-Length", str(len(body)))
    conn.endheaders(body if body else None)
    resp = conn.getresponse()
    text = resp.read().decode("utf-8", "replace")
    print(json.dumps({"status": resp.status, "body": text}), flush=True)
    conn.close()
