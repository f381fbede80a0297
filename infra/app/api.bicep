// The function app: a Flex Consumption plan (pay per execution, plus one always-ready instance for the
// HTTP functions so Graph's 10-s validation and 3-s notification deadlines survive a cold start) and a Linux
// Python 3.11 app running as the user-assigned identity. Settings the code reads are built here with
// union(): the caller's plain settings, identity-based storage and telemetry, and Key Vault references.
param name string
param planName string
param location string
param tags object = {}
param identityId string
param identityClientId string
param storageAccountName string
param deploymentContainerName string
param appInsightsName string
param clientCredentialUri string
param tokenKeyRingUri string
param maximumInstanceCount int = 100
param instanceMemoryMB int = 2048
@description('Always-ready instances of the HTTP functions (webhook, sign-in, API): Graph wants its validation request answered within 10 s and notifications within 3 s, which a cold start can miss. Billed while ready (see the README).')
@minValue(1)
param httpAlwaysReadyInstances int = 1

@description('Plain (non-secret) app settings of the app contract.')
param appSettings object

resource storage 'Microsoft.Storage/storageAccounts@2023-05-01' existing = {
  name: storageAccountName
}

resource appInsights 'Microsoft.Insights/components@2020-02-02' existing = {
  name: appInsightsName
}

resource plan 'Microsoft.Web/serverfarms@2024-04-01' = {
  name: planName
  location: location
  tags: tags
  kind: 'functionapp'
  sku: {
    name: 'FC1'
    tier: 'FlexConsumption'
  }
  properties: {
    reserved: true // Linux
  }
}

resource functionApp 'Microsoft.Web/sites@2024-04-01' = {
  name: name
  location: location
  tags: union(tags, { 'azd-service-name': 'api' })
  kind: 'functionapp,linux'
  identity: {
    type: 'UserAssigned'
    userAssignedIdentities: {
      '${identityId}': {}
    }
  }
  properties: {
    serverFarmId: plan.id
    httpsOnly: true
    keyVaultReferenceIdentity: identityId
    siteConfig: {
      minTlsVersion: '1.2'
      ftpsState: 'Disabled'
    }
    functionAppConfig: {
      deployment: {
        storage: {
          type: 'blobContainer'
          value: '${storage.properties.primaryEndpoints.blob}${deploymentContainerName}'
          authentication: {
            type: 'UserAssignedIdentity'
            userAssignedIdentityResourceId: identityId
          }
        }
      }
      scaleAndConcurrency: {
        maximumInstanceCount: maximumInstanceCount
        instanceMemoryMB: instanceMemoryMB
        alwaysReady: [
          {
            name: 'http'
            instanceCount: httpAlwaysReadyInstances
          }
        ]
      }
      runtime: {
        name: 'python'
        version: '3.11'
      }
    }
  }

  // Flex Consumption rejects FUNCTIONS_WORKER_RUNTIME, FUNCTIONS_EXTENSION_VERSION, WEBSITE_CONTENT*
  // and linuxFxVersion: the runtime comes from functionAppConfig above.
  resource settings 'config' = {
    name: 'appsettings'
    properties: union(appSettings, {
      // The host and functions/storage connect with the identity, by account name.
      AzureWebJobsStorage__accountName: storage.name
      AzureWebJobsStorage__credential: 'managedidentity'
      AzureWebJobsStorage__clientId: identityClientId
      APPLICATIONINSIGHTS_CONNECTION_STRING: appInsights.properties.ConnectionString
      // Application Insights accepts only Entra-authenticated telemetry (local auth is off).
      APPLICATIONINSIGHTS_AUTHENTICATION_STRING: 'ClientId=${identityClientId};Authorization=AAD'
      PUBLIC_BASE_URL: 'https://${functionApp.properties.defaultHostName}'
      MICROSOFT_CLIENT_SECRET: '@Microsoft.KeyVault(SecretUri=${clientCredentialUri})'
      TOKEN_ENCRYPTION_KEYS: '@Microsoft.KeyVault(SecretUri=${tokenKeyRingUri})'
    })
  }
}

output name string = functionApp.name
output baseUrl string = 'https://${functionApp.properties.defaultHostName}'
