"""SELinux MCS levels for tenants: unique, collision-free under concurrency, never reused.

The package exports the pure parts (levels and allocations); the PostgreSQL store is
``privatevault.mcs.store``, imported only by the composition root and tests.
"""

from privatevault.mcs.level import CATEGORIES, Allocation, Level, parse

__all__ = ["CATEGORIES", "Allocation", "Level", "parse"]
