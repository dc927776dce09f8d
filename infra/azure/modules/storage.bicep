// The lake: an ADLS Gen2 account (hierarchical namespace) with the lake's container and the compute logs'.
// Nobody gets a key: shared-key access is off, and the lake's service principal gets a data role.
param location string
param accountName string
param lakeContainer string
param computeLogContainer string
@description('Object id of the lake\'s service principal: Storage Blob Data Contributor on this account.')
param lakePrincipalId string

var blobDataContributor = subscriptionResourceId('Microsoft.Authorization/roleDefinitions', 'ba92f5b4-2d11-453d-a403-e96b0029c9fe')

resource account 'Microsoft.Storage/storageAccounts@2023-05-01' = {
  // checkov:skip=CKV_AZURE_43:The name is namePrefix (3-10 lowercase letters and digits) + 'lake' + 8 characters of uniqueString: valid, but computed, which the check cannot read
  // checkov:skip=CKV_AZURE_206:LRS is the smallest working size; the lake is rebuilt from MovieLens and the hub
  // checkov:skip=CKV_AZURE_59:Public endpoint needed by the clusters and the orchestrator; shared keys are off, Entra auth only
  // checkov:skip=CKV_AZURE_35:Default network action Allow: clusters without VNet injection have no fixed addresses to allow
  name: accountName
  location: location
  kind: 'StorageV2'
  sku: {
    name: 'Standard_LRS'
  }
  properties: {
    isHnsEnabled: true
    accessTier: 'Hot'
    minimumTlsVersion: 'TLS1_2'
    supportsHttpsTrafficOnly: true
    allowBlobPublicAccess: false
    allowSharedKeyAccess: false
    defaultToOAuthAuthentication: true
    isLocalUserEnabled: false
    isSftpEnabled: false
    publicNetworkAccess: 'Enabled'
    networkAcls: {
      defaultAction: 'Allow'
      bypass: 'AzureServices'
    }
  }
}

resource blobService 'Microsoft.Storage/storageAccounts/blobServices@2023-05-01' = {
  parent: account
  name: 'default'
  properties: {
    deleteRetentionPolicy: {
      enabled: true
      days: 7
    }
    containerDeleteRetentionPolicy: {
      enabled: true
      days: 7
    }
  }
}

resource lake 'Microsoft.Storage/storageAccounts/blobServices/containers@2023-05-01' = {
  parent: blobService
  name: lakeContainer
  properties: {
    publicAccess: 'None'
  }
}

resource computeLogs 'Microsoft.Storage/storageAccounts/blobServices/containers@2023-05-01' = {
  parent: blobService
  name: computeLogContainer
  properties: {
    publicAccess: 'None'
  }
}

resource lakeWriter 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(account.id, lakePrincipalId, blobDataContributor)
  scope: account
  properties: {
    principalId: lakePrincipalId
    principalType: 'ServicePrincipal'
    roleDefinitionId: blobDataContributor
  }
}

output accountName string = account.name
output dfsHost string = '${account.name}.dfs.${environment().suffixes.storage}'
output lakeContainer string = lake.name
output computeLogContainer string = computeLogs.name
