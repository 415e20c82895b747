"""The results store (SQLite): one row per sweep job, resumable and safe for concurrent sweeps."""

from archbench.store.db import DEFAULT_STORE, SCHEMA_VERSION, ResultStore, StoredJob, StoredResult

__all__ = ["DEFAULT_STORE", "SCHEMA_VERSION", "ResultStore", "StoredJob", "StoredResult"]
