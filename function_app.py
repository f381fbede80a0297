"""The Azure Functions entry point: the whole app on one screen.

Each trigger module holds one blueprint; the logic lives in plain modules they import lazily,
so importing this file stays cheap (cold start) and never fails on settings.
"""

import os

import azure.functions as func

from functions.triggers import connect, maintenance, picker, product_api, status, sync_worker, webhook

if os.environ.get("APPLICATIONINSIGHTS_CONNECTION_STRING"):  # in Azure: logs to Application Insights, secrets masked
    from functions import telemetry

    telemetry.configure()

app = func.FunctionApp(http_auth_level=func.AuthLevel.FUNCTION)

for trigger_module in (connect, webhook, sync_worker, maintenance, product_api, status, picker):
    app.register_functions(trigger_module.bp)
