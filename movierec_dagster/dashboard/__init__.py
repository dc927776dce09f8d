"""The user dashboard: a Streamlit app reading the lake's committed tables through fsspec (no Spark)."""
