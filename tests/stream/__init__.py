"""Tests of the rating events stream: parsing, exactly-once ingest, event sources and sensors."""
