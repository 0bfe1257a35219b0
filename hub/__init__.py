"""The hub: the only package that wires schemas, connectors and consent together. Nothing imports hub."""
