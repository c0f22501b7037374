"""Queue contract, Redis transport, sampling service, model registry and hot reload."""
