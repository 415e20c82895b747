"""The results store (SQLite): one row per run, resumable and safe for concurrent sweeps."""

from archbench.store.db import DEFAULT_STORE, SCHEMA_VERSION, ResultStore, StoredResult, StoredRun

__all__ = ["DEFAULT_STORE", "SCHEMA_VERSION", "ResultStore", "StoredResult", "StoredRun"]
