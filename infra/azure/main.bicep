// movierec on Azure: everything the databricks deployment needs, in one resource group.
// deploy.sh runs this twice: first with deployApps=false (the data services, the registry, the vault),
// then, once the images are built and the secrets written, with deployApps=true (the containers).
//
// Outputs named in UPPER_CASE are the variables of .env.example, with exactly those names: deploy.sh
// prints them as the .env. The others (camelCase) are for deploy.sh and destroy.sh. No output holds a key.
// Parameters that set one of those variables say which in @metadata({ env: ... }).
targetScope = 'resourceGroup'

@description('Region of every resource (the resource group\'s by default).')
param location string = resourceGroup().location

@description('Short lowercase prefix of every name (letters and digits only: storage and registry names allow no hyphen).')
@minLength(3)
@maxLength(10)
param namePrefix string = 'movierec'

@description('Application (client) id of the lake\'s service principal, which deploy.sh creates.')
@metadata({
  env: 'AZURE_CLIENT_ID'
})
param lakeClientId string

@description('Object id of that service principal (for its role on the storage account).')
param lakePrincipalObjectId string

@description('Object id of whoever runs deploy.sh (it writes the secrets).')
param deployerObjectId string

@allowed([
  'User'
  'ServicePrincipal'
])
param deployerPrincipalType string = 'User'

@description('Object id of the AzureDatabricks enterprise application (app id 2ff814a6-3304-4ab8-85cb-cd0e6f879c1d) in this tenant.')
param databricksAppObjectId string

@description('Application id of the orchestrator\'s Databricks service principal, which deploy.sh creates in the workspace (empty in the first deployment).')
@metadata({
  env: 'DATABRICKS_CLIENT_ID'
})
param databricksClientId string = ''

@description('The Unity Catalog volume deploy.sh creates for the steps\' staging, /Volumes/<catalog>/<schema>/<volume>.')
@metadata({
  env: 'MOVIEREC_DATABRICKS_VOLUME'
})
param databricksVolume string = ''

@description('The instance pool deploy.sh creates in the workspace for the job clusters.')
@metadata({
  env: 'MOVIEREC_DATABRICKS_INSTANCE_POOL_ID'
})
param databricksInstancePoolId string = ''

@description('The Event Hub the ratings arrive on.')
@metadata({
  env: 'EVENTHUB_NAME'
})
param eventHubName string = 'ratings'

@minValue(1)
@maxValue(32)
param eventHubPartitions int = 2

@description('The hub\'s consumer group for rating_events_sensor.')
param sensorConsumerGroup string = 'dagster-sensor'

@description('The lake\'s container and the folder in it (MOVIEREC_LAKE is abfss://<container>@<account>.dfs.core.windows.net/<prefix>).')
param lakeContainer string = 'lake'
param lakePrefix string = 'movierec'

@description('The container of the Dagster compute logs.')
@metadata({
  env: 'MOVIEREC_COMPUTE_LOG_CONTAINER'
})
param computeLogContainer string = 'dagster-logs'

@description('The Key Vault-backed Databricks secret scope deploy.sh creates.')
@metadata({
  env: 'MOVIEREC_SECRET_SCOPE'
})
param secretScope string = 'movierec'

@description('Node type of the job cluster each Spark step runs on.')
@metadata({
  env: 'MOVIEREC_DATABRICKS_NODE_TYPE'
})
param databricksNodeType string = 'Standard_D4ds_v5'

@description('Workers of that job cluster (besides its driver).')
@minValue(1)
@metadata({
  env: 'MOVIEREC_DATABRICKS_WORKERS'
})
param databricksWorkers int = 1

@description('Administrator of the PostgreSQL server, which Dagster connects as.')
@metadata({
  env: 'DAGSTER_PG_USER'
})
param postgresAdminLogin string = 'dagster'

@description('Its password: deploy.sh generates it once and keeps it in the Key Vault.')
@secure()
param postgresAdminPassword string

@description('The database of the Dagster instance.')
@metadata({
  env: 'DAGSTER_PG_DB'
})
param postgresDatabase string = 'dagster'

@description('Client IP addresses allowed to reach PostgreSQL besides Azure services (e.g. a laptop running `dagster dev`).')
param postgresAllowedIps array = []

@description('CIDR ranges allowed to reach the Dagster webserver; empty: internal ingress only.')
param webserverAllowedCidrs array = []

@description('false: the data services, registry and vault only; true: also the generator and the Dagster apps.')
param deployApps bool = false

@description('Tag of the images in the registry (deploy.sh: a hash of the files that go into them).')
param imageTag string = ''

@description('Rating events a second from the generator.')
@minValue(1)
param generatorRate int = 5

var suffix = take(uniqueString(resourceGroup().id), 8)
var dagsterImage = '${registry.outputs.loginServer}/movierec-dagster:${imageTag}'
var generatorImage = '${registry.outputs.loginServer}/movierec-generator:${imageTag}'
var lakeUri = 'abfss://${storage.outputs.lakeContainer}@${storage.outputs.dfsHost}/${lakePrefix}'
var databricksHost = 'https://${databricks.outputs.workspaceUrl}'

module identities 'modules/identities.bicep' = {
  name: 'identities'
  params: {
    location: location
    dagsterIdentityName: 'id-${namePrefix}-dagster'
    generatorIdentityName: 'id-${namePrefix}-generator'
  }
}

module eventHubs 'modules/eventhubs.bicep' = {
  name: 'eventhubs'
  params: {
    location: location
    namespaceName: 'evhns-${namePrefix}-${suffix}'
    eventHubName: eventHubName
    partitionCount: eventHubPartitions
    sensorConsumerGroup: sensorConsumerGroup
    senderPrincipalId: identities.outputs.generatorPrincipalId
  }
}

module storage 'modules/storage.bicep' = {
  name: 'storage'
  params: {
    location: location
    accountName: '${namePrefix}lake${suffix}'
    lakeContainer: lakeContainer
    computeLogContainer: computeLogContainer
    lakePrincipalId: lakePrincipalObjectId
  }
}

module vault 'modules/keyvault.bicep' = {
  name: 'keyvault'
  params: {
    location: location
    vaultName: 'kv-${namePrefix}-${suffix}'
    deployerObjectId: deployerObjectId
    deployerPrincipalType: deployerPrincipalType
    databricksAppObjectId: databricksAppObjectId
    readerPrincipalId: identities.outputs.dagsterPrincipalId
  }
}

module databricks 'modules/databricks.bicep' = {
  name: 'databricks'
  params: {
    location: location
    workspaceName: 'dbw-${namePrefix}-${suffix}'
    managedResourceGroupName: 'databricks-rg-${namePrefix}-${suffix}'
  }
}

module postgres 'modules/postgres.bicep' = {
  name: 'postgres'
  params: {
    location: location
    serverName: 'psql-${namePrefix}-${suffix}'
    databaseName: postgresDatabase
    administratorLogin: postgresAdminLogin
    administratorPassword: postgresAdminPassword
    allowedIps: postgresAllowedIps
  }
}

module registry 'modules/registry.bicep' = {
  name: 'registry'
  params: {
    location: location
    registryName: '${namePrefix}acr${suffix}'
    pullerPrincipalIds: [
      identities.outputs.dagsterPrincipalId
      identities.outputs.generatorPrincipalId
    ]
  }
}

module generator 'modules/generator.bicep' = if (deployApps) {
  name: 'generator'
  params: {
    location: location
    containerGroupName: 'ci-${namePrefix}-generator'
    image: generatorImage
    identityId: identities.outputs.generatorId
    identityClientId: identities.outputs.generatorClientId
    registryServer: registry.outputs.loginServer
    eventHubNamespace: eventHubs.outputs.namespaceName
    eventHubName: eventHubs.outputs.eventHubName
    rate: generatorRate
  }
}

module dagster 'modules/dagster.bicep' = if (deployApps) {
  name: 'dagster'
  params: {
    location: location
    environmentName: 'cae-${namePrefix}'
    logWorkspaceName: 'log-${namePrefix}-${suffix}'
    namePrefix: namePrefix
    image: dagsterImage
    identityId: identities.outputs.dagsterId
    registryServer: registry.outputs.loginServer
    vaultUri: vault.outputs.vaultUri
    webserverAllowedCidrs: webserverAllowedCidrs
    settings: [
      {
        name: 'MOVIEREC_DEPLOYMENT'
        value: 'databricks'
      }
      {
        name: 'DATABRICKS_HOST'
        value: databricksHost
      }
      {
        name: 'DATABRICKS_CLIENT_ID'
        value: databricksClientId
      }
      {
        name: 'MOVIEREC_DATABRICKS_VOLUME'
        value: databricksVolume
      }
      {
        name: 'MOVIEREC_DATABRICKS_INSTANCE_POOL_ID'
        value: databricksInstancePoolId
      }
      {
        name: 'MOVIEREC_DATABRICKS_NODE_TYPE'
        value: databricksNodeType
      }
      {
        name: 'MOVIEREC_DATABRICKS_WORKERS'
        value: string(databricksWorkers)
      }
      {
        name: 'MOVIEREC_LAKE'
        value: lakeUri
      }
      {
        name: 'MOVIEREC_SECRET_SCOPE'
        value: secretScope
      }
      {
        name: 'AZURE_TENANT_ID'
        value: subscription().tenantId
      }
      {
        name: 'AZURE_CLIENT_ID'
        value: lakeClientId
      }
      {
        name: 'EVENTHUB_NAMESPACE'
        value: eventHubs.outputs.namespaceName
      }
      {
        name: 'EVENTHUB_NAME'
        value: eventHubs.outputs.eventHubName
      }
      {
        name: 'EVENTHUB_CONSUMER_GROUP'
        value: eventHubs.outputs.consumerGroupName
      }
      {
        name: 'DAGSTER_PG_HOST'
        value: postgres.outputs.host
      }
      {
        name: 'DAGSTER_PG_PORT'
        value: '5432'
      }
      {
        name: 'DAGSTER_PG_USER'
        value: postgres.outputs.administratorLogin
      }
      {
        name: 'DAGSTER_PG_DB'
        value: postgres.outputs.databaseName
      }
      {
        name: 'AZURE_STORAGE_ACCOUNT'
        value: storage.outputs.accountName
      }
      {
        name: 'MOVIEREC_COMPUTE_LOG_CONTAINER'
        value: storage.outputs.computeLogContainer
      }
    ]
  }
}

// The .env (deploy.sh prints these; the secrets it adds from the Key Vault).
output MOVIEREC_DEPLOYMENT string = 'databricks'
output DATABRICKS_HOST string = databricksHost
output DATABRICKS_CLIENT_ID string = databricksClientId
output MOVIEREC_DATABRICKS_VOLUME string = databricksVolume
output MOVIEREC_DATABRICKS_INSTANCE_POOL_ID string = databricksInstancePoolId
output MOVIEREC_DATABRICKS_NODE_TYPE string = databricksNodeType
output MOVIEREC_DATABRICKS_WORKERS string = string(databricksWorkers)
output MOVIEREC_LAKE string = lakeUri
output MOVIEREC_SECRET_SCOPE string = secretScope
output AZURE_TENANT_ID string = subscription().tenantId
output AZURE_CLIENT_ID string = lakeClientId
output EVENTHUB_NAMESPACE string = eventHubs.outputs.namespaceName
output EVENTHUB_NAME string = eventHubs.outputs.eventHubName
output EVENTHUB_CONSUMER_GROUP string = eventHubs.outputs.consumerGroupName
output DAGSTER_PG_HOST string = postgres.outputs.host
output DAGSTER_PG_PORT string = '5432'
output DAGSTER_PG_USER string = postgres.outputs.administratorLogin
output DAGSTER_PG_DB string = postgres.outputs.databaseName
output AZURE_STORAGE_ACCOUNT string = storage.outputs.accountName
output MOVIEREC_COMPUTE_LOG_CONTAINER string = storage.outputs.computeLogContainer

// For the scripts.
output keyVaultName string = vault.outputs.vaultName
output keyVaultId string = vault.outputs.vaultId
output keyVaultUri string = vault.outputs.vaultUri
output databricksWorkspaceId string = databricks.outputs.workspaceId
output registryName string = registry.outputs.registryName
output listenRuleName string = eventHubs.outputs.listenRuleName
output postgresServerName string = postgres.outputs.serverName
output generatorName string = deployApps ? generator.outputs.name : ''
output containerAppNames array = deployApps ? dagster.outputs.appNames : []
output webserverUrl string = deployApps && !empty(webserverAllowedCidrs) ? 'https://${dagster.outputs.webserverFqdn}' : ''
