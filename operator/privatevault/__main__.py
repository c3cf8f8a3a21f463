"""``python -m privatevault`` is ``pvctl``."""

from .cli.main import app

app(prog_name="pvctl")
