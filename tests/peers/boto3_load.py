"""boto3, configured only by the container-credentials variables and AWS_ENDPOINT_URL, calling
ec2:DescribeInstances through hoopguard back to back for SECONDS (first argument, default 10):
the load under which the crash test kills the gateway. Errors (a refusal, the gateway gone) are
counted, not raised. Prints {"calls": N, "errors": M}.
"""
import json
import sys
import time

import boto3
from botocore.config import Config

seconds = float(sys.argv[1]) if len(sys.argv) > 1 else 10.0
ec2 = boto3.client("ec2", config=Config(retries={"max_attempts": 1}))
calls = errors = 0
end = time.time() + seconds
while time.time() < end:
    try:
        ec2.describe_instances()
    except Exception:  # noqa: BLE001 - every failure is just counted
        errors += 1
    calls += 1
print(json.dumps({"calls": calls, "errors": errors}))
