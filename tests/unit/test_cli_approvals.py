"""pvctl approvals and pvctl quorum, run through typer against a fake cluster and an in-memory
keyring handed in as the session (no patching): keys are made and kept, a pending action is shown,
signed and created as an Approval the operator's own check finds Valid, and each mistake (no
pending action, not an approver, no key file, wrong passphrase, foreign keys) ends in one clear
line and exit code 1, never a traceback."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import Result
from typer.testing import CliRunner

from privatevault.api.v1alpha1 import Approval
from privatevault.api.v1alpha1.quorumpolicy import ApproverKeys as ApproverKeysModel
from privatevault.api.v1alpha1.quorumpolicy import QuorumPolicySpec
from privatevault.cli import keystore
from privatevault.cli.keystore import ApproverKeyPairs
from privatevault.cli.main import app
from privatevault.cli.session import ClusterPort, Session
from privatevault.errors import ClusterUnavailable
from privatevault.quorum import verify
from tests import builders
from tests.unit.fakes import FakeCluster, MemoryKeyring

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
DIGEST = "sha256:" + "ab" * 32
ALICE = ApproverKeyPairs.generate("alice")
BOB = ApproverKeyPairs.generate("bob")
PENDING = builders.pending_action(digest=DIGEST)


def _approver(pairs: ApproverKeyPairs, role: str, region: str) -> dict[str, Any]:
    keys = pairs.public_keys()
    return builders.approver(pairs.name, ed25519=keys["ed25519"], ml_dsa65=keys["mlDsa65"], roles=[role], region=region)


POLICY = builders.quorum_policy(
    "two-person",
    approvers=[_approver(ALICE, "security", "eu-west-1"), _approver(BOB, "platform", "us-east-1")],
    rules=[builders.rule(min_approvals=2, required_roles=["security", "platform"])],
    generation=1,
)


class World:
    """The cluster, keyring and folder one test's pvctl sees."""

    def __init__(self, tmp_path: Path) -> None:
        self.cluster = FakeCluster()
        self.cluster.put(POLICY)
        self.cluster.put(builders.tenant("acme", uid="uid-acme", generation=3, status={"pending": [PENDING]}))
        self.keyring: MemoryKeyring | None = MemoryKeyring()
        self.tmp = tmp_path
        self.connect: Callable[[Path | None], ClusterPort] = lambda _: self.cluster

    def session(self) -> Session:
        return Session(connect=self.connect, keyring=lambda: self.keyring, now=lambda: NOW, config_dir=self.tmp / "cfg")

    def run(self, *args: str, input: str | None = None) -> Result:
        result = CliRunner().invoke(app, list(args), obj=self.session(), input=input)
        assert result.exit_code == 0 or isinstance(result.exception, SystemExit), result.exception
        return result

    def approvals(self) -> list[dict[str, Any]]:
        return self.cluster.list("privatevault.io/v1alpha1", "Approval")


@pytest.fixture
def world(tmp_path: Path) -> World:
    return World(tmp_path)


def _judge(manifest: dict[str, Any]) -> Any:
    manifest = manifest | {"metadata": manifest["metadata"] | {"creationTimestamp": "2026-06-01T12:00:00Z"}}
    return verify(Approval.model_validate(manifest), "two-person", QuorumPolicySpec.model_validate(POLICY["spec"]), NOW)


# -- keygen ----------------------------------------------------------------------------------------


def test_keygen_keeps_the_keys_in_the_keyring_and_prints_the_approver(world: World) -> None:
    result = world.run("approvals", "keygen", "--name", "carol")
    assert result.exit_code == 0, result.output
    assert "OS keyring" in result.stderr
    [snippet] = yaml.safe_load(result.stdout)
    assert snippet["name"] == "carol"
    ApproverKeysModel.model_validate(snippet["publicKeys"])
    assert world.keyring is not None
    held = keystore.keyring_load(world.keyring, "carol")
    assert held is not None and held.public_keys() == snippet["publicKeys"]


def test_keygen_without_a_keyring_seals_a_file_under_a_prompted_passphrase(world: World) -> None:
    world.keyring = None
    result = world.run("approvals", "keygen", "--name", "carol", input="s3cret\ns3cret\n")
    assert result.exit_code == 0, result.output
    path = world.tmp / "cfg" / "approvers" / "carol.key"
    assert keystore.read_file(path, b"s3cret").public_keys() == yaml.safe_load(result.stdout)[0]["publicKeys"]
    assert "s3cret" not in result.output


def test_keygen_out_writes_a_file_with_the_passphrase_file(world: World) -> None:
    (world.tmp / "pw").write_text("from-a-file\n")
    result = world.run(
        *f"approvals keygen --name carol --out {world.tmp / 'k'} --passphrase-file {world.tmp / 'pw'}".split(),
        "--format",
        "json",
    )
    assert result.exit_code == 0, result.output
    printed = json.loads(result.stdout)
    assert keystore.read_file(world.tmp / "k" / "carol.key", b"from-a-file").public_keys() == printed["publicKeys"]
    assert world.keyring is not None and world.keyring.secrets == {}


def test_keygen_never_overwrites(world: World) -> None:
    assert world.run("approvals", "keygen", "--name", "carol").exit_code == 0
    result = world.run("approvals", "keygen", "--name", "carol")
    assert result.exit_code == 1
    assert "holds keys for carol already" in result.stderr


def test_keygen_refuses_a_name_no_policy_could_list(world: World) -> None:
    result = world.run("approvals", "keygen", "--name", "Carol Smith")
    assert result.exit_code == 1
    assert "cannot be an approver's name" in result.stderr


# -- create ----------------------------------------------------------------------------------------


def test_create_signs_the_pending_action_with_both_keys(world: World) -> None:
    assert world.keyring is not None
    keystore.keyring_save(world.keyring, ALICE)
    result = world.run("approvals", "create", "tenant/acme", "--approver", "alice", "--yes")
    assert result.exit_code == 0, result.output
    name = f"acme-deletetenant-alice-{'ab' * 4}"
    assert f"approval.privatevault.io/{name} created" in result.stdout
    for shown in (
        "DeleteTenant",
        "Tenant/acme",
        "uid-acme",
        DIGEST,
        "two-person (generation 1)",
        "Ed25519 and ML-DSA-65",
        "2026-06-01T13:00:00Z",
    ):
        assert shown in result.stdout
    [approval] = world.approvals()
    assert approval["metadata"]["name"] == name
    judged = _judge(approval)
    assert (judged.verdict, judged.reason) == ("Valid", "signed by alice (Ed25519 and ML-DSA-65)")


def test_create_asks_first(world: World) -> None:
    assert world.keyring is not None
    keystore.keyring_save(world.keyring, ALICE)
    refused = world.run("approvals", "create", "tenant/acme", "--approver", "alice", input="n\n")
    assert refused.exit_code == 1
    assert "nothing signed" in refused.stderr
    assert world.approvals() == []
    agreed = world.run("approvals", "create", "tenant/acme", "--approver", "alice", "--ttl", "30m", input="y\n")
    assert agreed.exit_code == 0, agreed.output
    [approval] = world.approvals()
    assert approval["spec"]["expires"] == "2026-06-01T12:30:00Z"


def test_create_dry_run_prints_the_signed_approval(world: World) -> None:
    assert world.keyring is not None
    keystore.keyring_save(world.keyring, ALICE)
    result = world.run("approvals", "create", "tenant/acme", "--approver", "alice", "--dry-run")
    assert result.exit_code == 0, result.output
    manifest = yaml.safe_load(result.stdout)
    assert manifest["kind"] == "Approval"
    assert _judge(manifest).verdict == "Valid"
    assert "You are about to approve" in result.stderr
    assert world.approvals() == []


def test_create_with_an_encrypted_key_file(world: World) -> None:
    keystore.write_file(world.tmp / "bob.key", BOB, b"bobs-pass")
    (world.tmp / "pw").write_text("bobs-pass\n")
    key, passphrase = world.tmp / "bob.key", world.tmp / "pw"
    result = world.run(
        *f"approvals create Tenant/acme --approver bob --key-file {key} --passphrase-file {passphrase} --yes".split()
    )
    assert result.exit_code == 0, result.output
    [approval] = world.approvals()
    assert _judge(approval).reason == "signed by bob (Ed25519 and ML-DSA-65)"


def test_create_finds_the_default_key_file_and_prompts(world: World) -> None:
    keystore.write_file(keystore.default_file(world.tmp / "cfg", "bob"), BOB, b"bobs-pass")
    result = world.run("approvals", "create", "tenants/acme", "--approver", "bob", "--yes", input="bobs-pass\n")
    assert result.exit_code == 0, result.output
    assert len(world.approvals()) == 1


def _mistake(world: World, *args: str, input: str | None = None) -> str:
    result = world.run(*args, input=input)
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output
    assert world.approvals() == []
    return result.stderr


def test_a_wrong_passphrase(world: World) -> None:
    keystore.write_file(world.tmp / "bob.key", BOB, b"bobs-pass")
    command = f"approvals create tenant/acme --approver bob --key-file {world.tmp / 'bob.key'} --yes"
    stderr = _mistake(world, *command.split(), input="guess\n")
    assert "wrong passphrase" in stderr


def test_a_missing_key_file(world: World) -> None:
    stderr = _mistake(
        world, *f"approvals create tenant/acme --approver bob --key-file {world.tmp / 'nope.key'}".split()
    )
    assert f"key file {world.tmp / 'nope.key'} does not exist" in stderr


def test_no_keys_at_all(world: World) -> None:
    stderr = _mistake(world, "approvals", "create", "tenant/acme", "--approver", "bob")
    assert "no keys for bob: none in the OS keyring and no key file at" in stderr


def test_not_an_approver(world: World) -> None:
    assert world.keyring is not None
    keystore.keyring_save(world.keyring, ApproverKeyPairs.generate("mallory"))
    stderr = _mistake(world, "approvals", "create", "tenant/acme", "--approver", "mallory", "--yes")
    assert "mallory is not an approver of QuorumPolicy two-person (its approvers: alice, bob)" in stderr


def test_keys_the_policy_does_not_list(world: World) -> None:
    assert world.keyring is not None
    keystore.keyring_save(world.keyring, ApproverKeyPairs.generate("alice"))
    stderr = _mistake(world, "approvals", "create", "tenant/acme", "--approver", "alice", "--yes")
    assert "the keys you hold for alice are not those QuorumPolicy two-person lists" in stderr


def test_no_pending_action(world: World) -> None:
    world.cluster.put(builders.tenant("globex", uid="uid-globex"))
    stderr = _mistake(world, "approvals", "create", "tenant/globex", "--approver", "alice")
    assert "Tenant globex has no pending action: nothing waits for an approval" in stderr
    stderr = _mistake(world, "approvals", "create", "tenant/acme", "--approver", "alice", "--action", "CryptoShred")
    assert "Tenant acme has no pending action CryptoShred" in stderr


def test_no_such_object(world: World) -> None:
    stderr = _mistake(world, "approvals", "create", "tenant/initech", "--approver", "alice")
    assert "Tenant initech does not exist" in stderr


def test_signed_already(world: World) -> None:
    assert world.keyring is not None
    keystore.keyring_save(world.keyring, ALICE)
    assert world.run("approvals", "create", "tenant/acme", "--approver", "alice", "--yes").exit_code == 0
    again = world.run("approvals", "create", "tenant/acme", "--approver", "alice", "--yes")
    assert again.exit_code == 1
    assert "exists already: alice has signed this change" in again.stderr


def test_the_cluster_unreachable(world: World) -> None:
    def down(_: Path | None) -> ClusterPort:
        raise ClusterUnavailable("cannot reach the cluster: no kubeconfig")

    world.connect = down
    stderr = _mistake(world, "approvals", "list")
    assert "cannot reach the cluster: no kubeconfig" in stderr


def test_an_unknown_kind_is_a_usage_error(world: World) -> None:
    result = world.run("approvals", "create", "pod/acme", "--approver", "alice")
    assert result.exit_code == 2
    assert "'pod' is not a PrivateVault kind" in result.output


# -- list and status -------------------------------------------------------------------------------


def _two_approvals(world: World) -> None:
    assert world.keyring is not None
    keystore.keyring_save(world.keyring, ALICE)
    world.run("approvals", "create", "tenant/acme", "--approver", "alice", "--yes")
    other = builders.approval("globex-by-bob", target="globex", target_uid="uid-globex", approver="bob")
    world.cluster.put(other | {"status": {"verdict": "Invalid", "reason": "no signature verifies"}})


def test_list(world: World) -> None:
    _two_approvals(world)
    table = world.run("approvals", "list")
    assert "acme-deletetenant-alice-abababab" in table.stdout and "globex-by-bob" in table.stdout
    assert "no signature verifies" in table.stdout
    rows = json.loads(world.run("approvals", "list", "--format", "json", "--target", "tenant/globex").stdout)
    assert [(r["name"], r["verdict"], r["target"]) for r in rows] == [("globex-by-bob", "Invalid", "Tenant/globex")]
    assert "no Approvals of tenant/initech" in world.run("approvals", "list", "--target", "tenant/initech").stdout


def test_quorum_status(world: World) -> None:
    _two_approvals(world)
    result = world.run("quorum", "status", "tenant/acme")
    assert result.exit_code == 0, result.output
    for shown in (
        "DeleteTenant",
        "0/2",
        "missing role platform",
        "two-person (generation 1)",
        "unknown",
        "pvctl approvals create Tenant/acme --action DeleteTenant --approver <you>",
        "acme-deletetenant-alice-abababab",
    ):
        assert shown in result.stdout, shown
    assert "globex-by-bob" not in result.stdout
    document = json.loads(world.run("quorum", "status", "tenant/acme", "--format", "json").stdout)
    assert document["pending"] == [PENDING]
    assert [a["name"] for a in document["approvals"]] == ["acme-deletetenant-alice-abababab"]


def test_quorum_status_with_nothing_pending(world: World) -> None:
    world.cluster.put(builders.tenant("globex", uid="uid-globex"))
    result = world.run("quorum", "status", "tenant/globex")
    assert result.exit_code == 0
    assert "Tenant globex: nothing waits for approval" in result.stdout


def test_one_of_several_exceptions_pending_is_chosen_by_its_change_digest(world: World) -> None:
    assert world.keyring is not None
    keystore.keyring_save(world.keyring, ALICE)
    entries = [
        builders.pending_action(
            "AddComplianceException",
            target_kind="ComplianceFramework",
            target="soc2",
            target_uid="uid-soc2",
            digest="sha256:" + digit * 64,
        )
        for digit in ("1", "2")
    ]
    world.cluster.put(builders.compliance_framework("soc2", uid="uid-soc2", status={"pending": entries}))
    stderr = _mistake(world, "approvals", "create", "complianceframework/soc2", "--approver", "alice", "--yes")
    assert "several pending AddComplianceException; pass --change, one of sha256:111" in stderr
    result = world.run(
        "approvals", "create", "complianceframework/soc2", "--approver", "alice", "--change", "2222", "--yes"
    )
    assert result.exit_code == 0, result.output
    [made] = world.approvals()
    assert _judge(made).statement.change_digest == "sha256:" + "2" * 64
