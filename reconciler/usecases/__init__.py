"""The use cases behind the commands: each takes one request and returns one outcome.

Glue between the pure core and I/O; no text formatting and no click here (render.py and
cli.py do that).
"""
