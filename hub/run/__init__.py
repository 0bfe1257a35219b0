"""The batch run (``tsunagu run``): every feed once through Kafka and the hub, then an export."""
