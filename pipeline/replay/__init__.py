"""Replay of stored runs: the WebSocket protocol, the run viewer and `spanline replay verify`."""
