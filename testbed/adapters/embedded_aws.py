"""The embedded AWS for local runs: moto with Step Functions really executing, and Lambda functions whose
invocations call the real handlers in this process (FIELD-NOTES: moto's own Lambda needs Docker).

Each function is created with an environment, like a deployed one, and each invocation gets the settings of its
function's environment (handed over on the context: the threads of one process share one environment). moto's
mock supplies throwaway credentials; nothing leaves this process.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import os
import threading
import time
import traceback
import zipfile
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from testbed.adapters import moto_item_reader, moto_kinesis
from testbed.adapters.aws import Clients, clients_for, reset_clients
from testbed.settings import Settings

Handler = Callable[[dict[str, Any], Any], dict[str, Any]]
ROLE_NAME = "testbed-local"


class LambdaContext:
    """The bits of Lambda's context object the handlers and Powertools read, plus the function's environment."""

    def __init__(self, function_arn: str, timeout_s: int, environment: Mapping[str, str]):
        self.function_name = function_arn.rsplit(":", 1)[1]
        self.function_version = "$LATEST"
        self.invoked_function_arn = function_arn
        self.memory_limit_in_mb = 3008
        self.aws_request_id = os.urandom(8).hex()
        self.environment = dict(environment)
        self._deadline = time.monotonic() + timeout_s

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self._deadline - time.monotonic()) * 1000))


class EmbeddedAWS:
    """The clients of the embedded AWS and the in-process handlers of its Lambda functions."""

    def __init__(self, clients: Clients, concurrency: int):
        self.clients = clients
        self._handlers: dict[str, Handler] = {}
        self._lock = threading.Lock()
        self._slots = threading.BoundedSemaphore(concurrency)  # Map items arrive on parallel threads
        self._role_arn: str | None = None

    def client(self, service: str) -> Any:
        return self.clients.client(service)

    def invoke(self, function: Any, body: Any, response_headers: Any) -> bytes:
        """Run the function's registered handler with its environment; mimic Lambda's error shape."""
        with self._lock:
            handler = self._handlers[function.function_name]
        event = json.loads(body) if body else {}
        environment = {**function.environment_vars, "AWS_REGION": function.region}  # Lambda sets the region
        context = LambdaContext(function.function_arn, int(function.timeout or 900), environment)
        try:
            with self._slots:  # each handler already uses every core
                result = handler(event, context)
        except Exception as exc:
            response_headers["x-amz-function-error"] = "Unhandled"
            payload = {"errorType": type(exc).__name__, "errorMessage": str(exc),
                       "stackTrace": traceback.format_tb(exc.__traceback__)[-3:]}
            return json.dumps(payload).encode()
        return json.dumps(result).encode()

    def role_arn(self) -> str:
        """The role's ARN, looked up once: every function of a run is created with it."""
        with self._lock:
            if self._role_arn is None:
                self._role_arn = role_arn(self.client("iam"))
            return self._role_arn

    def register_function(self, name: str, handler: Handler, environment: Mapping[str, str],
                          timeout_s: int = 900) -> str:
        """Create a Lambda function in moto whose invocations run `handler` in process; returns its ARN."""
        with self._lock:
            self._handlers[name] = handler
        lam = self.client("lambda")
        try:
            return str(lam.get_function(FunctionName=name)["Configuration"]["FunctionArn"])
        except lam.exceptions.ResourceNotFoundException:
            created = lam.create_function(FunctionName=name, Runtime="python3.12", Role=self.role_arn(),
                                          Handler="handler.lambda_handler", Code={"ZipFile": _empty_zip()},
                                          Timeout=timeout_s, MemorySize=3008,
                                          Environment={"Variables": dict(environment)})
            return str(created["FunctionArn"])


@contextlib.contextmanager
def embedded_aws(settings: Settings | None = None) -> Iterator[EmbeddedAWS]:
    """moto's in-process AWS, in the settings' region (the process environment's when none are given)."""
    from moto import mock_aws
    from moto.awslambda.models import LambdaFunction

    settings = settings or Settings.from_environment()
    # moto's interpreter logs every caught task failure at ERROR; the run record and the CLI report them.
    logging.getLogger("moto.stepfunctions").setLevel(logging.CRITICAL)
    moto_kinesis.install()
    moto_item_reader.install()
    original = LambdaFunction.invoke
    try:
        with mock_aws(config={"stepfunctions": {"execute_state_machine": True}}):
            reset_clients()  # clients made before the mock would carry real credentials
            aws = EmbeddedAWS(clients_for(settings), settings.local_concurrency)

            def invoke(function: Any, body: Any, request_headers: Any, response_headers: Any) -> bytes:
                return aws.invoke(function, body, response_headers)

            LambdaFunction.invoke = invoke  # type: ignore[method-assign,assignment]
            yield aws
    finally:
        LambdaFunction.invoke = original  # type: ignore[method-assign]
        reset_clients()


def role_arn(iam: Any) -> str:
    """The embedded role every local function and state machine runs as (created on first use)."""
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
