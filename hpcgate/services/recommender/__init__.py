"""A learned walltime and memory recommender (issue 18 part 3, ``docs/recommender.md``).

``history`` reads finished steps and their usage, ``model`` fits the quantile models,
``service`` caches them and answers a new calculation's proposal with its evidence.
"""
