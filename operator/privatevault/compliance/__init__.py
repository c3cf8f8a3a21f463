"""Compliance: the check library, evaluation, the score and the history of control states (pure).

The shared design is ``docs/design/compliance.md``; nothing here does I/O.
"""
