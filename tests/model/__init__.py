"""Tests of the model domain."""
