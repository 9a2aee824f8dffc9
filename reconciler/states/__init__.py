"""State files: loading and validating them (loader.py, reading the YAML with reading.py and
checking plainly valid data with fastpath.py), their schema (schema.py), and the
comment-keeping YAML document that `fmt` and `import` rewrite (document.py).

docs/state-files.md describes the format. This file holds the defaults only and imports
nothing, so that the CLI shows them in --help without loading the loader.
"""

#: Where state files are looked for when no path is given.
DEFAULT_PATHS: tuple[str, ...] = ("states",)
#: The names a state file may end in.
SUFFIXES = (".yaml", ".yml")
