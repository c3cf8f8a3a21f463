"""The Tenant model refuses what the CRD refuses where PrivateVault, not Kubernetes, sets the rule: an
MCS level exactly when the operator's level parser does, and the cluster's own namespaces."""

from __future__ import annotations

import itertools
import re
from typing import Any

import pytest
from pydantic import ValidationError

from privatevault.api.v1alpha1 import TenantSpec
from privatevault.api.v1alpha1.tenant import (
    MCS_CATEGORIES,
    MCS_DISTINCT_MESSAGE,
    MCS_FORMAT_MESSAGE,
    MCS_RANGE_MESSAGE,
    SYSTEM_NAMESPACE_MESSAGE,
    mcs_level_problem,
)
from privatevault.mcs import level

SPEC: dict[str, Any] = {"owners": [{"kind": "User", "name": "alice"}], "region": "eu-west-1"}

CATEGORY_SPELLINGS = ["0", "1", "7", "0007", "1023", "01023", "1024", "5000", "9999"]


def parses(text: str) -> bool:
    try:
        level.parse(text)
    except ValueError:
        return False
    return True


def test_the_categories_are_the_allocators() -> None:
    assert MCS_CATEGORIES == level.CATEGORIES


@pytest.mark.parametrize(("first", "second"), list(itertools.product(CATEGORY_SPELLINGS, repeat=2)))
def test_an_mcs_level_is_refused_exactly_when_the_operator_cannot_parse_it(first: str, second: str) -> None:
    text = f"s0:c{first},c{second}"
    assert (mcs_level_problem(text) is None) == parses(text)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("s0:c5000,c1", MCS_RANGE_MESSAGE),
        ("s0:c1024,c0", MCS_RANGE_MESSAGE),
        ("s0:c7,c7", MCS_DISTINCT_MESSAGE),
        ("s0:c7,c0007", MCS_DISTINCT_MESSAGE),
        ("s0:c7", MCS_FORMAT_MESSAGE),
        ("s1:c1,c2", MCS_FORMAT_MESSAGE),
        ("s0:c1,c2,c3", MCS_FORMAT_MESSAGE),
        ("s0:c12345,c1", MCS_FORMAT_MESSAGE),
    ],
)
def test_the_model_refuses_a_bad_level_with_the_crds_message(text: str, message: str) -> None:
    assert not parses(text)
    with pytest.raises(ValidationError, match=re.escape(message)):
        TenantSpec.model_validate(SPEC | {"mcsLevel": text})


def test_the_model_takes_a_level_in_either_order() -> None:
    for text in ("s0:c1023,c0", "s0:c0,c1023"):
        assert TenantSpec.model_validate(SPEC | {"mcsLevel": text}).mcs_level == text


@pytest.mark.parametrize("namespace", ["default", "kube-system", "kube-public", "kube-node-lease"])
def test_the_clusters_namespaces_are_no_tenants(namespace: str) -> None:
    with pytest.raises(ValidationError, match=re.escape(SYSTEM_NAMESPACE_MESSAGE)):
        TenantSpec.model_validate(SPEC | {"namespaces": ["apps", namespace]})
