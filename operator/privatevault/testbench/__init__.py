"""A test bench in the manner of controller-runtime's envtest: real services, no mocks.

It runs the real control plane (etcd, kube-apiserver, kube-controller-manager), PostgreSQL 15 and
an OpenBao dev server as local processes on free 127.0.0.1 ports, waits until each one answers,
keeps their logs in a work directory and stops them cleanly, so integration tests and the demo
exercise the same code paths as production without needing a cluster.
"""

from privatevault.testbench.bench import Bench
from privatevault.testbench.controlplane import ControlPlane
from privatevault.testbench.errors import BenchError
from privatevault.testbench.openbao import OpenBao
from privatevault.testbench.postgres import Postgres

__all__ = ["Bench", "BenchError", "ControlPlane", "OpenBao", "Postgres"]
