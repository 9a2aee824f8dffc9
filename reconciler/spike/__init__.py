"""Spike: the API client (client.py, the only user of httpx for Spike), the reading of live
incidents (live.py) and of the organisation's teams (teams.py).

This file imports nothing, so that the CLI can show the default below in --help without
paying for httpx.
"""

#: API calls in flight at most (the client sends fewer while Spike answers 429).
DEFAULT_PARALLELISM = 4
