#!/usr/bin/env python3
"""Records real requests, serialized by botocore itself, for the classifier test
(hoopguard-core/tests/data/aws-requests.jsonl): for each operation of a set of services covering
all six protocols, the parameters are filled from the operation's input shape, the client builds
and signs the request, and a `before-send` hook captures it instead of sending it.

One JSON line per request: service (the signing name from the credential scope), operation (the
name botocore sent), method, path, query, the headers the classifier reads, and the body (base64).
Usage: scripts/record-aws-requests.py > hoopguard-core/tests/data/aws-requests.jsonl
(with the test venv's python: target/peers/venv/bin/python)
"""
import base64
import datetime
import json
import sys
from urllib.parse import urlsplit

import boto3
from botocore.config import Config

SERVICES = {
    # query
    "sts": None, "iam": 60, "sns": None,
    # ec2
    "ec2": 120,
    # json
    "dynamodb": None, "dynamodbstreams": None, "secretsmanager": None, "ssm": 60, "kms": None,
    "sqs": None,
    # rest-json
    "lambda": None, "eks": None,
    # rest-xml
    "s3": None, "route53": None,
    # rpc-v2-cbor
    "cloudwatch": None,
}


class Captured(Exception):
    pass


def value(shape, depth=0):
    t = shape.type_name
    if t == "structure":
        if depth > 4:
            return {}
        return {n: value(m, depth + 1) for n, m in shape.members.items() if n in shape.required_members}
    if t == "list":
        return [value(shape.member, depth + 1)] if depth < 4 else []
    if t == "map":
        return {"k": value(shape.value, depth + 1)} if depth < 4 else {}
    if t == "string":
        if shape.enum:
            return shape.enum[0]
        n = max(shape.metadata.get("min", 1), 1)
        return ("abc" * n)[: max(n, 3)]
    if t in ("integer", "long"):
        return max(shape.metadata.get("min", 1), 1)
    if t in ("float", "double"):
        return 1.0
    if t == "boolean":
        return True
    if t == "timestamp":
        return datetime.datetime(2026, 1, 1)
    if t == "blob":
        return b"abc"
    return None


def main():
    out = []
    for service, limit in SERVICES.items():
        client = boto3.client(
            service,
            region_name="us-east-1",
            endpoint_url="http://127.0.0.1:9",
            aws_access_key_id="AKIDEXAMPLE",
            aws_secret_access_key="not-a-secret",
            config=Config(retries={"max_attempts": 1}, parameter_validation=False),
        )
        model = client.meta.service_model
        captured = {}

        def hook(request, **kwargs):
            captured["r"] = request
            raise Captured()

        client.meta.events.register("before-send", hook)
        names = sorted(model.operation_names)
        if limit:
            names = names[:limit]
        for name in names:
            op = model.operation_model(name)
            params = value(op.input_shape) if op.input_shape else {}
            method = getattr(client, client.meta.method_to_api_mapping and
                             {v: k for k, v in client.meta.method_to_api_mapping.items()}[name])
            captured.clear()
            try:
                method(**params)
            except Captured:
                pass
            except Exception as e:  # an operation whose input this filler cannot build
                print(f"skip {service}.{name}: {type(e).__name__}", file=sys.stderr)
                continue
            r = captured.get("r")
            if r is None:
                continue
            url = urlsplit(r.url)
            auth = r.headers.get("Authorization", b"")
            auth = auth.decode() if isinstance(auth, bytes) else auth
            if "Credential=" not in auth:
                continue  # an unsigned operation (AssumeRoleWithWebIdentity): never a pseudo-credential call
            scope = auth.split("Credential=")[1].split(",")[0].split("/")
            headers = {}
            for h, v in r.headers.items():
                if h.lower() in ("authorization", "x-amz-date", "user-agent") or h.lower().startswith("amz-sdk-"):
                    continue
                headers[h.lower()] = v.decode() if isinstance(v, bytes) else v
            body = r.body or b""
            if hasattr(body, "read"):
                body = body.read()
            if isinstance(body, str):
                body = body.encode()
            out.append({
                "service": scope[3],
                "operation": name,
                "method": r.method,
                "path": url.path,
                "query": url.query,
                "headers": headers,
                "body": base64.b64encode(body).decode(),
            })
    for line in out:
        print(json.dumps(line, sort_keys=True))


if __name__ == "__main__":
    main()
