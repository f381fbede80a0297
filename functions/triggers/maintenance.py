"""The maintenance timer (decides and fans out) and its queue worker (one task per message)."""

import logging

import azure.functions as func

from functions.storage import Queues  # names only: storage imports no SDK at module level

bp = func.Blueprint()
log = logging.getLogger(__name__)


@bp.timer_trigger(arg_name="timer", schedule="%MAINTENANCE_SCHEDULE%", run_on_startup=False)
def maintenance_timer(timer: func.TimerRequest) -> None:
    from functions.upkeep import maintenance

    if timer.past_due:
        log.info("maintenance timer is past due; running now")
    maintenance.schedule()


@bp.queue_trigger(arg_name="msg", queue_name=Queues.MAINTENANCE, connection="AzureWebJobsStorage")
def maintenance_worker(msg: func.QueueMessage) -> None:
    from functions import messages
    from functions.upkeep import maintenance

    try:
        task = messages.MaintenanceTask.from_message(msg.get_body())
    except messages.BadMessage as error:
        # Retrying can't help: parked at once, for inspection (the rule is in messages.py).
        log.error("maintenance message unreadable (%s); moved to the poison queue", error)
        messages.park(Queues.MAINTENANCE, msg.get_body())
        return
    try:
        outcome = maintenance.run_task(task)
    except messages.BadMessage as error:
        log.error("maintenance task refused (%s); moved to the poison queue", error, extra={"connection_id": task.connection_id})
        messages.park(Queues.MAINTENANCE, msg.get_body())
        return
    log.info("maintenance %s: %s", task.action, outcome, extra={"connection_id": task.connection_id, "action": task.action})
