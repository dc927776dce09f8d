"""Everything the movielens domain adds to the code location."""

from dagster import AssetSelection, Definitions, define_asset_job

from movierec_dagster.movielens.assets import GROUP, movielens_archive, movielens_tables

movielens_etl = define_asset_job(
    "movielens_etl",
    selection=AssetSelection.groups(GROUP),
    description="Fetch MovieLens and load its tables.",
)

defs = Definitions(assets=[movielens_archive, movielens_tables], jobs=[movielens_etl])
