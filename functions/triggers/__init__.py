"""Triggers: the only importers of azure.functions. Each parses its input, calls one core function and shapes the reply."""
