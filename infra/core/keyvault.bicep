// The two secrets of the app: the app registration's client secret and the token encryption key ring.
// The app reads them through Key Vault references; access is by Azure RBAC only (no access policies).
param name string
param location string
param tags object = {}

@secure()
param microsoftClientSecret string

@secure()
param tokenEncryptionKeys string

resource vault 'Microsoft.KeyVault/vaults@2023-07-01' = {
  name: name
  location: location
  tags: tags
  properties: {
    tenantId: subscription().tenantId
    sku: {
      family: 'A'
      name: 'standard'
    }
    enableRbacAuthorization: true
    enableSoftDelete: true
    softDeleteRetentionInDays: 7 // the minimum, so `azd down --purge` and a redeploy under the same name work
    publicNetworkAccess: 'Enabled'
  }
}

resource clientSecret 'Microsoft.KeyVault/vaults/secrets@2023-07-01' = {
  parent: vault
  name: 'microsoft-client-secret'
  properties: {
    value: microsoftClientSecret
    contentType: 'Microsoft Entra app registration client secret'
  }
}

resource tokenKeys 'Microsoft.KeyVault/vaults/secrets@2023-07-01' = {
  parent: vault
  name: 'token-encryption-keys'
  properties: {
    value: tokenEncryptionKeys
    contentType: 'key ring <id>:<base64 of 32 bytes>[,...], newest first'
  }
}

output name string = vault.name
// Versioned URIs: a new secret value changes the app setting, so the app picks it up at once.
output clientCredentialUri string = clientSecret.properties.secretUriWithVersion
output tokenKeyRingUri string = tokenKeys.properties.secretUriWithVersion
