"""One server interceptor: who is calling and may they (access.py), then domain errors ->
gRPC status codes, in one place."""
from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import logging
from contextlib import contextmanager

import grpc

from ..errors import ApplianceError
from .access import READS, AccessPolicy, current

log = logging.getLogger(__name__)


def _abort(context: grpc.ServicerContext, e: Exception) -> None:
    if isinstance(e, ApplianceError):
        context.abort(grpc.StatusCode[e.status], str(e))
    # Unexpected: the type only, since an exception's text may quote input.
    log.error("unhandled %s in gRPC handler", type(e).__name__)
    context.abort(grpc.StatusCode.INTERNAL, f"internal error ({type(e).__name__}); see the appliance log")


def _passthrough(e: Exception) -> bool:
    return isinstance(e, grpc.RpcError) or type(e).__name__ == "_AbortError"


class ErrorInterceptor(grpc.ServerInterceptor):
    def __init__(self, policy: AccessPolicy | None = None) -> None:
        self.policy = policy

    def _enter(self, method: str, request: Any, context: Any) -> Any:
        who = self.policy.check(method, context) if self.policy is not None else None
        name = method.rsplit("/", 1)[-1]
        if who is not None and name in READS and self.policy is not None:
            self.policy.record_read(who.actor, getattr(request, "document_id", "") or "-", name)
        return current.set(who)

    @contextmanager
    def _call(self, method: str, request: Any, context: Any) -> Iterator[None]:
        """Around one call: who it is for (set for the handler, reset after), and any exception
        turned into its gRPC status."""
        token = None
        try:
            token = self._enter(method, request, context)
            yield
        except Exception as e:
            if _passthrough(e):
                raise
            _abort(context, e)
        finally:
            if token is not None:
                current.reset(token)

    def intercept_service(self, continuation: Any, handler_call_details: Any) -> Any:
        h = continuation(handler_call_details)
        if h is None:
            return None
        method = handler_call_details.method

        if h.unary_unary:
            fn = h.unary_unary

            def unary(request: Any, context: Any) -> Any:
                with self._call(method, request, context):
                    return fn(request, context)
            return grpc.unary_unary_rpc_method_handler(unary, h.request_deserializer, h.response_serializer)
        if h.unary_stream:
            sfn = h.unary_stream

            def stream(request: Any, context: Any) -> Iterator[Any]:
                with self._call(method, request, context):
                    yield from sfn(request, context)
            return grpc.unary_stream_rpc_method_handler(stream, h.request_deserializer, h.response_serializer)
        return h
