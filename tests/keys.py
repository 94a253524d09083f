"""The API keys of the tests that run with keys on (the `keyed` client in conftest.py)."""

ADMIN, PREDICT = "admin-key-0123456789abc", "predict-key-0123456789ab"
