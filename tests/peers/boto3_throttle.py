"""A runaway agent loop: boto3 (container-credentials variables and AWS_ENDPOINT_URL only) calls
`sts get-caller-identity` and `s3 list-objects-v2` N times each through hoopguard, with the SDK's
`standard` retry mode, and prints one JSON object: for every call, "ok" or the error code, how
many times the SDK retried it, and the Retry-After header of the last answer.

    boto3_throttle.py N BUCKET
"""
import json
import sys

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError

n, bucket = int(sys.argv[1]), sys.argv[2]
cfg = Config(retries={"mode": "standard", "max_attempts": 2})
sts = boto3.client("sts", config=cfg)
s3 = boto3.client("s3", config=cfg)


def attempt(call):
    try:
        r = call()
        return {"result": "ok", "retries": r["ResponseMetadata"].get("RetryAttempts", 0)}
    except ClientError as e:
        meta = e.response.get("ResponseMetadata", {})
        return {
            "result": e.response["Error"]["Code"],
            "message": e.response["Error"].get("Message", ""),
            "status": meta.get("HTTPStatusCode"),
            "retries": meta.get("RetryAttempts", 0),
            "retry_after": meta.get("HTTPHeaders", {}).get("retry-after"),
        }


out = {
    "sts": [attempt(sts.get_caller_identity) for _ in range(n)],
    "s3": [attempt(lambda: s3.list_objects_v2(Bucket=bucket)) for _ in range(n)],
}
print(json.dumps(out))
