"""Service mode (``tsunagu serve``): hub, webhook, metrics and polling feeds in one process."""
