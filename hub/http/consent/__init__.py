"""The consent API: models, identity queries, the service, its publishers and the router."""
