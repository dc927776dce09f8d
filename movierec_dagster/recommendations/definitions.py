"""Everything the recommendations domain adds to the code location (filled in by its issue)."""

from dagster import Definitions

defs = Definitions()
