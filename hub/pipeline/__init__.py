"""The hub's two stages: intake (validate, resolve identity, consent gate) and household (cases, alerts, outputs)."""
