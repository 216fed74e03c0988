"""boto3, configured only by the container-credentials variables and AWS_ENDPOINT_URL, calls AWS
through hoopguard. Prints one JSON object with what came back; with `tricks`, also sends the
header tricks (a signed X-Forwarded-Host, a signed Host of another server) and an oversized body;
with `presign`, only presigns (SigV4, locally) a GET of s3://team-bucket/big.bin; with
`virtual`, lists and reads team-bucket with virtual-host addressing.
"""
import json
import sys

import boto3
from botocore.config import Config

cfg = Config(retries={"max_attempts": 1})
out = {}
ddb = boto3.client("dynamodb", config=cfg)
if "presign" not in sys.argv and "virtual" not in sys.argv:
    sts = boto3.client("sts", config=cfg)
    out["arn"] = sts.get_caller_identity()["Arn"]
    out["item"] = ddb.get_item(TableName="notes", Key={"id": {"S": "1"}}).get("Item")


def error_of(call):
    try:
        call()
        return "no error"
    except Exception as e:  # the SDK's own rendering of hoopguard's refusal
        return str(e)


if "tricks" in sys.argv:
    def add(name, value):
        def hook(request, **_):
            request.headers[name] = value
        return hook

    forwarded = boto3.client("sts", config=cfg)
    forwarded.meta.events.register("before-sign.sts.*", add("X-Forwarded-Host", "evil.example"))
    out["x_forwarded_host"] = error_of(forwarded.get_caller_identity)

    host = boto3.client("sts", config=cfg)
    host.meta.events.register("before-sign.sts.*", add("Host", "evil.example"))
    try:
        out["host_trick_arn"] = host.get_caller_identity()["Arn"]
    except Exception as e:
        out["host_trick_arn"] = str(e)

    out["oversized"] = error_of(lambda: ddb.put_item(
        TableName="notes", Item={"id": {"S": "big"}, "blob": {"S": "x" * 200_000}}))
if "presign" in sys.argv:
    s3 = boto3.client("s3", config=Config(signature_version="s3v4", retries={"max_attempts": 1}))
    out["presigned"] = s3.generate_presigned_url(
        "get_object", Params={"Bucket": "team-bucket", "Key": "big.bin"}, ExpiresIn=300)
if "virtual" in sys.argv:
    # Virtual-host addressing, as SDKs do with AWS_ENDPOINT_URL=http://localhost:PORT: the bucket
    # is in the host name (team-bucket.localhost). This machine's resolver does not know
    # *.localhost, so those names are pointed at 127.0.0.1 here (resolution only).
    import os
    import socket

    real = socket.getaddrinfo

    def resolve(host, *a, **kw):
        if isinstance(host, str) and host.endswith(".localhost"):
            host = "127.0.0.1"
        return real(host, *a, **kw)

    socket.getaddrinfo = resolve
    endpoint = os.environ["AWS_ENDPOINT_URL"].replace("127.0.0.1", "localhost")
    s3 = boto3.client("s3", endpoint_url=endpoint,
                      config=Config(s3={"addressing_style": "virtual"}, retries={"max_attempts": 1}))
    listed = s3.list_objects_v2(Bucket="team-bucket")
    out["virtual_keys"] = sorted(o["Key"] for o in listed.get("Contents", []))
    out["virtual_size"] = len(s3.get_object(Bucket="team-bucket", Key="big.bin")["Body"].read())
print(json.dumps(out))
