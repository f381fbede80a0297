"""Trigger module (to be filled by its owner): parse input, call the core, shape the output."""

import azure.functions as func

bp = func.Blueprint()
