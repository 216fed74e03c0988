"""Prepares a fresh moto server (auth on) for the AWS end-to-end tests.

moto lets its first INITIAL_NO_AUTH_ACTION_COUNT requests through unauthenticated; this script
spends exactly SETUP_REQUESTS of them creating the gateway's IAM user (with an access key allowed
to assume roles) and the role agents get. Every later request must be correctly signed.
Prints {"access_key_id", "secret_access_key", "role_arn"} as JSON.
"""
import json
import sys

import boto3
from botocore.config import Config

SETUP_REQUESTS = 5

endpoint = sys.argv[1]
iam = boto3.client(
    "iam",
    endpoint_url=endpoint,
    region_name="us-east-1",
    aws_access_key_id="AKIAIOSFODNN7EXAMPLE",
    aws_secret_access_key="setup-only-not-checked-by-moto-yet",
    config=Config(retries={"max_attempts": 1}),
)
iam.create_user(UserName="hoopguard-gateway")
key = iam.create_access_key(UserName="hoopguard-gateway")["AccessKey"]
iam.put_user_policy(
    UserName="hoopguard-gateway",
    PolicyName="assume-agent-roles",
    PolicyDocument=json.dumps({
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Action": ["sts:AssumeRole", "sts:TagSession", "sts:SetSourceIdentity"], "Resource": "*"}],
    }),
)
role = iam.create_role(
    RoleName="agents",
    AssumeRolePolicyDocument=json.dumps({
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Principal": {"AWS": "*"}, "Action": ["sts:AssumeRole", "sts:TagSession", "sts:SetSourceIdentity"]}],
    }),
)["Role"]
iam.put_role_policy(
    RoleName="agents",
    PolicyName="everything-the-tests-do",
    PolicyDocument=json.dumps({
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Action": ["sts:*", "s3:*", "ec2:*", "secretsmanager:*", "dynamodb:*", "ssm:*", "lambda:*"], "Resource": "*"}],
    }),
)
print(json.dumps({
    "access_key_id": key["AccessKeyId"],
    "secret_access_key": key["SecretAccessKey"],
    "role_arn": role["Arn"],
}))
