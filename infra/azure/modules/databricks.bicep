// The Azure Databricks workspace (premium: Key Vault-backed secret scopes and new workspaces need it).
param location string
param workspaceName string
param managedResourceGroupName string

resource workspace 'Microsoft.Databricks/workspaces@2024-05-01' = {
  // checkov:skip=CKV2_AZURE_48:Root DBFS holds only the step launcher's staging files; a customer-managed key adds a vault key to rotate
  // checkov:skip=CKV_AZURE_158:Private Link needs VNet injection and private endpoints, beyond the smallest working size; secure cluster connectivity is on
  name: workspaceName
  location: location
  sku: {
    name: 'premium'
  }
  properties: {
    managedResourceGroupId: subscriptionResourceId('Microsoft.Resources/resourceGroups', managedResourceGroupName)
    parameters: {
      // Secure cluster connectivity: cluster nodes get no public IP (Databricks adds a NAT gateway for egress).
      enableNoPublicIp: {
        value: true
      }
    }
  }
}

output workspaceId string = workspace.id
output workspaceUrl string = workspace.properties.workspaceUrl
