"""Execution: the sweep's loop, the worker processes that measure its cases, and their wire protocol."""
