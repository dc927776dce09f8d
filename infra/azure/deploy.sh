#!/usr/bin/env bash
# Provision movierec's Azure side in one resource group, then print the .env for it.
#
#   infra/azure/deploy.sh [-g RESOURCE_GROUP] [-l LOCATION] [-p PARAMETERS_FILE] [--with-secrets] > .env
#
# Defaults: -g movierec, -l westeurope, -p infra/azure/main.parameters.json when it exists, else the example.
# Needs the az CLI, logged in (`az login`) as Owner of the subscription (it creates role assignments and an
# Entra application), plus git, curl and openssl. Progress goes to stderr, the .env to stdout: the
# variables of .env.example, from the deployment's outputs; with --with-secrets also the four secrets,
# read from the Key Vault (otherwise the command that reads each one, as a comment).
#
# Idempotent: what exists is kept (the service principal, its secret, the PostgreSQL password, the
# Databricks token, the secret scope, images already built), so a second run changes nothing.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)

resource_group=movierec
location=westeurope
parameters=$here/main.parameters.json
[ -f "$parameters" ] || parameters=$here/main.parameters.example.json
with_secrets=false

usage() { sed -n '2,13p' "$0" | sed 's/^# \{0,1\}//' >&2; exit "${1:-0}"; }
while [ $# -gt 0 ]; do
    case $1 in
        -g) resource_group=${2:?-g needs a resource group}; shift 2 ;;
        -l) location=${2:?-l needs a location}; shift 2 ;;
        -p) parameters=${2:?-p needs a parameters file}; shift 2 ;;
        --with-secrets) with_secrets=true; shift ;;
        -h|--help) usage 0 ;;
        *) echo "deploy.sh: unknown argument $1" >&2; usage 2 ;;
    esac
done

# shellcheck source=names.sh
. "$here/names.sh"
# The AzureDatabricks first-party application: the audience of Entra tokens for the workspace API.
DATABRICKS_APP_ID=2ff814a6-3304-4ab8-85cb-cd0e6f879c1d
# Environment variable -> Key Vault secret. The first two are also the secret scope's keys, which the
# clusters read (SCOPE_SECRETS in movierec_dagster/deployment.py); modules/dagster.bicep reads all four.
SECRETS=(
    "AZURE_CLIENT_SECRET=lake-client-secret"
    "EVENTHUB_CONNECTION_STRING=eventhub-listen-connection-string"
    "DATABRICKS_TOKEN=databricks-token"
    "DAGSTER_PG_PASSWORD=dagster-pg-password"
)
# What goes into the images; their tag is a hash of these paths at HEAD.
IMAGE_PATHS=(pyproject.toml constraints.txt README.md movierec_dagster generator infra/azure/dagster.yaml infra/azure/docker)
DATABRICKS_TOKEN_DAYS=90

log() { echo "deploy.sh: $*" >&2; }
die() { log "$*"; exit 1; }

for tool in az git curl openssl; do
    command -v "$tool" >/dev/null 2>&1 || die "needs '$tool' on PATH"
done
[ -f "$parameters" ] || die "no parameters file $parameters"

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
chmod 700 "$work"

# Retry a command that may fail while a new role assignment propagates (a few minutes at most).
retry() {
    local attempt
    for attempt in 1 2 3 4 5 6 7 8 9 10; do
        if "$@"; then return 0; fi
        log "retrying in 30 s ($attempt/10): $1 $2 $3"
        sleep 30
    done
    return 1
}

secret_name() {
    local entry
    for entry in "${SECRETS[@]}"; do
        if [ "${entry%%=*}" = "$1" ]; then echo "${entry#*=}"; return; fi
    done
    die "no secret for $1"
}

# The value of a Key Vault secret, or nothing when the vault or the secret does not exist (yet).
read_secret() {
    az keyvault secret show --vault-name "$1" --name "$2" --query value -o tsv 2>/dev/null || true
}

# Write a secret only when its value differs (every write would make a new version). The value goes
# through a file, never the command line.
write_secret() {
    local vault=$1 name=$2 value=$3
    if [ "$(read_secret "$vault" "$name")" = "$value" ]; then return; fi
    printf '%s' "$value" > "$work/secret"
    retry az keyvault secret set --vault-name "$vault" --name "$name" --file "$work/secret" --encoding utf-8 -o none
    rm -f "$work/secret"
    log "wrote secret $name"
}

output() { az deployment group show -g "$resource_group" -n "$1" --query "properties.outputs.$2.value" -o tsv; }

# --- the resource group: this script's own, or none at all
existing_owner=$(az group show -n "$resource_group" --query "tags.\"$OWNER_TAG\"" -o tsv 2>/dev/null || echo absent)
if [ "$existing_owner" = absent ]; then
    log "creating resource group $resource_group in $location"
    az group create -n "$resource_group" -l "$location" --tags "$OWNER_TAG=$OWNER" -o none
elif [ "$existing_owner" != "$OWNER" ]; then
    die "resource group $resource_group exists and was not created by deploy.sh (no tag $OWNER_TAG=$OWNER); pick another with -g"
fi

# --- the lake's service principal (an Entra application; Bicep cannot create one)
app_name="movierec-lake-$resource_group"
app_id=$(az group show -n "$resource_group" --query "tags.\"$APP_TAG\"" -o tsv)
if [ -z "$app_id" ] || ! az ad app show --id "$app_id" -o none 2>/dev/null; then
    log "creating the Entra application $app_name"
    app_id=$(az ad app create --display-name "$app_name" --query appId -o tsv)
    az group update -n "$resource_group" --tags "$OWNER_TAG=$OWNER" "$APP_TAG=$app_id" -o none
fi
sp_object_id=$(az ad sp show --id "$app_id" --query id -o tsv 2>/dev/null || az ad sp create --id "$app_id" --query id -o tsv)

# --- who deploys (it writes the secrets), and Azure Databricks in this tenant (it reads the secret scope)
if [ "$(az account show --query user.type -o tsv)" = servicePrincipal ]; then
    deployer_type=ServicePrincipal
    deployer_id=$(az ad sp show --id "$(az account show --query user.name -o tsv)" --query id -o tsv)
else
    deployer_type=User
    deployer_id=$(az ad signed-in-user show --query id -o tsv)
fi
databricks_sp=$(az ad sp show --id "$DATABRICKS_APP_ID" --query id -o tsv)

# --- the PostgreSQL password: generated once, then kept in the Key Vault
vault=$(output "$BASE_DEPLOYMENT" keyVaultName 2>/dev/null || true)
pg_password=""
[ -z "$vault" ] || pg_password=$(read_secret "$vault" "$(secret_name DAGSTER_PG_PASSWORD)")
if [ -z "$pg_password" ]; then
    # Upper and lower case, digits and a symbol, as Azure Database for PostgreSQL requires.
    pg_password="Pg-$(openssl rand -hex 20)-Z"
fi

# The parameters this script computes, in a file (the password stays off the command line).
deployment_parameters() {
    cat > "$work/parameters.json" <<EOF
{
  "lakeClientId": {"value": "$app_id"},
  "lakePrincipalObjectId": {"value": "$sp_object_id"},
  "deployerObjectId": {"value": "$deployer_id"},
  "deployerPrincipalType": {"value": "$deployer_type"},
  "databricksAppObjectId": {"value": "$databricks_sp"},
  "postgresAdminPassword": {"value": "$pg_password"},
  "deployApps": {"value": $1},
  "imageTag": {"value": "$2"}
}
EOF
}

deploy() {
    local name=$1 apps=$2 tag=$3
    deployment_parameters "$apps" "$tag"
    log "deploying $name (deployApps=$apps): a few minutes, longer the first time"
    az deployment group create -g "$resource_group" -n "$name" -f "$here/main.bicep" \
        -p "@$parameters" -p "@$work/parameters.json" -o none
}

# --- 1. the data services, the registry, the vault
deploy "$BASE_DEPLOYMENT" false ""
vault=$(output "$BASE_DEPLOYMENT" keyVaultName)
vault_id=$(output "$BASE_DEPLOYMENT" keyVaultId)
vault_uri=$(output "$BASE_DEPLOYMENT" keyVaultUri)
registry=$(output "$BASE_DEPLOYMENT" registryName)
workspace_id=$(output "$BASE_DEPLOYMENT" databricksWorkspaceId)
databricks_host=$(output "$BASE_DEPLOYMENT" DATABRICKS_HOST)
namespace=$(output "$BASE_DEPLOYMENT" EVENTHUB_NAMESPACE)
hub=$(output "$BASE_DEPLOYMENT" EVENTHUB_NAME)
listen_rule=$(output "$BASE_DEPLOYMENT" listenRuleName)
scope=$(output "$BASE_DEPLOYMENT" MOVIEREC_SECRET_SCOPE)

# --- 2. the secrets
write_secret "$vault" "$(secret_name DAGSTER_PG_PASSWORD)" "$pg_password"
write_secret "$vault" "$(secret_name EVENTHUB_CONNECTION_STRING)" "$(az eventhubs eventhub authorization-rule keys list \
    -g "$resource_group" --namespace-name "$namespace" --eventhub-name "$hub" --name "$listen_rule" \
    --query primaryConnectionString -o tsv)"
lake_secret=$(secret_name AZURE_CLIENT_SECRET)
if [ -z "$(read_secret "$vault" "$lake_secret")" ]; then
    log "creating a client secret for $app_name"
    write_secret "$vault" "$lake_secret" "$(az ad app credential reset --id "$app_id" --append \
        --display-name movierec-lake --years 1 --query password -o tsv)"
fi

# --- 3. the workspace: the Key Vault-backed secret scope and the orchestrator's token, with an Entra token
# (a personal access token cannot create a Key Vault-backed scope).
entra_token=$(az account get-access-token --resource "$DATABRICKS_APP_ID" --query accessToken -o tsv)
{
    echo "Authorization: Bearer $entra_token"
    echo "X-Databricks-Azure-Workspace-Resource-Id: $workspace_id"
    if [ "$deployer_type" = ServicePrincipal ]; then
        echo "X-Databricks-Azure-SP-Management-Token: $(az account get-access-token \
            --resource https://management.core.windows.net/ --query accessToken -o tsv)"
    fi
    echo "Content-Type: application/json"
} > "$work/headers"
databricks_api() {  # method path [json body]
    curl --silent --show-error --fail-with-body --retry 5 --retry-all-errors --header "@$work/headers" \
        -X "$1" "$databricks_host/api/2.0/$2" ${3:+--data "$3"}
}
if ! retry databricks_api GET secrets/scopes/list | grep -q "\"name\": *\"$scope\""; then
    log "creating the secret scope $scope on $vault"
    databricks_api POST secrets/scopes/create "{\"scope\": \"$scope\", \"scope_backend_type\": \"AZURE_KEYVAULT\",
        \"backend_azure_keyvault\": {\"resource_id\": \"$vault_id\", \"dns_name\": \"$vault_uri\"}}" >/dev/null
fi
token_secret=$(secret_name DATABRICKS_TOKEN)
if [ -z "$(read_secret "$vault" "$token_secret")" ]; then
    log "creating a workspace token for the orchestrator ($DATABRICKS_TOKEN_DAYS days)"
    response=$(databricks_api POST token/create \
        "{\"comment\": \"movierec orchestrator\", \"lifetime_seconds\": $((DATABRICKS_TOKEN_DAYS * 86400))}")
    token=$(printf '%s' "$response" | sed -n 's/.*"token_value": *"\([^"]*\)".*/\1/p')
    [ -n "$token" ] || die "the workspace returned no token"
    write_secret "$vault" "$token_secret" "$token"
fi

# --- 4. the images, built in the registry (ACR Tasks) from HEAD, once per content
tag=$(cd "$repo" && git ls-tree HEAD -- "${IMAGE_PATHS[@]}" | git hash-object --stdin | cut -c1-12)
if [ -n "$(cd "$repo" && git status --porcelain -- "${IMAGE_PATHS[@]}")" ]; then
    log "uncommitted changes under ${IMAGE_PATHS[*]} are not in the images (they are built from HEAD)"
fi
for image in dagster generator; do
    if az acr repository show -n "$registry" --image "movierec-$image:$tag" -o none 2>/dev/null; then continue; fi
    log "building movierec-$image:$tag in $registry"
    rm -rf "$work/context" && mkdir "$work/context"
    (cd "$repo" && git archive HEAD -- "${IMAGE_PATHS[@]}") | tar -x -C "$work/context"
    az acr build -r "$registry" -t "movierec-$image:$tag" -f "infra/azure/docker/$image.Dockerfile" \
        "$work/context" -o none
done

# --- 5. the generator and the Dagster apps
deploy "$DEPLOYMENT" true "$tag"

# --- the .env
names=$(az deployment group show -g "$resource_group" -n "$DEPLOYMENT" --query 'keys(properties.outputs)' -o tsv)
env_names=()
for name in $names; do
    case $name in *[!A-Z0-9_]*) ;; *) env_names+=("$name") ;; esac  # camelCase outputs are the scripts'
done
query=$(printf 'properties.outputs.%s.value,' "${env_names[@]}")
mapfile -t values < <(az deployment group show -g "$resource_group" -n "$DEPLOYMENT" --query "[${query%,}]" -o tsv)
echo "# movierec on Azure: resource group $resource_group (infra/azure/deploy.sh)"
for i in "${!env_names[@]}"; do
    echo "${env_names[$i]}=${values[$i]}"
done
for entry in "${SECRETS[@]}"; do
    if [ "$with_secrets" = true ]; then
        echo "${entry%%=*}=$(read_secret "$vault" "${entry#*=}")"
    else
        echo "# ${entry%%=*}=\$(az keyvault secret show --vault-name $vault --name ${entry#*=} --query value -o tsv)"
    fi
done
webserver=$(output "$DEPLOYMENT" webserverUrl)
log "done. Dagster UI: ${webserver:-internal only (set webserverAllowedCidrs in $parameters)}"
log "idle? az container stop -g $resource_group -n $(output "$DEPLOYMENT" generatorName);" \
    "az postgres flexible-server stop -g $resource_group -n $(output "$DEPLOYMENT" postgresServerName)"
