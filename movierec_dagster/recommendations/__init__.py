"""The recommendations domain."""
