#!/usr/bin/env bash
# Remove what infra/azure/deploy.sh created, and nothing else.
#
#   infra/azure/destroy.sh [-g RESOURCE_GROUP] [--yes]
#
# That is: the resource group (only when deploy.sh's tag marks it as its own) with everything in it,
# which takes the Databricks workspace's managed resource group, its secret scope and token with it;
# then the soft-deleted Key Vault (purged, so a new deployment can take its name again) and the lake's
# Entra application and service principal (the one whose id deploy.sh recorded on the resource group).
set -euo pipefail

resource_group=movierec
assume_yes=false
usage() { sed -n '2,9p' "$0" | sed 's/^# \{0,1\}//' >&2; exit "${1:-0}"; }
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

if [ "$assume_yes" != true ]; then
    printf 'Delete resource group %s and everything in it%s%s? [y/N] ' "$resource_group" \
        "${vault:+, purge Key Vault $vault}" "${app_id:+, delete Entra application $app_id}" >&2
    read -r answer
    [ "$answer" = y ] || [ "$answer" = yes ] || die "nothing removed"
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
log "done"
