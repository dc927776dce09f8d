// The container registry the images are built into (`az acr build` from deploy.sh), and pull rights for the apps.
param location string
param registryName string
@description('Object ids of the managed identities that pull images: AcrPull on this registry.')
param pullerPrincipalIds array

var acrPull = subscriptionResourceId('Microsoft.Authorization/roleDefinitions', '7f951dda-4ed3-4680-a7ca-43fe172d538d')

resource registry 'Microsoft.ContainerRegistry/registries@2023-07-01' = {
  // checkov:skip=CKV_AZURE_163:Vulnerability scanning is Defender for Cloud, billed per image; out of the smallest working size
  // checkov:skip=CKV_AZURE_166:Quarantine needs Premium
  // checkov:skip=CKV_AZURE_233:Zone redundancy needs Premium
  // checkov:skip=CKV_AZURE_139:Public endpoint needed by ACR Tasks' builds, Container Apps and Container Instances; pulls need Entra auth
  name: registryName
  location: location
  sku: {
    name: 'Basic'
  }
  properties: {
    adminUserEnabled: false
    anonymousPullEnabled: false
    publicNetworkAccess: 'Enabled'
  }
}

resource pulls 'Microsoft.Authorization/roleAssignments@2022-04-01' = [for principalId in pullerPrincipalIds: {
  name: guid(registry.id, principalId, acrPull)
  scope: registry
  properties: {
    principalId: principalId
    principalType: 'ServicePrincipal'
    roleDefinitionId: acrPull
  }
}]

output registryName string = registry.name
output loginServer string = registry.properties.loginServer
