"""A local host for the function app: HTTP under /api, queue triggers and timers, all derived from
the app's own binding metadata (`app.get_functions()`), for machines without Azure's Core Tools."""
