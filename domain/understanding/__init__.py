"""Understanding a prospect's message: features, entities and linear readings.

The reader turns a message into named integer features (lexicon hits in the message's
language, words and word pairs after stemming, typo-tolerant lexicon matches, negation
scope, extracted entities, the lead's metadata); a model is a set of linear heads over
those features whose weights are stored exactly (integer millionths) in the policy, so
every reading is a dot product anyone can recompute, and replay is bit-identical.
"""
