"""Thin gRPC layer: protobuf in, plain-Python services, protobuf out."""
