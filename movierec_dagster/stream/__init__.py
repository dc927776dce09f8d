"""The stream domain."""
