"""The product API: connections, listings, downloads, signed URLs, its OpenAPI document and the status page."""
