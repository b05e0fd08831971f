"""Association mining as a library: FP-growth itemsets and rules (itemsets.py, fpgrowth.py) and the rule and
popularity recommenders (recommend.py). The mine and shards stages use it."""
