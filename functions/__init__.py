"""onedrive-mirror: triggers over capabilities over adapters (tests/unit/test_layers.py keeps it so).

    triggers/        azure.functions lives here only
    signin/ tokens/ notifications/ sync/ upkeep/ api/     capabilities, plain Python
    connections.py messages.py                            the shared records
    microsoft/       HTTP to Microsoft and its wire types
    storage/         the Azure Storage SDKs live here only
    errors.py settings.py telemetry.py                    at the bottom
"""
