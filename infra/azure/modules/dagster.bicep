// Where Dagster runs: a Container Apps environment with the code location (a gRPC code server, which also
// runs the runs: Dagster's default run launcher), the daemon and the webserver, all from one image.
// Secrets come from the Key Vault through the apps' managed identity (secretRef); nothing secret is in here.
param location string
param environmentName string
param logWorkspaceName string
param namePrefix string
param image string
param identityId string
param registryServer string
param vaultUri string
@description('Addresses (CIDR) allowed to reach the webserver; empty: the webserver has internal ingress only.')
param webserverAllowedCidrs array
@description('The settings every Dagster process reads (name/value pairs, no secrets).')
param settings array

var codePort = 4000
// Environment variable -> Key Vault secret, for the containers (the same names deploy.sh writes).
var secrets = [
  {
    env: 'AZURE_CLIENT_SECRET'
    ref: 'lake-client-secret'
  }
  {
    env: 'EVENTHUB_CONNECTION_STRING'
    ref: 'eventhub-listen-connection-string'
  }
  {
    env: 'DATABRICKS_CLIENT_SECRET'
    ref: 'databricks-client-secret'
  }
  {
    env: 'DAGSTER_PG_PASSWORD'
    ref: 'dagster-pg-password'
  }
]
var appSecrets = [for secret in secrets: {
  name: secret.ref
  keyVaultUrl: '${vaultUri}secrets/${secret.ref}'
  identity: identityId
}]
var secretEnv = [for secret in secrets: {
  name: secret.env
  secretRef: secret.ref
}]
var env = concat(settings, secretEnv)
var registries = [
  {
    server: registryServer
    identity: identityId
  }
]
var identity = {
  type: 'UserAssigned'
  userAssignedIdentities: {
    '${identityId}': {}
  }
}

resource logs 'Microsoft.OperationalInsights/workspaces@2023-09-01' = {
  name: logWorkspaceName
  location: location
  properties: {
    sku: {
      name: 'PerGB2018'
    }
    retentionInDays: 30
    workspaceCapping: {
      dailyQuotaGb: 1
    }
  }
}

resource environment 'Microsoft.App/managedEnvironments@2024-03-01' = {
  name: environmentName
  location: location
  properties: {
    appLogsConfiguration: {
      destination: 'log-analytics'
      logAnalyticsConfiguration: {
        customerId: logs.properties.customerId
        sharedKey: logs.listKeys().primarySharedKey
      }
    }
    workloadProfiles: [
      {
        name: 'Consumption'
        workloadProfileType: 'Consumption'
      }
    ]
  }
}

// The code location: `dagster code-server` on gRPC (HTTP/2 ingress, inside the environment only).
resource code 'Microsoft.App/containerApps@2024-03-01' = {
  name: 'ca-${namePrefix}-code'
  location: location
  identity: identity
  properties: {
    environmentId: environment.id
    workloadProfileName: 'Consumption'
    configuration: {
      activeRevisionsMode: 'Single'
      secrets: appSecrets
      registries: registries
      ingress: {
        external: false
        targetPort: codePort
        transport: 'http2'
        allowInsecure: false
      }
    }
    template: {
      containers: [
        {
          name: 'code'
          image: image
          command: [
            'dagster'
            'code-server'
            'start'
            '--host'
            '0.0.0.0'
            '--port'
            string(codePort)
            '--module-name'
            'movierec_dagster.definitions'
            '--location-name'
            'movierec'
          ]
          env: env
          resources: {
            cpu: json('1.0')
            memory: '2Gi'
          }
        }
      ]
      scale: {
        minReplicas: 1
        maxReplicas: 1
      }
    }
  }
}

// Where the webserver and the daemon find the code location (infra/azure/docker/workspace.yaml reads these).
var codeServer = [
  {
    name: 'DAGSTER_CODE_SERVER_HOST'
    value: code.properties.configuration.ingress.fqdn
  }
  {
    name: 'DAGSTER_CODE_SERVER_PORT'
    value: '443'
  }
]

// Exactly one daemon: schedules, sensors and the run queue.
resource daemon 'Microsoft.App/containerApps@2024-03-01' = {
  name: 'ca-${namePrefix}-daemon'
  location: location
  identity: identity
  properties: {
    environmentId: environment.id
    workloadProfileName: 'Consumption'
    configuration: {
      activeRevisionsMode: 'Single'
      secrets: appSecrets
      registries: registries
    }
    template: {
      containers: [
        {
          name: 'daemon'
          image: image
          command: [
            'dagster-daemon'
            'run'
            '--workspace'
            '/opt/movierec/workspace.yaml'
          ]
          env: concat(env, codeServer)
          resources: {
            cpu: json('0.5')
            memory: '1Gi'
          }
        }
      ]
      scale: {
        minReplicas: 1
        maxReplicas: 1
      }
    }
  }
}

// The UI: reachable from the allowed addresses only (the Dagster webserver has no login of its own).
resource webserver 'Microsoft.App/containerApps@2024-03-01' = {
  name: 'ca-${namePrefix}-webserver'
  location: location
  identity: identity
  properties: {
    environmentId: environment.id
    workloadProfileName: 'Consumption'
    configuration: {
      activeRevisionsMode: 'Single'
      secrets: appSecrets
      registries: registries
      ingress: {
        external: !empty(webserverAllowedCidrs)
        targetPort: 3000
        transport: 'auto'
        allowInsecure: false
        ipSecurityRestrictions: [for (cidr, i) in webserverAllowedCidrs: {
          name: 'allowed-${i}'
          ipAddressRange: cidr
          action: 'Allow'
        }]
      }
    }
    template: {
      containers: [
        {
          name: 'webserver'
          image: image
          command: [
            'dagster-webserver'
            '--host'
            '0.0.0.0'
            '--port'
            '3000'
            '--workspace'
            '/opt/movierec/workspace.yaml'
          ]
          env: concat(env, codeServer)
          resources: {
            cpu: json('0.5')
            memory: '1Gi'
          }
        }
      ]
      // Scales to zero when nobody looks at the UI.
      scale: {
        minReplicas: 0
        maxReplicas: 1
      }
    }
  }
}

output appNames array = [
  code.name
  daemon.name
  webserver.name
]
output webserverFqdn string = webserver.properties.configuration.ingress.fqdn
output environmentId string = environment.id
