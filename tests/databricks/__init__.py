"""Tests against a Databricks workspace stand-in: a local HTTP server for the launcher's REST calls."""
