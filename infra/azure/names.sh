# Names and helpers deploy.sh and destroy.sh share (sourced by both): the tag that marks a resource group as
# deploy.sh's own, the tag recording the lake's Entra application, the deployments' names, the orchestrator's
# Databricks objects, and the calls to the workspace's REST API.
# shellcheck disable=SC2034  # used by the scripts that source this file
OWNER_TAG=managed-by
OWNER=movierec-deploy
APP_TAG=movierec-lake-app
BASE_DEPLOYMENT=movierec-base
DEPLOYMENT=movierec
# The AzureDatabricks first-party application: the audience of Entra tokens for the workspace API.
DATABRICKS_APP_ID=2ff814a6-3304-4ab8-85cb-cd0e6f879c1d
# The orchestrator's identity in the workspace: a Databricks-managed service principal of this name.
orchestrator_name() { echo "movierec-orchestrator-$1"; }
# The schema deploy.sh creates (and destroy.sh drops, only when it carries this comment), and its volume.
VOLUME_SCHEMA=movierec
VOLUME_NAME=staging
VOLUME_COMMENT="created by movierec infra/azure/deploy.sh"
# The Key Vault tag on databricks-client-secret that records which Databricks OAuth secret it holds.
SECRET_ID_TAG=databricks-secret-id

# The headers of every workspace call (a JSON file, so no token is on a command line): the workspace's Azure
# resource id and, when a service principal deploys, its Azure management token.   databricks_headers FILE ID
databricks_headers() {
    local management=""
    if [ "$(az account show --query user.type -o tsv)" = servicePrincipal ]; then
        management=$(az account get-access-token --resource https://management.core.windows.net/ --query accessToken -o tsv)
    fi
    (
        umask 077
        printf '{"X-Databricks-Azure-Workspace-Resource-Id": "%s"%s}\n' "$2" \
            "${management:+, \"X-Databricks-Azure-SP-Management-Token\": \"$management\"}" > "$1"
    )
}

# One call to the workspace's REST API as whoever runs the script, with an Entra token az acquires for the
# AzureDatabricks application (a personal access token is never made).   databricks_call HOST HEADERS METHOD PATH [az args]
# PATH follows /api/ (e.g. 2.0/secrets/scopes/list); the az args add --body, --url-parameters, --query, -o.
databricks_call() {
    local host=$1 headers=$2 method=$3 path=$4
    shift 4
    az rest --method "$method" --url "$host/api/$path" --resource "$DATABRICKS_APP_ID" --headers "@$headers" "$@"
}

# A UTC time DAYS from now as YYYY-MM-DDTHH:MM:SS (GNU date, else BSD date).   utc_in DAYS
utc_in() {
    date -u -d "+$1 days" +%Y-%m-%dT%H:%M:%S 2>/dev/null || date -u -v+"$1"d +%Y-%m-%dT%H:%M:%S
}

# Whether a secret that expires at EXPIRES (ISO 8601, UTC; empty: unknown) is due for replacement, that is
# expires before LIMIT (from utc_in).   due_for_rotation EXPIRES LIMIT
due_for_rotation() {
    [ -z "$1" ] && return 0
    # ISO 8601 times in UTC compare as strings once cut to the same shape (Key Vault writes +00:00, Databricks Z).
    [[ "${1:0:19}" < "${2:0:19}" ]]
}
