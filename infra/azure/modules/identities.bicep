// The two user-assigned managed identities: one for the Dagster apps, one for the generator.
param location string
param dagsterIdentityName string
param generatorIdentityName string

resource dagster 'Microsoft.ManagedIdentity/userAssignedIdentities@2023-01-31' = {
  name: dagsterIdentityName
  location: location
}

resource generator 'Microsoft.ManagedIdentity/userAssignedIdentities@2023-01-31' = {
  name: generatorIdentityName
  location: location
}

output dagsterId string = dagster.id
output dagsterPrincipalId string = dagster.properties.principalId
output generatorId string = generator.id
output generatorPrincipalId string = generator.properties.principalId
output generatorClientId string = generator.properties.clientId
