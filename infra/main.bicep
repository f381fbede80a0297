// onedrive-mirror on Azure: `azd up` provisions this, then deploys the function app.
// Everything sits in one resource group; the app reaches storage, Key Vault and Application
// Insights with a user-assigned identity, so no key or connection secret is in any app setting.
targetScope = 'subscription'

@minLength(1)
@maxLength(64)
@description('azd environment name; names the resource group and seeds the resource name suffix.')
param environmentName string

@minLength(1)
@description('Azure region for every resource; it must offer Flex Consumption (az functionapp list-flexconsumption-locations).')
@metadata({ azd: { type: 'location' } })
param location string

@description('Application (client) ID of the Microsoft Entra app registration.')
param microsoftClientId string

@secure()
@description('A client secret of the app registration; stored in Key Vault, never in an app setting.')
param microsoftClientSecret string

@secure()
@description('Token encryption key ring "<id>:<base64 of 32 bytes>[,...]", newest first (python -m devtools.keys); stored in Key Vault.')
param tokenEncryptionKeys string

@description('Where a connect session may send the browser back (return_to): space-separated patterns, e.g. https://app.example.com/*')
param allowedReturnUrls string

@description('Sign-in authority: .../consumers for "Personal Microsoft accounts only" registrations, .../common for "any organizational directory and personal accounts".')
param microsoftAuthority string = 'https://login.microsoftonline.com/consumers'

@description('Microsoft Graph base URL (another host only for sovereign clouds).')
param graphBaseUrl string = 'https://graph.microsoft.com/v1.0'

@description('Delegated Graph scopes asked at sign-in.')
param onedriveScopes string = 'Files.ReadWrite offline_access User.Read'

@description('Seconds one sync invocation may work before it checkpoints and continues in a new message; below host.json functionTimeout.')
param syncTimeBudgetSeconds int = 480

@description('Renew Graph subscriptions that expire within this many hours.')
param subscriptionRenewalWindowHours int = 72

@description('Graph subscription writes per 20 s that maintenance may spend (Graph allows 1,000 per app per tenant).')
param subscriptionWritesPer20s int = 500

@description('Days between full reconciliations of a drive (full enumeration, mark and sweep, blob repair); 0 turns them off.')
param fullReconciliationDays int = 7

@description('NCRONTAB schedule (six fields, seconds first) of the maintenance timer.')
param maintenanceSchedule string = '0 */30 * * * *'

@description('Files API downloads: "large" redirects files above downloadInlineMaxBytes to a short-lived read-only URL (user delegation SAS), "always" redirects every download, "never" streams through the function.')
@allowed(['large', 'always', 'never'])
param downloadRedirect string = 'large'

@description('Largest download, in bytes, the files API streams itself before redirecting.')
param downloadInlineMaxBytes int = 16777216

@description('Most instances Flex Consumption may scale out to (40-1000).')
@minValue(40)
@maxValue(1000)
param maximumInstanceCount int = 100

@description('Always-ready instances kept warm for the HTTP functions, so Graph\'s validation (10 s) and notification (3 s) deadlines survive a cold start; billed while ready.')
@minValue(1)
param httpAlwaysReadyInstances int = 1

@description('Memory per instance in MB.')
@allowed([512, 2048, 4096])
param instanceMemoryMB int = 2048

@description('Days deleted or overwritten blobs stay recoverable.')
@minValue(1)
@maxValue(365)
param blobSoftDeleteDays int = 7

var abbrs = {
  resourceGroup: 'rg-'
  functionApp: 'func-'
  plan: 'plan-'
  storageAccount: 'st'
  keyVault: 'kv-'
  logAnalytics: 'log-'
  appInsights: 'appi-'
  identity: 'id-'
}
var resourceToken = toLower(uniqueString(subscription().id, environmentName, location))
var tags = { 'azd-env-name': environmentName }
var functionAppName = '${abbrs.functionApp}api-${resourceToken}'
var deploymentContainerName = 'app-package-${take(functionAppName, 32)}-${take(resourceToken, 7)}'

// What the code uses (functions/storage: Tables.ALL, Queues.ALL, the files container). Declared
// here because in Azure the app does not create them; tests/infra checks these lists against the code.
var filesContainerName = 'onedrive-files'
var queueNames = [
  'sync-requests'
  'sync-requests-poison' // the host moves a message here after maxDequeueCount failures
  'maintenance-tasks'
  'maintenance-tasks-poison'
  'change-events' // consumed by the product
]
var tableNames = [
  'connections'
  'tokens'
  'oauthstates'
  'subscriptions'
  'syncstate'
  'driveitems'
  'pendingitems'
  'faileditems'
  'skippeditems'
  'appstate'
]

resource rg 'Microsoft.Resources/resourceGroups@2024-03-01' = {
  name: '${abbrs.resourceGroup}${environmentName}'
  location: location
  tags: tags
}

module identity 'app/identity.bicep' = {
  name: 'identity'
  scope: rg
  params: {
    name: '${abbrs.identity}api-${resourceToken}'
    location: location
    tags: tags
  }
}

module monitoring 'core/monitoring.bicep' = {
  name: 'monitoring'
  scope: rg
  params: {
    logAnalyticsName: '${abbrs.logAnalytics}${resourceToken}'
    appInsightsName: '${abbrs.appInsights}${resourceToken}'
    location: location
    tags: tags
  }
}

module storage 'core/storage.bicep' = {
  name: 'storage'
  scope: rg
  params: {
    name: '${abbrs.storageAccount}${resourceToken}'
    location: location
    tags: tags
    containerNames: [
      filesContainerName
      deploymentContainerName
    ]
    queueNames: queueNames
    tableNames: tableNames
    softDeleteDays: blobSoftDeleteDays
  }
}

module keyVault 'core/keyvault.bicep' = {
  name: 'keyvault'
  scope: rg
  params: {
    name: '${abbrs.keyVault}${resourceToken}'
    location: location
    tags: tags
    microsoftClientSecret: microsoftClientSecret
    tokenEncryptionKeys: tokenEncryptionKeys
  }
}

module rbac 'app/rbac.bicep' = {
  name: 'rbac'
  scope: rg
  params: {
    appPrincipalId: identity.outputs.principalId
    storageAccountName: storage.outputs.name
    keyVaultName: keyVault.outputs.name
    appInsightsName: monitoring.outputs.appInsightsName
  }
}

module api 'app/api.bicep' = {
  name: 'api'
  scope: rg
  // The app resolves Key Vault references and reaches storage as soon as it exists: roles first.
  dependsOn: [
    rbac
  ]
  params: {
    name: functionAppName
    planName: '${abbrs.plan}${resourceToken}'
    location: location
    tags: tags
    identityId: identity.outputs.id
    identityClientId: identity.outputs.clientId
    storageAccountName: storage.outputs.name
    deploymentContainerName: deploymentContainerName
    appInsightsName: monitoring.outputs.appInsightsName
    clientCredentialUri: keyVault.outputs.clientCredentialUri
    tokenKeyRingUri: keyVault.outputs.tokenKeyRingUri
    maximumInstanceCount: maximumInstanceCount
    instanceMemoryMB: instanceMemoryMB
    httpAlwaysReadyInstances: httpAlwaysReadyInstances
    appSettings: {
      MICROSOFT_CLIENT_ID: microsoftClientId
      MICROSOFT_AUTHORITY: microsoftAuthority
      GRAPH_BASE_URL: graphBaseUrl
      ONEDRIVE_SCOPES: onedriveScopes
      FILES_CONTAINER: filesContainerName
      ALLOWED_RETURN_URLS: allowedReturnUrls
      SYNC_TIME_BUDGET_SECONDS: string(syncTimeBudgetSeconds)
      SUBSCRIPTION_RENEWAL_WINDOW_HOURS: string(subscriptionRenewalWindowHours)
      SUBSCRIPTION_WRITES_PER_20S: string(subscriptionWritesPer20s)
      FULL_RECONCILIATION_DAYS: string(fullReconciliationDays)
      DOWNLOAD_REDIRECT: downloadRedirect
      DOWNLOAD_INLINE_MAX_BYTES: string(downloadInlineMaxBytes)
      MAINTENANCE_SCHEDULE: maintenanceSchedule
      // Two malloc arenas, not one per thread: a sync's threads otherwise grow the worker's memory with the drive (devtools/host/config.py).
      MALLOC_ARENA_MAX: '2'
    }
  }
}

output AZURE_LOCATION string = location
output AZURE_TENANT_ID string = tenant().tenantId
output AZURE_RESOURCE_GROUP string = rg.name
output AZURE_FUNCTION_NAME string = api.outputs.name
output AZURE_STORAGE_ACCOUNT string = storage.outputs.name
output AZURE_KEY_VAULT_NAME string = keyVault.outputs.name
output APPLICATIONINSIGHTS_NAME string = monitoring.outputs.appInsightsName
output FUNCTION_BASE_URL string = api.outputs.baseUrl
// Register this exact URI in the app registration (Authentication > Web > Redirect URIs).
output OAUTH_REDIRECT_URI string = '${api.outputs.baseUrl}/api/oauth/callback'
output NOTIFICATION_URL string = '${api.outputs.baseUrl}/api/notifications'
// A connect link is made per user by the product's backend (POST /api/connect-sessions); this is where.
output CONNECT_SESSIONS_URL string = '${api.outputs.baseUrl}/api/connect-sessions'
