"""Tests of the recommendations domain."""
