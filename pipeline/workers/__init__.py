"""faust workers: the span and frame agents, dead-lettering, retries and health pages."""
