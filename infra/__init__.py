"""The testbed's CDK constructs (one logical unit per module) and the two stacks that deploy them.

Also the helpers every construct shares: acknowledging a cdk-nag finding and skipping a checkov check (the
independent scanner CI runs on the synthesized templates), always with a written reason.
"""

from __future__ import annotations

from typing import Any

from aws_cdk import Acknowledgment, CfnResource, Stack, Validations
from constructs import IConstruct

MIN_REASON_CHARS = 20


def nag_resource(scope: IConstruct, value: str) -> str:
    """How cdk-nag spells a (possibly tokenised) ARN in a finding id: `<Ref>`, `<Logical.Attr>`, joins flattened."""

    def flat(node: Any) -> str:
        if isinstance(node, str):
            return node.replace("${", "<").replace("}", ">")
        if "Fn::Join" in node:
            delimiter, items = node["Fn::Join"]
            return delimiter.join(flat(item) for item in items)
        if "Fn::GetAtt" in node:
            resource, attribute = node["Fn::GetAtt"]
            return f"<{flat(resource)}.{flat(attribute)}>"
        if "Ref" in node:
            return f"<{flat(node['Ref'])}>"
        raise ValueError(f"cannot name {node!r} the way cdk-nag does")

    return flat(Stack.of(scope).resolve(value))


def acknowledge(scope: IConstruct, rule: str, reason: str) -> None:
    """Suppress one cdk-nag rule (or one finding, `Rule[Finding]`) on `scope` and everything below it."""
    if len(reason) < MIN_REASON_CHARS:
        raise ValueError(f"cdk-nag suppression {rule} needs a real reason, got {reason!r}")
    Validations.of(scope).acknowledge(Acknowledgment(id=rule, reason=reason))


def skip_checkov(scope: IConstruct, check: str, reason: str) -> None:
    """Skip one checkov check on the CloudFormation resource `scope` is (or renders as): checkov reads
    `Metadata.checkov.skip` entries `{"id", "comment"}` from the template."""
    if len(reason) < MIN_REASON_CHARS:
        raise ValueError(f"checkov skip {check} needs a real reason, got {reason!r}")
    resource = scope if isinstance(scope, CfnResource) else scope.node.default_child
    if not isinstance(resource, CfnResource):
        raise ValueError(f"{scope.node.path} is not a CloudFormation resource")
    skips = (resource.get_metadata("checkov") or {}).get("skip", [])
    resource.add_metadata("checkov", {"skip": [*skips, {"id": check, "comment": reason}]})
