"""HTTP surface: the consent API, the operations view, the kodomo webhook and the service app."""
