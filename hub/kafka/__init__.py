"""Kafka plumbing: topics, the embedded Tansu broker, the FastStream hub service and a topic reader."""
