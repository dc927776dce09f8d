// The ratings generator in an Azure Container Instance, as the seed ran its generator. It sends with its
// managed identity (Azure Event Hubs Data Sender on the hub): no connection string, no inbound port.
param location string
param containerGroupName string
param image string
param identityId string
@description('Client id of the generator\'s identity, for DefaultAzureCredential.')
param identityClientId string
param registryServer string
param eventHubNamespace string
param eventHubName string
@description('Events a second.')
param rate int

resource generator 'Microsoft.ContainerInstance/containerGroups@2023-05-01' = {
  name: containerGroupName
  location: location
  identity: {
    type: 'UserAssigned'
    userAssignedIdentities: {
      '${identityId}': {}
    }
  }
  properties: {
    osType: 'Linux'
    restartPolicy: 'OnFailure'
    sku: 'Standard'
    imageRegistryCredentials: [
      {
        server: registryServer
        identity: identityId
      }
    ]
    containers: [
      {
        name: 'generator'
        properties: {
          image: image
          command: [
            'movierec-generate'
            '--sink'
            'eventhub'
            '--rate'
            string(rate)
          ]
          environmentVariables: [
            {
              name: 'EVENTHUB_NAMESPACE'
              value: eventHubNamespace
            }
            {
              name: 'EVENTHUB_NAME'
              value: eventHubName
            }
            {
              name: 'AZURE_CLIENT_ID'
              value: identityClientId
            }
          ]
          resources: {
            requests: {
              cpu: json('0.5')
              memoryInGB: json('0.5')
            }
          }
        }
      }
    ]
  }
}

output name string = generator.name
