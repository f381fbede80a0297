"""onedrive-mirror: triggers (`http_*`, `queue_*`, `timer_*`) over a core free of azure.functions."""
