"""Quorum: signed M-of-N approvals in front of dangerous actions. Pure: no I/O here.

- ``statement``: the in-toto Statement an approver signs, and the change digest it binds to;
- ``dsse``: the DSSE envelope around it (PAE, keyids, Ed25519 and ML-DSA-65);
- ``ballots``: an Approval judged (Valid / Invalid / Expired) and bound to one change;
- ``decision``: the one decision over rules, ballots, requester and time;
- ``rules``: rules in words, satisfiability, key parsing, and weakenings of a policy;
- ``gate``: a gated action of some object, from its facts to its pending status.
"""

from .ballots import Judged, ballots, binds, verify
from .decision import Ballot, Decision, Requester, decide
from .statement import Statement, Target, change_digest

__all__ = [
    "Ballot",
    "Decision",
    "Judged",
    "Requester",
    "Statement",
    "Target",
    "ballots",
    "binds",
    "change_digest",
    "decide",
    "verify",
]
