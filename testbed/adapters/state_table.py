"""Checkpoints in the run's DynamoDB state table: one item per writer, its state as a JSON document. Each call
takes the boto3 DynamoDB client."""

from __future__ import annotations

import json
from typing import Any


def load(dynamodb: Any, table: str, key: str) -> dict[str, Any] | None:
    item = dynamodb.get_item(TableName=table, Key={"pk": {"S": key}}, ConsistentRead=True).get("Item")
    return json.loads(item["state"]["S"]) if item else None


def save(dynamodb: Any, table: str, key: str, state: dict[str, Any]) -> None:
    dynamodb.put_item(TableName=table, Item={"pk": {"S": key}, "state": {"S": json.dumps(state, sort_keys=True)}})
