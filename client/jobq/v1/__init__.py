"""Generated protobuf/gRPC code for jobq.v1 (do not edit)."""
