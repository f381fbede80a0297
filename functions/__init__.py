"""onedrive-mirror: triggers over capabilities over adapters.

    triggers/        azure.functions lives here only
    signin/ tokens/ notifications/ sync/ upkeep/ api/     capabilities, plain Python
    microsoft/       HTTP to Microsoft and its wire types
    storage/         the Azure Storage SDKs live here only
    connections.py errors.py messages.py settings.py telemetry.py     shared by all of them
"""
