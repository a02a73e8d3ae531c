"""Domain errors -> gRPC status, in one place (a server interceptor)."""
from __future__ import annotations

import logging

import grpc

from ..errors import ApplianceError

log = logging.getLogger(__name__)


def _abort(context: grpc.ServicerContext, e: Exception) -> None:
    if isinstance(e, ApplianceError):
        context.abort(grpc.StatusCode[e.status], str(e))
    # Unexpected: the type only, since an exception's text may quote input.
    log.error("unhandled %s in gRPC handler", type(e).__name__)
    context.abort(grpc.StatusCode.INTERNAL, f"internal error ({type(e).__name__}); see the appliance log")


def _wrap_unary(fn):
    def handler(request, context):
        try:
            return fn(request, context)
        except Exception as e:
            if isinstance(e, grpc.RpcError) or type(e).__name__ == "_AbortError":
                raise
            _abort(context, e)
    return handler


def _wrap_stream(fn):
    def handler(request, context):
        try:
            yield from fn(request, context)
        except Exception as e:
            if isinstance(e, grpc.RpcError) or type(e).__name__ == "_AbortError":
                raise
            _abort(context, e)
    return handler


class ErrorInterceptor(grpc.ServerInterceptor):
    def intercept_service(self, continuation, handler_call_details):
        h = continuation(handler_call_details)
        if h is None:
            return None
        if h.unary_unary:
            return grpc.unary_unary_rpc_method_handler(_wrap_unary(h.unary_unary), h.request_deserializer,
                                                       h.response_serializer)
        if h.unary_stream:
            return grpc.unary_stream_rpc_method_handler(_wrap_stream(h.unary_stream), h.request_deserializer,
                                                        h.response_serializer)
        return h
