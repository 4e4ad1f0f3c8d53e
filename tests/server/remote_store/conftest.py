"""The shared store's tests use the session's SeaweedFS (``seaweed``, tests/conftest.py)."""
