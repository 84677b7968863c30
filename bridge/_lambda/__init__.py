"""Either kind of app as an AWS Lambda handler: events in, replies out."""

from ._calls import STATE_KEY
from ._handler import LambdaHandler, aws_lambda
from ._requests import CONTEXT_KEY, EVENT_KEY

__all__ = ["CONTEXT_KEY", "EVENT_KEY", "STATE_KEY", "LambdaHandler", "aws_lambda"]
