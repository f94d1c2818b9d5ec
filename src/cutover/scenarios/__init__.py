"""Built-in data: simulated model profiles and the demo scenario."""
