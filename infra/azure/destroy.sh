#!/usr/bin/env bash
# Remove what infra/azure/deploy.sh created, and nothing else.
#
#   infra/azure/destroy.sh [-g RESOURCE_GROUP] [--yes]
#
# That is, first in the Databricks workspace, whose account-level objects outlive it: the orchestrator's service
# principal (its OAuth secrets deleted, then removed from the workspace) and the staging volume and its schema in
# Unity Catalog (each only with deploy.sh's comment); then the resource group (only when deploy.sh's tag marks it
# as its own) with everything in it, which takes the workspace, its managed resource group, secret scope and pool;
# then the soft-deleted Key Vault (purged, so a new deployment can take its name again) and the lake's Entra
# application and service principal (the one whose id deploy.sh recorded on the resource group).
set -euo pipefail

resource_group=movierec
assume_yes=false
usage() { sed -n '2,12p' "$0" | sed 's/^# \{0,1\}//' >&2; exit "${1:-0}"; }
while [ $# -gt 0 ]; do
    case $1 in
        -g) resource_group=${2:?-g needs a resource group}; shift 2 ;;
        --yes) assume_yes=true; shift ;;
        -h|--help) usage 0 ;;
        *) echo "destroy.sh: unknown argument $1" >&2; usage 2 ;;
    esac
done

# shellcheck source=names.sh
. "$(cd "$(dirname "$0")" && pwd)/names.sh"

log() { echo "destroy.sh: $*" >&2; }
die() { log "$*"; exit 1; }
command -v az >/dev/null 2>&1 || die "needs 'az' on PATH"

owner=$(az group show -n "$resource_group" --query "tags.\"$OWNER_TAG\"" -o tsv 2>/dev/null || echo absent)
[ "$owner" != absent ] || die "no resource group $resource_group: nothing to remove"
[ "$owner" = "$OWNER" ] || die "resource group $resource_group was not created by deploy.sh (no tag $OWNER_TAG=$OWNER); leaving it alone"

app_id=$(az group show -n "$resource_group" --query "tags.\"$APP_TAG\"" -o tsv)
vault=$(az deployment group show -g "$resource_group" -n "$BASE_DEPLOYMENT" \
    --query properties.outputs.keyVaultName.value -o tsv 2>/dev/null || true)
workspace_id=$(az deployment group show -g "$resource_group" -n "$BASE_DEPLOYMENT" \
    --query properties.outputs.databricksWorkspaceId.value -o tsv 2>/dev/null || true)
databricks_host=$(az deployment group show -g "$resource_group" -n "$BASE_DEPLOYMENT" \
    --query properties.outputs.DATABRICKS_HOST.value -o tsv 2>/dev/null || true)
volume=$(az deployment group show -g "$resource_group" -n "$DEPLOYMENT" \
    --query properties.outputs.MOVIEREC_DATABRICKS_VOLUME.value -o tsv 2>/dev/null || true)
sp_name=$(orchestrator_name "$resource_group")
if [ -n "$workspace_id" ] && ! az resource show --ids "$workspace_id" -o none 2>/dev/null; then
    workspace_id=""  # gone already, and what was in it
fi

if [ "$assume_yes" != true ]; then
    printf 'Delete resource group %s and everything in it%s%s%s? [y/N] ' "$resource_group" \
        "${workspace_id:+, Databricks service principal $sp_name${volume:+ and volume $volume}}" \
        "${vault:+, purge Key Vault $vault}" "${app_id:+, delete Entra application $app_id}" >&2
    read -r answer
    [ "$answer" = y ] || [ "$answer" = yes ] || die "nothing removed"
fi

# What the workspace holds beyond the resource group: Unity Catalog objects live in the account's metastore, and
# the service principal in the Databricks account. Best effort: a failure is reported and the teardown goes on.
clean_workspace() {
    local work sp_id secret_id name schema
    work=$(mktemp -d)
    chmod 700 "$work"
    databricks_headers "$work/headers.json" "$workspace_id"
    dbx() { databricks_call "$databricks_host" "$work/headers.json" "$@"; }
    sp_id=$(dbx GET 2.0/preview/scim/v2/ServicePrincipals --url-parameters "filter=displayName eq \"$sp_name\"" \
        --query "Resources[0].id" -o tsv) || sp_id=""
    if [ -n "$sp_id" ]; then
        for secret_id in $(dbx GET "2.0/accounts/servicePrincipals/$sp_id/credentials/secrets" --query "secrets[].id" -o tsv); do
            log "deleting the OAuth secret $secret_id of $sp_name"
            dbx DELETE "2.0/accounts/servicePrincipals/$sp_id/credentials/secrets/$secret_id" -o none || log "could not"
        done
        log "removing the service principal $sp_name from the workspace"
        dbx DELETE "2.0/preview/scim/v2/ServicePrincipals/$sp_id" -o none || log "could not"
    fi
    if [ -n "$volume" ]; then
        name=${volume#/Volumes/}
        name=${name//\//.}  # catalog.schema.volume
        schema=${name%.*}
        if [ "$(dbx GET "2.1/unity-catalog/volumes/$name" --query comment -o tsv 2>/dev/null)" = "$VOLUME_COMMENT" ]; then
            log "dropping the volume $name"
            dbx DELETE "2.1/unity-catalog/volumes/$name" -o none || log "could not"
        fi
        # Only when empty: a schema that holds anything else stays.
        if [ "$(dbx GET "2.1/unity-catalog/schemas/$schema" --query comment -o tsv 2>/dev/null)" = "$VOLUME_COMMENT" ]; then
            log "dropping the schema $schema"
            dbx DELETE "2.1/unity-catalog/schemas/$schema" -o none || log "could not (is it empty?)"
        fi
    fi
    rm -rf "$work"
}
if [ -n "$workspace_id" ] && [ -n "$databricks_host" ]; then
    clean_workspace || log "the workspace's objects could not all be removed; see infra/azure/README.md"
fi

log "deleting resource group $resource_group (10-20 minutes: the Databricks workspace takes longest)"
az group delete -n "$resource_group" --yes

if [ -n "$vault" ] && az keyvault show-deleted --name "$vault" -o none 2>/dev/null; then
    log "purging the soft-deleted Key Vault $vault"
    az keyvault purge --name "$vault"
fi

if [ -n "$app_id" ] && az ad app show --id "$app_id" -o none 2>/dev/null; then
    log "deleting the Entra application $app_id and its service principal"
    az ad app delete --id "$app_id"
fi
log "done.${workspace_id:+ With identity federation the service principal $sp_name stays in the Databricks account, without secrets: an account admin deletes it there.}"
