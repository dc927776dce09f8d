"""The user dashboard: a Streamlit app reading the lake's Parquet tables with DuckDB (no Spark)."""
