"""Tests of the rating event generator."""
