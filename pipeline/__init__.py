"""Spanline: observability and replay for AI agent runs."""
