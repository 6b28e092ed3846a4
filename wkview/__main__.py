"""``python -m wkview``: the same as the ``wkview`` command."""

from .cli import run

run()
