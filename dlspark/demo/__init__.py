"""Demo data: a generator of raw feeds with planted patterns, duplicates and bad records (generate.py, from the
catalogue in catalogue.py and the feed formats in feeds.py), and a scorer of a run against its truth (truth.py)."""
