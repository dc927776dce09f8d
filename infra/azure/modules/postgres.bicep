// Azure Database for PostgreSQL flexible server for the Dagster instance (infra/azure/dagster.yaml):
// Burstable B1ms, 32 GiB, TLS required, reachable from Azure services (Container Apps has no fixed egress).
param location string
param serverName string
param databaseName string
param administratorLogin string
@secure()
param administratorPassword string
@description('Extra client addresses allowed through the firewall (e.g. an orchestrator outside Azure).')
param allowedIps array

resource server 'Microsoft.DBforPostgreSQL/flexibleServers@2024-08-01' = {
  name: serverName
  location: location
  sku: {
    name: 'Standard_B1ms'
    tier: 'Burstable'
  }
  properties: {
    version: '16'
    administratorLogin: administratorLogin
    administratorLoginPassword: administratorPassword
    authConfig: {
      passwordAuth: 'Enabled'
      activeDirectoryAuth: 'Disabled'
    }
    storage: {
      storageSizeGB: 32
      autoGrow: 'Disabled'
    }
    backup: {
      backupRetentionDays: 7
      geoRedundantBackup: 'Disabled'
    }
    highAvailability: {
      mode: 'Disabled'
    }
    network: {
      publicNetworkAccess: 'Enabled'
    }
  }
}

// Connections without TLS are refused (the default, stated here so no one turns it off), TLS 1.2 at least.
resource requireTls 'Microsoft.DBforPostgreSQL/flexibleServers/configurations@2024-08-01' = {
  parent: server
  name: 'require_secure_transport'
  properties: {
    value: 'ON'
    source: 'user-override'
  }
}

resource minimumTls 'Microsoft.DBforPostgreSQL/flexibleServers/configurations@2024-08-01' = {
  parent: server
  name: 'ssl_min_protocol_version'
  properties: {
    value: 'TLSv1.2'
    source: 'user-override'
  }
  dependsOn: [
    requireTls
  ]
}

resource database 'Microsoft.DBforPostgreSQL/flexibleServers/databases@2024-08-01' = {
  parent: server
  name: databaseName
  properties: {
    charset: 'UTF8'
    collation: 'en_US.utf8'
  }
  dependsOn: [
    minimumTls
  ]
}

// 0.0.0.0 is Azure's notation for "services inside Azure", the Container Apps among them.
resource azureServices 'Microsoft.DBforPostgreSQL/flexibleServers/firewallRules@2024-08-01' = {
  parent: server
  name: 'AllowAllAzureServicesAndResourcesWithinAzureIps'
  properties: {
    startIpAddress: '0.0.0.0'
    endIpAddress: '0.0.0.0'
  }
  dependsOn: [
    database
  ]
}

@batchSize(1)
resource clients 'Microsoft.DBforPostgreSQL/flexibleServers/firewallRules@2024-08-01' = [for (ip, i) in allowedIps: {
  parent: server
  name: 'client-${i}'
  properties: {
    startIpAddress: ip
    endIpAddress: ip
  }
  dependsOn: [
    azureServices
  ]
}]

output host string = server.properties.fullyQualifiedDomainName
output serverName string = server.name
output databaseName string = database.name
output administratorLogin string = administratorLogin
