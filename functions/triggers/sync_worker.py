"""Queue trigger: "this drive changed" → one sync of that connection (functions/sync/engine.py)."""

import logging

import azure.functions as func

from functions.storage import Queues  # names only: storage imports no SDK at module level

bp = func.Blueprint()
log = logging.getLogger(__name__)


@bp.queue_trigger(arg_name="msg", queue_name=Queues.SYNC, connection="AzureWebJobsStorage")
def sync_worker(msg: func.QueueMessage) -> None:
    from functions import messages
    from functions.sync import engine

    try:
        request = messages.SyncRequest.from_message(msg.get_body())
    except messages.BadMessage as error:
        # Retrying can't help: parked at once, for inspection (the rule is in messages.py).
        log.error("bad sync message (%s); moved to the poison queue", error, extra={"message_id": msg.id})
        messages.park(Queues.SYNC, msg.get_body())
        return
    engine.run(request.connection_id, reason=request.reason)
