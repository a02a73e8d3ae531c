"""Plain-Python services: what the gRPC layer, the MLLP listener and tests call."""
