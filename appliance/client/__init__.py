"""The clinician's desktop client: a thin Qt window over the daemon's gRPC API (unix socket)."""
