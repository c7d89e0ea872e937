"""The embedded AWS for local runs: moto with Step Functions really executing, and Lambda functions whose
invocations call the real handlers in this process (FIELD-NOTES: moto's own Lambda needs Docker)."""

from __future__ import annotations

import contextlib
import io
import json
import logging
import os
import threading
import traceback
import zipfile
from collections.abc import Callable, Iterator
from typing import Any

from testbed.adapters import moto_kinesis
from testbed.adapters.aws import client, reset_clients

Handler = Callable[[dict[str, Any], Any], dict[str, Any]]
ROLE_NAME = "testbed-local"
_FAKE_ENV = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_SESSION_TOKEN": "testing",
             "AWS_DEFAULT_REGION": "us-east-1", "AWS_REGION": "us-east-1", "POWERTOOLS_METRICS_DISABLED": "true"}
_handlers: dict[str, Handler] = {}
_handlers_lock = threading.Lock()
_slots = threading.BoundedSemaphore(max(1, int(os.environ.get("TESTBED_LOCAL_CONCURRENCY", "1"))))


class LambdaContext:
    """The bits of Lambda's context object the handlers and Powertools read."""

    def __init__(self, function_name: str, timeout_s: int):
        import time

        self.function_name = function_name
        self.function_version = "$LATEST"
        self.invoked_function_arn = f"arn:aws:lambda:us-east-1:123456789012:function:{function_name}"
        self.memory_limit_in_mb = 3008
        self.aws_request_id = os.urandom(8).hex()
        self._deadline = time.monotonic() + timeout_s

    def get_remaining_time_in_millis(self) -> int:
        import time

        return max(0, int((self._deadline - time.monotonic()) * 1000))


def _invoke_in_process(self: Any, body: Any, request_headers: Any, response_headers: Any) -> bytes:
    """Replacement for moto's LambdaFunction.invoke: run the registered handler, mimic Lambda's error shape."""
    handler = _handlers[self.function_name]
    event = json.loads(body) if body else {}
    try:
        with _slots:  # Map items arrive on parallel threads; each handler already uses every core
            result = handler(event, LambdaContext(self.function_name, int(self.timeout or 900)))
    except Exception as exc:
        response_headers["x-amz-function-error"] = "Unhandled"
        payload = {"errorType": type(exc).__name__, "errorMessage": str(exc),
                   "stackTrace": traceback.format_tb(exc.__traceback__)[-3:]}
        return json.dumps(payload).encode()
    return json.dumps(result).encode()


@contextlib.contextmanager
def embedded_aws() -> Iterator[None]:
    """moto's in-process AWS with throwaway credentials; nothing leaves this process."""
    from moto import mock_aws
    from moto.awslambda.models import LambdaFunction

    # moto's interpreter logs every caught task failure at ERROR; the run record and the CLI report them.
    logging.getLogger("moto.stepfunctions").setLevel(logging.CRITICAL)
    moto_kinesis.install()
    saved = {k: os.environ.get(k) for k in _FAKE_ENV}
    os.environ.update(_FAKE_ENV)
    original = LambdaFunction.invoke
    LambdaFunction.invoke = _invoke_in_process  # type: ignore[method-assign]
    try:
        with mock_aws(config={"stepfunctions": {"execute_state_machine": True}}):
            reset_clients()
            yield
    finally:
        LambdaFunction.invoke = original  # type: ignore[method-assign]
        reset_clients()
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def role_arn() -> str:
    iam = client("iam")
    trust = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "sts:AssumeRole",
                                                       "Principal": {"Service": ["lambda.amazonaws.com",
                                                                                 "states.amazonaws.com"]}}]}
    try:
        return str(iam.get_role(RoleName=ROLE_NAME)["Role"]["Arn"])
    except iam.exceptions.NoSuchEntityException:
        return str(iam.create_role(RoleName=ROLE_NAME, AssumeRolePolicyDocument=json.dumps(trust))["Role"]["Arn"])


def _empty_zip() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("handler.py", "# runs in process locally\n")
    return buffer.getvalue()


def register_function(name: str, handler: Handler, timeout_s: int = 900) -> str:
    """Create a Lambda function in moto whose invocations run `handler` in process; returns its ARN."""
    with _handlers_lock:
        _handlers[name] = handler
    lam = client("lambda")
    try:
        return str(lam.get_function(FunctionName=name)["Configuration"]["FunctionArn"])
    except lam.exceptions.ResourceNotFoundException:
        created = lam.create_function(FunctionName=name, Runtime="python3.12", Role=role_arn(),
                                      Handler="handler.lambda_handler", Code={"ZipFile": _empty_zip()},
                                      Timeout=timeout_s, MemorySize=3008)
        return str(created["FunctionArn"])
