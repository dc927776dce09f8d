# Names deploy.sh and destroy.sh share (sourced by both): the tag that marks a resource group as
# deploy.sh's own, the tag recording the lake's Entra application, and the deployments' names.
# shellcheck disable=SC2034  # used by the scripts that source this file
OWNER_TAG=managed-by
OWNER=movierec-deploy
APP_TAG=movierec-lake-app
BASE_DEPLOYMENT=movierec-base
DEPLOYMENT=movierec
