"""The data converter of the client and the worker: pydantic payloads, and failures that read cleanly.

A refused approval is an answer, not a crash: the Temporal Web UI shows an update's failure message
and, below it, its stack trace. For `ApprovalRefused` the stack trace is dropped, so the "Send an
Update" dialog shows only the policy's reason.
"""

from __future__ import annotations

import dataclasses

from temporalio.api.failure.v1 import Failure
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.converter import DataConverter, DefaultFailureConverter, PayloadConverter
from temporalio.exceptions import ApplicationError

REFUSED = "ApprovalRefused"


class AnswersWithoutTraces(DefaultFailureConverter):
    def to_failure(self, exception: BaseException, payload_converter: PayloadConverter, failure: Failure) -> None:
        super().to_failure(exception, payload_converter, failure)
        if isinstance(exception, ApplicationError) and exception.type == REFUSED:
            failure.stack_trace = ""


DATA_CONVERTER: DataConverter = dataclasses.replace(
    pydantic_data_converter, failure_converter_class=AnswersWithoutTraces
)
