"""The gRPC surface: servicers, proto↔domain mapping, validation and the error→status mapping."""
