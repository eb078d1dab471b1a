"""Print template.yaml after the SAM transform, as CloudFormation would receive it (JSON on stdout).

Run by the tools virtualenv's interpreter (aws-sam-cli ships samtranslator), offline: local code paths are
replaced by placeholder S3 URIs (S3 URIs, as `sam package` writes them, are kept) and the managed policies SAM
attaches are named without calling IAM.
"""

import json
import re
import sys
from pathlib import Path

from samtranslator.translator.transform import transform
from samtranslator.yaml_helper import yaml_parse

MANAGED_POLICIES = {
    name: f"arn:aws:iam::aws:policy/{path}{name}"
    for path, name in [
        ("service-role/", "AWSLambdaBasicExecutionRole"),
        ("service-role/", "AWSLambdaVPCAccessExecutionRole"),
        ("service-role/", "AWSLambdaSQSQueueExecutionRole"),
        ("", "AWSXrayWriteOnlyAccess"),
        ("", "AWSXRayDaemonWriteAccess"),
    ]
}


class _PolicyLoader:
    def load(self) -> dict[str, str]:
        return MANAGED_POLICIES


source = re.sub(r"(CodeUri|ContentUri): (?!s3://)\S+", r"\1: s3://bucket/key", Path(sys.argv[1]).read_text())
json.dump(transform(yaml_parse(source), {}, _PolicyLoader()), sys.stdout)
