"""Who is who: identity tables, pure record features and scoring, the resolver and the review queue."""
