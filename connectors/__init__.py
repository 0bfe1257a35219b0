"""Connectors: adapt each agency's system and publish normalized events to Kafka.

Imports only ``schemas`` of ours (see tests/unit/test_dependency_direction.py).
"""
