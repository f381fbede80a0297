"""Queue trigger: "this drive changed" → one sync of that connection (functions/engine.py)."""

import logging

import azure.functions as func

bp = func.Blueprint()
log = logging.getLogger(__name__)


@bp.queue_trigger(arg_name="msg", queue_name="sync-requests", connection="AzureWebJobsStorage")
def sync_worker(msg: func.QueueMessage) -> None:
    from functions import messages
    from functions.sync import engine

    try:
        request = messages.SyncRequest.from_message(msg.get_body())
    except messages.BadMessage as error:
        # Can never succeed: fail so the host moves it to the poison queue after its retries,
        # where it stays for inspection.
        log.error("bad sync message: %s", error, extra={"message_id": msg.id})
        raise
    engine.run(request.connection_id, reason=request.reason)
