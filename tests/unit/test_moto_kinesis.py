"""The embedded Kinesis's compact record (testbed.adapters.moto_kinesis): what moto's own record would say."""

from __future__ import annotations

import base64
import sys
import time
from datetime import datetime

import boto3
from hypothesis import given, settings
from hypothesis import strategies as st
from moto import mock_aws

from testbed.adapters import moto_kinesis
from testbed.adapters.moto_kinesis import CompactRecord


@settings(max_examples=200, derandomize=True, deadline=None)
@given(st.binary(max_size=300), st.text(min_size=1, max_size=20))
def test_a_record_reads_as_moto_holds_it(payload: bytes, key: str) -> None:
    text = base64.b64encode(payload).decode()
    record = CompactRecord(key, text, 7, None)  # type: ignore[arg-type]  # moto passes None when unset
    assert record.data == text and record.partition_key == key and record.sequence_number == 7
    assert record.explicit_hash_key is None
    as_json = record.to_json()
    assert as_json["Data"] == payload and as_json["SequenceNumber"] == "7" and as_json["PartitionKey"] == key
    arrival = record.created_at_datetime
    assert abs((arrival - datetime(1970, 1, 1)).total_seconds() - record.created_at) < 1e-6  # noqa: DTZ001
    assert abs(record.created_at - time.time()) < 60


def test_partition_keys_are_shared_and_the_record_has_no_dict() -> None:
    first, second = (CompactRecord("".join(["user-", "42"]), "", n, None) for n in (1, 2))  # type: ignore[arg-type]
    assert first.partition_key is second.partition_key is sys.intern("user-42")
    assert not hasattr(first, "__dict__")


def test_binary_payloads_round_trip_through_the_patched_stream() -> None:
    moto_kinesis.install()
    payloads = [bytes(range(256)), b"", b'{"event_id": "e1"}', "\u00e9v\u00e9nement".encode()]
    with mock_aws():
        kinesis = boto3.client("kinesis", region_name="us-east-1")
        kinesis.create_stream(StreamName="s", ShardCount=1)
        put = kinesis.put_records(StreamName="s", Records=[{"PartitionKey": f"u{i}", "Data": data or b" "}
                                                            for i, data in enumerate(payloads)])
        assert put["FailedRecordCount"] == 0
        shard = kinesis.list_shards(StreamName="s")["Shards"][0]["ShardId"]
        iterator = kinesis.get_shard_iterator(StreamName="s", ShardId=shard,
                                              ShardIteratorType="TRIM_HORIZON")["ShardIterator"]
        records = kinesis.get_records(ShardIterator=iterator)["Records"]
    assert [r["Data"] for r in records] == [data or b" " for data in payloads]
    assert [r["PartitionKey"] for r in records] == [f"u{i}" for i in range(len(payloads))]
    assert [int(r["SequenceNumber"]) for r in records] == [1, 2, 3, 4]
