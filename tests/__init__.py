"""The test suite: every folder a package (module names tests.FOLDER.NAME, for mypy)."""
