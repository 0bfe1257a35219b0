"""The pairwise scorer the e2e tests use: :mod:`hub.identity.pairwise` (shared with ``tsunagu identity score``)."""

from hub.identity.pairwise import missed_pairs, pairwise_counts, pairwise_scores, score_run, wrong_pairs

__all__ = ["missed_pairs", "pairwise_counts", "pairwise_scores", "score_run", "wrong_pairs"]
