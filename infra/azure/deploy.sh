#!/usr/bin/env bash
# Provision movierec's Azure side in one resource group, then print the .env for it.
#
#   infra/azure/deploy.sh [-g RESOURCE_GROUP] [-l LOCATION] [-p PARAMETERS_FILE] [--catalog CATALOG] [--warehouse ID]
#                         [--with-secrets] > .env
#
# Defaults: -g movierec, -l westeurope, -p infra/azure/main.parameters.json when it exists, else the example;
# --catalog: the workspace's default Unity Catalog catalog, where the steps' staging volume goes.
# --warehouse: a SQL warehouse that registers the lake's Delta tables in <catalog>.movierec as external tables
# (needs an external location over the lake: docs/databricks.md); without it, the SQL is printed to stderr.
# Needs the az CLI, logged in (`az login`) as Owner of the subscription (it creates role assignments and an
# Entra application), plus git and openssl. Progress goes to stderr, the .env to stdout: the variables of
# .env.example, from the deployment's outputs; with --with-secrets also the four secrets, read from the Key
# Vault (otherwise the command that reads each one, as a comment).
#
# Idempotent: what exists is kept (the service principals, the secrets while more than 30 days from expiry, the
# PostgreSQL password, the secret scope, the volume, the pool, images already built). infra/azure/README.md.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)

resource_group=movierec
location=westeurope
parameters=$here/main.parameters.json
[ -f "$parameters" ] || parameters=$here/main.parameters.example.json
catalog=""
warehouse=""
with_secrets=false

usage() { sed -n '2,17p' "$0" | sed 's/^# \{0,1\}//' >&2; exit "${1:-0}"; }
while [ $# -gt 0 ]; do
    case $1 in
        -g) resource_group=${2:?-g needs a resource group}; shift 2 ;;
        -l) location=${2:?-l needs a location}; shift 2 ;;
        -p) parameters=${2:?-p needs a parameters file}; shift 2 ;;
        --catalog) catalog=${2:?--catalog needs a catalog}; shift 2 ;;
        --warehouse) warehouse=${2:?--warehouse needs a SQL warehouse id}; shift 2 ;;
        --with-secrets) with_secrets=true; shift ;;
        -h|--help) usage 0 ;;
        *) echo "deploy.sh: unknown argument $1" >&2; usage 2 ;;
    esac
done

# shellcheck source=names.sh
. "$here/names.sh"
# Environment variable -> Key Vault secret. The first two are also the secret scope's keys, which the
# clusters read (SCOPE_SECRETS in movierec_dagster/deployment.py); modules/dagster.bicep reads all four.
SECRETS=(
    "AZURE_CLIENT_SECRET=lake-client-secret"
    "EVENTHUB_CONNECTION_STRING=eventhub-listen-connection-string"
    "DATABRICKS_CLIENT_SECRET=databricks-client-secret"
    "DAGSTER_PG_PASSWORD=dagster-pg-password"
)
# What goes into the images; their tag is a hash of these paths at HEAD.
IMAGE_PATHS=(pyproject.toml constraints.txt README.md movierec_dagster generator infra/azure/dagster.yaml infra/azure/docker)
# The orchestrator's Databricks OAuth secret lives this long (Databricks allows 730 days at most) and is replaced
# once it is within ROTATE_DAYS of its expiry.
CLIENT_SECRET_DAYS=365
ROTATE_DAYS=30
# The orchestrator's entitlements in the workspace: the workspace's features (the Jobs API among them), and the
# creation of the job cluster each step runs on.
SP_ENTITLEMENTS=(workspace-access allow-cluster-create)
# The instance pool every job cluster comes from: room for this many clusters at once, no idle VM kept, a
# released VM kept this many minutes for the next step's cluster, with the steps' runtime preloaded on its VMs
# (DATABRICKS_RUNTIME in movierec_dagster/resources/databricks.py).
POOL_CLUSTERS=3
POOL_IDLE_MINUTES=10
POOL_RUNTIME=17.3.x-scala2.13

log() { echo "deploy.sh: $*" >&2; }
die() { log "$*"; exit 1; }

for tool in az git openssl; do
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
# through a file, never the command line. Further arguments go to `az keyvault secret set` (--expires, --tags).
write_secret() {
    local vault=$1 name=$2 value=$3
    shift 3
    if [ "$(read_secret "$vault" "$name")" = "$value" ]; then return; fi
    printf '%s' "$value" > "$work/secret"
    retry az keyvault secret set --vault-name "$vault" --name "$name" --file "$work/secret" --encoding utf-8 "$@" -o none
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

# What the workspace steps below make, for the second deployment (empty in the first, before they exist).
orchestrator_app_id=""
volume_path=""
pool_id=""

# The parameters this script computes, in a file (the password stays off the command line).
deployment_parameters() {
    cat > "$work/parameters.json" <<EOF
{
  "lakeClientId": {"value": "$app_id"},
  "lakePrincipalObjectId": {"value": "$sp_object_id"},
  "deployerObjectId": {"value": "$deployer_id"},
  "deployerPrincipalType": {"value": "$deployer_type"},
  "databricksAppObjectId": {"value": "$databricks_sp"},
  "databricksClientId": {"value": "$orchestrator_app_id"},
  "databricksVolume": {"value": "$volume_path"},
  "databricksInstancePoolId": {"value": "$pool_id"},
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
node_type=$(output "$BASE_DEPLOYMENT" MOVIEREC_DATABRICKS_NODE_TYPE)
workers=$(output "$BASE_DEPLOYMENT" MOVIEREC_DATABRICKS_WORKERS)
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

# --- 3. the workspace, as whoever deploys, with an Entra token (a personal access token cannot create a Key
# Vault-backed scope, and none is made). The paths and their docs: infra/azure/README.md.
databricks_headers "$work/headers.json" "$workspace_id"
dbx() { databricks_call "$databricks_host" "$work/headers.json" "$@"; }

# 3a. The Key Vault-backed secret scope the clusters read their secrets from.
if [ -z "$(retry dbx GET 2.0/secrets/scopes/list --query "scopes[?name=='$scope'].name | [0]" -o tsv)" ]; then
    log "creating the secret scope $scope on $vault"
    dbx POST 2.0/secrets/scopes/create -o none --body "{\"scope\": \"$scope\", \"scope_backend_type\": \"AZURE_KEYVAULT\",
        \"backend_azure_keyvault\": {\"resource_id\": \"$vault_id\", \"dns_name\": \"$vault_uri\"}}"
fi

# 3b. The orchestrator's identity: a Databricks-managed service principal (Databricks OAuth M2M secrets are for
# these; an Entra-managed one would authenticate with Entra secrets instead), found again by its name.
sp_name=$(orchestrator_name "$resource_group")
found=$(dbx GET 2.0/preview/scim/v2/ServicePrincipals --url-parameters "filter=displayName eq \"$sp_name\"" \
    --query "Resources[].join('|', [id, applicationId]) | [0]" -o tsv)
IFS='|' read -r sp_id orchestrator_app_id <<< "$found"
if [ -z "$sp_id" ]; then
    log "creating the Databricks service principal $sp_name"
    entitlements=$(printf '{"value": "%s"}, ' "${SP_ENTITLEMENTS[@]}")
    found=$(dbx POST 2.0/preview/scim/v2/ServicePrincipals --body "{
        \"schemas\": [\"urn:ietf:params:scim:schemas:core:2.0:ServicePrincipal\"], \"displayName\": \"$sp_name\",
        \"active\": true, \"entitlements\": [${entitlements%, }]}" --query "join('|', [id, applicationId])" -o tsv)
    IFS='|' read -r sp_id orchestrator_app_id <<< "$found"
    [ -n "$orchestrator_app_id" ] || die "the workspace returned no service principal"
fi
granted=$(dbx GET "2.0/preview/scim/v2/ServicePrincipals/$sp_id" --query "entitlements[].value" -o tsv)
missing=()
for entitlement in "${SP_ENTITLEMENTS[@]}"; do
    grep -qx "$entitlement" <<< "$granted" || missing+=("$entitlement")
done
if [ ${#missing[@]} -gt 0 ]; then
    log "entitling $sp_name to ${missing[*]}"
    entitlements=$(printf '{"value": "%s"}, ' "${missing[@]}")
    dbx PATCH "2.0/preview/scim/v2/ServicePrincipals/$sp_id" -o none --body "{
        \"schemas\": [\"urn:ietf:params:scim:api:messages:2.0:PatchOp\"],
        \"Operations\": [{\"op\": \"add\", \"path\": \"entitlements\", \"value\": [${entitlements%, }]}]}"
fi

# 3c. Its OAuth secret, in the Key Vault with the secret's expiry as the Key Vault secret's `expires` and the
# Databricks secret's id as a tag. Replaced when it is missing, unknown to the workspace, or within ROTATE_DAYS
# of expiry; the one it replaces stays valid until its own expiry (the apps restart onto the new one below),
# and any older one is deleted, so the service principal holds two at most (Databricks allows five).
client_secret=$(secret_name DATABRICKS_CLIENT_SECRET)
secret_path="2.0/accounts/servicePrincipals/$sp_id/credentials/secrets"
held=$(az keyvault secret show --vault-name "$vault" --name "$client_secret" \
    --query "join('|', [attributes.expires || '', tags.\"$SECRET_ID_TAG\" || ''])" -o tsv 2>/dev/null || true)
IFS='|' read -r expires secret_id <<< "$held"
if [ -n "$secret_id" ] && [ -z "$(dbx GET "$secret_path" --query "secrets[?id=='$secret_id'].id | [0]" -o tsv)" ]; then
    log "the workspace no longer has the OAuth secret the Key Vault holds ($secret_id)"
    expires=""
fi
rotated=false
if due_for_rotation "$expires" "$(utc_in "$ROTATE_DAYS")"; then
    log "${expires:+replacing the OAuth secret of $sp_name, which expires $expires}${expires:-creating an OAuth secret for $sp_name}"
    created=$(dbx POST "$secret_path" --body "{\"lifetime\": \"$((CLIENT_SECRET_DAYS * 86400))s\"}" \
        --query "join('|', [id, expire_time, secret])" -o tsv)
    # Split with expansions: a here-string may go through a temporary file.
    new_id=${created%%|*} && created=${created#*|} && new_expires=${created%%|*} && new_secret=${created#*|}
    unset created
    if [ -z "$new_secret" ] || [ -z "$new_expires" ]; then die "the workspace returned no OAuth secret"; fi
    # Key Vault takes YYYY-MM-DDTHH:MM:SSZ; Databricks writes milliseconds.
    write_secret "$vault" "$client_secret" "$new_secret" --expires "${new_expires:0:19}Z" --tags "$SECRET_ID_TAG=$new_id"
    unset new_secret
    for old_id in $(dbx GET "$secret_path" --query "secrets[?id!='$new_id' && id!='$secret_id'].id" -o tsv); do
        log "deleting the older OAuth secret $old_id of $sp_name"
        dbx DELETE "$secret_path/$old_id" -o none
    done
    [ -z "$secret_id" ] || rotated=true
    expires=$new_expires
fi

# 3d. Read on the secret scope (a step's cluster runs as the service principal and reads the lake's secret).
if [ -z "$(dbx GET 2.0/secrets/acls/list --url-parameters "scope=$scope" \
        --query "acls[?principal=='$orchestrator_app_id'].permission | [0]" -o tsv)" ]; then
    log "granting $sp_name READ on the secret scope $scope"
    dbx POST 2.0/secrets/acls/put -o none \
        --body "{\"scope\": \"$scope\", \"principal\": \"$orchestrator_app_id\", \"permission\": \"READ\"}"
fi

# 3e. The Unity Catalog volume the steps are staged on, in the default catalog unless --catalog names one.
if [ -z "$catalog" ]; then
    catalog=$(dbx GET 2.0/settings/types/default_namespace_ws/names/default --query namespace.value -o tsv 2>/dev/null || true)
fi
if [ -z "$catalog" ]; then
    catalog=$(dbx GET 2.1/unity-catalog/current-metastore-assignment --query default_catalog_name -o tsv 2>/dev/null || true)
fi
case $catalog in
    "" | hive_metastore | spark_catalog)
        die "the workspace has no Unity Catalog default catalog (${catalog:-none}): attach it to a metastore, or name a catalog with --catalog" ;;
esac
schema_name="$catalog.$VOLUME_SCHEMA"
if ! dbx GET "2.1/unity-catalog/schemas/$schema_name" -o none 2>/dev/null; then
    log "creating the schema $schema_name"
    dbx POST 2.1/unity-catalog/schemas -o none \
        --body "{\"catalog_name\": \"$catalog\", \"name\": \"$VOLUME_SCHEMA\", \"comment\": \"$VOLUME_COMMENT\"}"
fi
if ! dbx GET "2.1/unity-catalog/volumes/$schema_name.$VOLUME_NAME" -o none 2>/dev/null; then
    log "creating the volume $schema_name.$VOLUME_NAME"
    dbx POST 2.1/unity-catalog/volumes -o none --body "{\"catalog_name\": \"$catalog\", \"schema_name\": \"$VOLUME_SCHEMA\",
        \"name\": \"$VOLUME_NAME\", \"volume_type\": \"MANAGED\", \"comment\": \"$VOLUME_COMMENT\"}"
fi
volume_path="/Volumes/$catalog/$VOLUME_SCHEMA/$VOLUME_NAME"
# Grant the privileges the principal lacks on a securable.   grant TYPE FULL_NAME PRIVILEGE...
grant() {
    local type=$1 name=$2 privilege held missing=()
    shift 2
    held=$(dbx GET "2.1/unity-catalog/permissions/$type/$name" --url-parameters "principal=$orchestrator_app_id" \
        --query "privilege_assignments[].privileges[]" -o tsv)
    for privilege in "$@"; do
        grep -qx "$privilege" <<< "$held" || missing+=("\"$privilege\"")
    done
    [ ${#missing[@]} -gt 0 ] || return 0
    log "granting $sp_name ${missing[*]} on $type $name"
    dbx PATCH "2.1/unity-catalog/permissions/$type/$name" -o none --body "{\"changes\": [{
        \"principal\": \"$orchestrator_app_id\", \"add\": [$(IFS=,; echo "${missing[*]}")]}]}"
}
grant catalog "$catalog" USE_CATALOG
grant schema "$schema_name" USE_SCHEMA
grant volume "$schema_name.$VOLUME_NAME" READ_VOLUME WRITE_VOLUME

# 3f. The instance pool of the job clusters (named after its node type: another node type makes another pool).
pool_name="movierec-$node_type"
pool_capacity=$((POOL_CLUSTERS * (workers + 1)))
pool_id=$(dbx GET 2.0/instance-pools/list \
    --query "instance_pools[?instance_pool_name=='$pool_name'].instance_pool_id | [0]" -o tsv)
pool_spec="\"instance_pool_name\": \"$pool_name\", \"node_type_id\": \"$node_type\", \"min_idle_instances\": 0,
    \"max_capacity\": $pool_capacity, \"idle_instance_autotermination_minutes\": $POOL_IDLE_MINUTES,
    \"preloaded_spark_versions\": [\"$POOL_RUNTIME\"]"
if [ -z "$pool_id" ]; then
    log "creating the instance pool $pool_name (at most $pool_capacity VMs)"
    pool_id=$(dbx POST 2.0/instance-pools/create --body "{$pool_spec}" --query instance_pool_id -o tsv)
elif [ "$(dbx GET 2.0/instance-pools/get --url-parameters "instance_pool_id=$pool_id" --query max_capacity -o tsv)" != "$pool_capacity" ]; then
    log "resizing the instance pool $pool_name to at most $pool_capacity VMs"
    dbx POST 2.0/instance-pools/edit -o none --body "{\"instance_pool_id\": \"$pool_id\", $pool_spec}"
fi
if [ -z "$(dbx GET "2.0/permissions/instance-pools/$pool_id" \
        --query "access_control_list[?service_principal_name=='$orchestrator_app_id'].all_permissions[].permission_level | [0]" -o tsv)" ]; then
    log "granting $sp_name CAN_ATTACH_TO on the instance pool $pool_name"
    dbx PATCH "2.0/permissions/instance-pools/$pool_id" -o none --body "{\"access_control_list\": [
        {\"service_principal_name\": \"$orchestrator_app_id\", \"permission_level\": \"CAN_ATTACH_TO\"}]}"
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
if [ "$rotated" = true ]; then
    # Container Apps read a Key Vault secret when a revision starts.
    for app in $(output "$DEPLOYMENT" containerAppNames); do
        log "restarting $app onto the new OAuth secret"
        az containerapp revision restart -g "$resource_group" -n "$app" \
            --revision "$(az containerapp show -g "$resource_group" -n "$app" --query properties.latestRevisionName -o tsv)" -o none
    done
fi

# --- 6. the lake's Delta tables in Unity Catalog, as external tables (a table not written yet is registered
# by the next deploy.sh; an external table follows new commits by itself)
lake_uri=$(output "$DEPLOYMENT" MOVIEREC_LAKE)
mapfile -t statements < <(cd "$repo" && python3 -m movierec_dagster.unity_catalog --lake "$lake_uri" --catalog "$catalog")
if [ -z "$warehouse" ]; then
    log "the lake's tables are not registered in Unity Catalog (no --warehouse); in Databricks SQL, run:"
    printf '  %s;\n' "${statements[@]}" >&2
else
    for statement in "${statements[@]}"; do
        body=$(printf '{"warehouse_id": "%s", "wait_timeout": "50s", "statement": %s}' "$warehouse" \
            "$(python3 -c 'import json, sys; print(json.dumps(sys.argv[1]))' "$statement")")
        state=$(dbx POST 2.0/sql/statements --body "$body" --query "join('|', [status.state, status.error.message || ''])" -o tsv)
        case $state in
            SUCCEEDED*) ;;
            *"DELTA_MISSING_DELTA_TABLE"* | *"not a Delta table"* | *"does not exist"*) log "not yet written, so not registered: $statement" ;;
            *) die "Unity Catalog refused \"$statement\": ${state#*|} (is there an external location over $lake_uri? docs/databricks.md)" ;;
        esac
    done
    log "the lake's tables are registered in $catalog.movierec"
fi

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
log "warning: the orchestrator's Databricks OAuth secret ($client_secret in $vault) expires ${expires:0:10};" \
    "run deploy.sh again within $ROTATE_DAYS days of that date and it is replaced"
log "idle? az container stop -g $resource_group -n $(output "$DEPLOYMENT" generatorName);" \
    "az postgres flexible-server stop -g $resource_group -n $(output "$DEPLOYMENT" postgresServerName)"
