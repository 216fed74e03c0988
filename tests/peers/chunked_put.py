"""Uploads an object through hoopguard with an `aws-chunked` body
(`STREAMING-UNSIGNED-PAYLOAD-TRAILER`, what current SDKs send over TLS), signed by botocore's own
S3 SigV4 signer with the pseudo-credentials from the container-credentials endpoint.

botocore only frames uploads this way over https, so this script frames the body itself (the
framing is plain: hex size, CRLF, data, CRLF, …, a zero chunk, the checksum trailer) and asks the
signer for the streaming payload mode. Usage: chunked_put.py ENDPOINT BUCKET KEY FILE
"""
import base64
import os
import sys
import zlib

import botocore.session
from botocore.auth import S3SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.httpsession import URLLib3Session

endpoint, bucket, key, path = sys.argv[1:5]
data = open(path, "rb").read()

framed = b""
for i in range(0, len(data), 64 * 1024):
    piece = data[i:i + 64 * 1024]
    framed += b"%x\r\n" % len(piece) + piece + b"\r\n"
crc = base64.b64encode(zlib.crc32(data).to_bytes(4, "big")).decode()
framed += b"0\r\nx-amz-checksum-crc32:" + crc.encode() + b"\r\n\r\n"


class StreamingTrailerAuth(S3SigV4Auth):
    def payload(self, request):
        return "STREAMING-UNSIGNED-PAYLOAD-TRAILER"


creds = botocore.session.get_session().get_credentials().get_frozen_credentials()
req = AWSRequest(
    method="PUT",
    url=f"{endpoint}/{bucket}/{key}",
    data=framed,
    headers={
        "Content-Encoding": "aws-chunked",
        "X-Amz-Decoded-Content-Length": str(len(data)),
        "X-Amz-Trailer": "x-amz-checksum-crc32",
        "Content-Length": str(len(framed)),
    },
)
StreamingTrailerAuth(creds, "s3", os.environ.get("AWS_DEFAULT_REGION", "us-east-1")).add_auth(req)
resp = URLLib3Session().send(req.prepare())
print(resp.status_code)
print(resp.text)
sys.exit(0 if resp.status_code == 200 else 1)
