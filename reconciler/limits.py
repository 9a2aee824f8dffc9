"""Sizes the services this tool talks to impose, apart from their clients: the markdown
renderer needs GitHub's comment limit without importing the GitHub client (and asyncio and
httpx with it) into every `reconcile plan`."""

#: GitHub refuses longer comment (and issue) bodies.
COMMENT_LIMIT = 65_536
