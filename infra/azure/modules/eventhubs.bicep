// Event Hubs: a Standard namespace (Basic has no Kafka endpoint), the ratings hub, a consumer group
// for the sensor, a Listen-only policy for the ingest and a send-only role for the generator.
param location string
param namespaceName string
param eventHubName string
param partitionCount int
param sensorConsumerGroup string
@description('Object id of the generator\'s managed identity: it gets Azure Event Hubs Data Sender on the hub only.')
param senderPrincipalId string

var dataSenderRole = subscriptionResourceId('Microsoft.Authorization/roleDefinitions', '2b629674-e913-4c01-ae53-ef4638d8f975')

resource namespace 'Microsoft.EventHub/namespaces@2024-01-01' = {
  name: namespaceName
  location: location
  sku: {
    name: 'Standard'
    tier: 'Standard'
    capacity: 1
  }
  properties: {
    kafkaEnabled: true
    minimumTlsVersion: '1.2'
    isAutoInflateEnabled: false
    // The ingest's Listen policy is a shared access signature: local (SAS) auth stays on.
    disableLocalAuth: false
    publicNetworkAccess: 'Enabled'
  }
}

resource hub 'Microsoft.EventHub/namespaces/eventhubs@2024-01-01' = {
  parent: namespace
  name: eventHubName
  properties: {
    partitionCount: partitionCount
    messageRetentionInDays: 1
  }
}

resource sensorGroup 'Microsoft.EventHub/namespaces/eventhubs/consumergroups@2024-01-01' = {
  parent: hub
  name: sensorConsumerGroup
  properties: {
    userMetadata: 'the ingest: Spark Kafka group id and rating_events_sensor (azure-eventhub)'
  }
}

// The ingest (Spark's Kafka reader on the clusters, and the sensor) may only listen.
resource listenRule 'Microsoft.EventHub/namespaces/eventhubs/authorizationRules@2024-01-01' = {
  parent: hub
  name: 'ingest-listen'
  properties: {
    rights: [
      'Listen'
    ]
  }
}

// The generator may only send, and only to this hub: a role on the hub, no key at all.
resource generatorSends 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(hub.id, senderPrincipalId, dataSenderRole)
  scope: hub
  properties: {
    principalId: senderPrincipalId
    principalType: 'ServicePrincipal'
    roleDefinitionId: dataSenderRole
  }
}

output namespaceName string = namespace.name
output eventHubName string = hub.name
output consumerGroupName string = sensorGroup.name
output listenRuleName string = listenRule.name
