"""The deployable unit, downstream of promotion: a Bento that carries the champion (serving.packaging).

Partition D means "the champion after day D's promotion step". The Bento is built once per champion
version; a day whose promotion kept the champion gets the Bento already built for it.
"""

import dagster as dg

from pipelines.assets_model import PROMOTION
from pipelines.resources import BentoPackager, ModelRegistry, Warehouse

BENTO = "champion_bento"


def build_serving_assets(partitions: dg.PartitionsDefinition) -> list:
    @dg.asset(
        name=BENTO,
        partitions_def=partitions,
        group_name="serving",
        kinds={"bentoml"},
        deps=[PROMOTION],
        description="The versioned Bento (`bentofile.yaml`) carrying the champion, so a deployment does not "
        "depend on reaching the MLflow registry at start. Serve it with `eta serve --bento TAG`.",
    )
    def champion_bento(
        context: dg.AssetExecutionContext,
        warehouse: Warehouse,
        registry: ModelRegistry,
        packager: BentoPackager,
    ):
        day = context.partition_key
        promotion = warehouse.read_json(PROMOTION, day)
        champion = registry.champion_version()
        if champion is None:
            raise dg.Failure(f"no champion to package after {day}: promotion said {promotion['reasons']}")
        built = packager.build(registry)
        if built["model_version"] != str(champion):
            raise dg.Failure(
                f"the Bento carries version {built['model_version']}, but the champion is {champion}"
            )
        warehouse.write_json(BENTO, day, {**built, "promoted_today": promotion["promoted"]})
        return dg.MaterializeResult(
            metadata={
                "bento": built["tag"],
                "model": built["model_tag"],
                "champion_version": champion,
                "promoted_today": promotion["promoted"],
                "path": dg.MetadataValue.path(built["path"]),
                "serve": dg.MetadataValue.md(f"`eta serve --bento {built['tag']}`"),
                "mlflow_model": dg.MetadataValue.url(registry.model_url(champion)),
            }
        )

    return [champion_bento]
