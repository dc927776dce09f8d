"""Everything the movielens domain adds to the code location."""

from dagster import AssetSelection, Definitions, define_asset_job, load_assets_from_modules

from movierec_dagster.movielens import assets
from movierec_dagster.movielens.checks import movielens_checks

movielens_etl = define_asset_job(
    "movielens_etl",
    selection=AssetSelection.groups(assets.GROUP),
    description="Fetch MovieLens and load its tables.",
)

defs = Definitions(assets=load_assets_from_modules([assets]), asset_checks=movielens_checks, jobs=[movielens_etl])
