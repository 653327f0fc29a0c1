"""Checks of the IAM examples (standard library only).

Run from the repository root:  python3 -m unittest discover -s examples/iam/tests -v
"""

from __future__ import annotations

import fnmatch
import json
import os
import re
import shutil
import subprocess
import tempfile
import unittest
from pathlib import Path
from typing import Any, Dict, Iterator, List

IAM_DIR = Path(__file__).resolve().parent.parent
SETUP_SH = IAM_DIR / "setup.sh"
WORKFLOW = IAM_DIR / "github-actions-train.yml"
PLACEHOLDERS = ("ACCOUNT_ID", "REGION", "BUCKET", "REPOSITORY", "ROLE_NAME", "GITHUB_OWNER",
                "GITHUB_REPO")
PLACEHOLDER_RE = re.compile(r"\b(" + "|".join(PLACEHOLDERS) + r")\b")
BASH = shutil.which("bash")


def load(name: str) -> Dict[str, Any]:
    with open(IAM_DIR / name, encoding="utf-8") as f:
        return json.load(f)


def as_list(value: Any) -> List[Any]:
    return value if isinstance(value, list) else [value]


def statements(policy: Dict[str, Any]) -> Iterator[Dict[str, Any]]:
    yield from as_list(policy["Statement"])


def actions(stmt: Dict[str, Any]) -> List[str]:
    return as_list(stmt.get("Action", []))


def resources(stmt: Dict[str, Any]) -> List[str]:
    return as_list(stmt.get("Resource", []))


def policy_files() -> List[Path]:
    return sorted(IAM_DIR.glob("*.json"))


class PolicyFilesTest(unittest.TestCase):
    def test_every_policy_parses_and_is_well_formed(self) -> None:
        files = policy_files()
        self.assertEqual({p.name for p in files}, {
            "execution-role-trust-policy.json", "execution-role-policy.json",
            "developer-policy.json", "ci-oidc-trust-policy.json",
            "admin-create-role-policy.json"})
        for path in files:
            with self.subTest(path.name):
                policy = json.loads(path.read_text(encoding="utf-8"))
                self.assertEqual(policy["Version"], "2012-10-17")
                sids = []
                for stmt in statements(policy):
                    self.assertEqual(stmt["Effect"], "Allow")
                    self.assertTrue(actions(stmt), stmt)
                    self.assertNotIn("NotAction", stmt)
                    self.assertNotIn("NotResource", stmt)
                    sids.append(stmt.get("Sid"))
                self.assertEqual(len(sids), len(set(sids)), "Sids are unique")

    def test_no_statement_allows_every_action(self) -> None:
        for path in policy_files():
            for stmt in statements(load(path.name)):
                for action in actions(stmt):
                    with self.subTest(path.name, action=action):
                        self.assertNotEqual(action, "*")
                        self.assertFalse(action.endswith(":*"), f"service wildcard {action}")

    def test_wildcard_resources_only_where_the_action_has_no_resource(self) -> None:
        allowed = {"ecr:GetAuthorizationToken", "sagemaker:ListTrainingJobs",
                   "cloudwatch:PutMetricData", "servicequotas:ListServiceQuotas",
                   "pricing:GetProducts", "ssmmessages:CreateControlChannel",
                   "ssmmessages:CreateDataChannel", "ssmmessages:OpenControlChannel",
                   "ssmmessages:OpenDataChannel"}
        for name in ("execution-role-policy.json", "developer-policy.json"):
            for stmt in statements(load(name)):
                # A session's target is no ARN: ssm:StartSession on "*" only for the SSM
                # targets of training jobs (RemoteDebuggingTest checks the condition).
                if actions(stmt) == ["ssm:StartSession"] and "Condition" in stmt:
                    continue
                if "*" in resources(stmt):
                    with self.subTest(name, sid=stmt.get("Sid")):
                        self.assertTrue(set(actions(stmt)) <= allowed, actions(stmt))


class ExecutionRoleTest(unittest.TestCase):
    def test_trust_policy_trusts_exactly_sagemaker(self) -> None:
        stmts = list(statements(load("execution-role-trust-policy.json")))
        self.assertEqual(len(stmts), 1)
        self.assertEqual(stmts[0]["Principal"], {"Service": "sagemaker.amazonaws.com"})
        self.assertEqual(actions(stmts[0]), ["sts:AssumeRole"])

    def test_no_broad_s3(self) -> None:
        for stmt in statements(load("execution-role-policy.json")):
            s3_actions = [a for a in actions(stmt) if a.startswith("s3:")]
            if not s3_actions:
                continue
            with self.subTest(sid=stmt.get("Sid")):
                self.assertNotIn("s3:*", s3_actions)
                self.assertNotIn("*", resources(stmt))
                for r in resources(stmt):
                    self.assertTrue(r.startswith("arn:aws:s3:::BUCKET"), r)
                    self.assertNotIn(r, ("arn:aws:s3:::*", "arn:aws:s3:::BUCKET/*"))

    def test_data_is_read_only_and_output_write_only(self) -> None:
        by_action: Dict[str, List[str]] = {}
        for stmt in statements(load("execution-role-policy.json")):
            for a in actions(stmt):
                by_action.setdefault(a, []).extend(resources(stmt))
        self.assertIn("arn:aws:s3:::BUCKET/sagetrain/data/*", by_action["s3:GetObject"])
        self.assertEqual(by_action["s3:PutObject"], ["arn:aws:s3:::BUCKET/sagetrain/*"])
        self.assertNotIn("s3:DeleteObject", by_action)

    def test_list_bucket_is_limited_by_prefix(self) -> None:
        stmt = next(s for s in statements(load("execution-role-policy.json"))
                    if "s3:ListBucket" in actions(s))
        self.assertEqual(resources(stmt), ["arn:aws:s3:::BUCKET"])
        prefixes = as_list(stmt["Condition"]["StringLike"]["s3:prefix"])
        self.assertIn("sagetrain/data/*", prefixes)

    def test_reads_what_sagetrain_uploads_and_the_default_spot_checkpoints(self) -> None:
        # sagetrain puts local data under sagetrain/data/<channel>/<digest>/ and gives spot
        # jobs the checkpoint location <output_path>/<job>/checkpoints/ (output_path default:
        # s3://sagemaker-REGION-ACCOUNT/sagetrain/).
        policy = load("execution-role-policy.json")
        readable = [r for st in statements(policy) if "s3:GetObject" in actions(st) for r in resources(st)]
        for key in ("sagetrain/data/train/0123abcd/images/a.png", "sagetrain/unet-2026-11-29-10-00-00-000/checkpoints/ckpt-1"):
            self.assertTrue(
                any(fnmatch.fnmatchcase(f"arn:aws:s3:::BUCKET/{key}", r) for r in readable),
                f"the execution role cannot read {key}",
            )

    def test_ecr_pull_is_limited_to_the_repository(self) -> None:
        for stmt in statements(load("execution-role-policy.json")):
            if "ecr:BatchGetImage" in actions(stmt):
                self.assertEqual(resources(stmt),
                                 ["arn:aws:ecr:REGION:ACCOUNT_ID:repository/REPOSITORY"])

    def test_metrics_are_limited_to_the_sagemaker_namespace(self) -> None:
        stmt = next(s for s in statements(load("execution-role-policy.json"))
                    if "cloudwatch:PutMetricData" in actions(s))
        self.assertEqual(stmt["Condition"]["StringEquals"]["cloudwatch:namespace"],
                         "/aws/sagemaker/TrainingJobs")


class DeveloperPolicyTest(unittest.TestCase):
    def pass_role_statements(self, name: str) -> List[Dict[str, Any]]:
        return [s for s in statements(load(name))
                if any(a.lower() in ("iam:passrole", "iam:*", "*") or a.lower().startswith("iam:pass")
                       for a in actions(s))]

    def test_pass_role_only_for_the_execution_role_and_only_to_sagemaker(self) -> None:
        stmts = self.pass_role_statements("developer-policy.json")
        self.assertEqual(len(stmts), 1, "exactly one statement grants iam:PassRole")
        stmt = stmts[0]
        self.assertEqual(actions(stmt), ["iam:PassRole"])
        self.assertEqual(stmt["Condition"], {
            "StringEquals": {"iam:PassedToService": "sagemaker.amazonaws.com"}})
        for r in resources(stmt):
            self.assertNotIn("*", r, "no wildcard in the PassRole resource")
        self.assertEqual(resources(stmt), ["arn:aws:iam::ACCOUNT_ID:role/ROLE_NAME"])

    def test_no_other_policy_grants_pass_role(self) -> None:
        for name in ("execution-role-policy.json", "execution-role-trust-policy.json",
                     "ci-oidc-trust-policy.json"):
            self.assertEqual(self.pass_role_statements(name), [], name)

    def test_iam_is_limited_to_the_execution_role(self) -> None:
        for stmt in statements(load("developer-policy.json")):
            iam = [a for a in actions(stmt) if a.startswith("iam:")]
            if iam:
                self.assertTrue(set(iam) <= {"iam:PassRole", "iam:GetRole"}, iam)
                self.assertEqual(resources(stmt), ["arn:aws:iam::ACCOUNT_ID:role/ROLE_NAME"])

    def test_data_upload_permissions_are_limited_to_the_data_prefix(self) -> None:
        policy = load("developer-policy.json")
        deletes = [st for st in statements(policy) if "s3:DeleteObject" in actions(st)]
        self.assertEqual(len(deletes), 1)
        for r in resources(deletes[0]):
            self.assertTrue(r.endswith("/sagetrain/data/*"), r)
        every = [a for st in statements(policy) for a in actions(st)]
        for needed in ("s3:AbortMultipartUpload", "s3:ListMultipartUploadParts", "s3:ListBucketMultipartUploads"):
            self.assertIn(needed, every)

    def test_secrets_the_job_reads_the_role_may_read_and_the_developer_only_describe(self) -> None:
        """`--secret` under `sagetrain/`: the execution role reads the value in the job; the
        developer's `train` and `doctor` only check that the secret exists."""
        prefix = "arn:aws:secretsmanager:REGION:ACCOUNT_ID:secret:sagetrain/*"
        for name, only in (("execution-role-policy.json", "secretsmanager:GetSecretValue"),
                           ("developer-policy.json", "secretsmanager:DescribeSecret")):
            granted = [(a, resources(st)) for st in statements(load(name))
                       for a in actions(st) if a.startswith("secretsmanager:")]
            self.assertEqual(granted, [(only, [prefix])], name)

    def test_the_instance_quota_may_be_read_and_only_sagemakers(self) -> None:
        granted = {a: resources(st) for st in statements(load("developer-policy.json"))
                   for a in actions(st) if a.startswith("servicequotas:")}
        self.assertEqual(granted, {
            "servicequotas:ListServiceQuotas": ["*"],
            "servicequotas:GetServiceQuota": ["arn:aws:servicequotas:REGION:ACCOUNT_ID:sagemaker/*"]})

    def test_training_job_actions(self) -> None:
        granted: Dict[str, List[str]] = {}
        for stmt in statements(load("developer-policy.json")):
            for a in actions(stmt):
                granted.setdefault(a, []).extend(resources(stmt))
        job_arn = "arn:aws:sagemaker:REGION:ACCOUNT_ID:training-job/*"
        for a in ("sagemaker:CreateTrainingJob", "sagemaker:DescribeTrainingJob",
                  "sagemaker:StopTrainingJob", "sagemaker:UpdateTrainingJob",  # pool release
                  "sagemaker:AddTags"):
            self.assertEqual(granted[a], [job_arn], a)
        self.assertEqual(granted["sagemaker:ListTrainingJobs"], ["*"])
        for a in ("ecr:PutImage", "ecr:BatchGetImage", "ecr:DescribeImages"):
            self.assertEqual(granted[a], ["arn:aws:ecr:REGION:ACCOUNT_ID:repository/REPOSITORY"])
        for a in ("logs:GetLogEvents", "logs:FilterLogEvents", "logs:DescribeLogStreams"):
            self.assertEqual(granted[a],
                             ["arn:aws:logs:REGION:ACCOUNT_ID:log-group:/aws/sagemaker/TrainingJobs*"])
        self.assertEqual(granted["s3:CreateBucket"], ["arn:aws:s3:::sagemaker-REGION-ACCOUNT_ID"])


class RemoteDebuggingTest(unittest.TestCase):
    """`sagetrain shell`: the container's SSM agent opens its channels with the execution role;
    the developer starts and ends sessions, on training jobs' targets only."""

    CHANNELS = ["ssmmessages:CreateControlChannel", "ssmmessages:CreateDataChannel",
                "ssmmessages:OpenControlChannel", "ssmmessages:OpenDataChannel"]

    def test_the_role_may_open_exactly_the_ssm_channels(self) -> None:
        granted = [(a, resources(st)) for st in statements(load("execution-role-policy.json"))
                   for a in actions(st) if a.startswith(("ssm:", "ssmmessages:"))]
        self.assertEqual(granted, [(a, ["*"]) for a in self.CHANNELS])

    def test_sessions_only_on_training_jobs_and_their_documents(self) -> None:
        stmts = [st for st in statements(load("developer-policy.json"))
                 if any(a.startswith(("ssm:", "ssmmessages:")) for a in actions(st))]
        granted = {(a, r, json.dumps(st.get("Condition"), sort_keys=True))
                   for st in stmts for a in actions(st) for r in resources(st)}
        target = json.dumps({"StringLike": {
            "ssm:resourceTag/aws:ssmmessages:target-id": "sagemaker-training-job:*"}},
            sort_keys=True)
        self.assertEqual(granted, {
            ("ssm:StartSession", "*", target),
            ("ssm:StartSession", "arn:aws:ssm:REGION:ACCOUNT_ID:document/SSM-SessionManagerRunShell",
             "null"),
            ("ssm:StartSession", "arn:aws:ssm:REGION::document/AWS-StartInteractiveCommand", "null"),
            ("ssm:TerminateSession", "arn:aws:ssm:REGION:ACCOUNT_ID:session/*", "null"),
        })


class AdminCreateRolePolicyTest(unittest.TestCase):
    """The administrator's policy for `sagetrain init --create-role`."""

    CALLS = {"iam:GetRole", "iam:GetRolePolicy", "iam:CreateRole", "iam:PutRolePolicy",
             "iam:TagRole", "iam:UpdateAssumeRolePolicy"}

    def test_exactly_the_calls_of_create_role_on_the_role_path_and_name(self) -> None:
        stmts = list(statements(load("admin-create-role-policy.json")))
        granted: Dict[str, List[str]] = {}
        for stmt in stmts:
            self.assertNotIn("Condition", stmt)
            for a in actions(stmt):
                granted.setdefault(a, []).extend(resources(stmt))
        self.assertEqual(set(granted), self.CALLS)
        for a, res in granted.items():
            self.assertEqual(res, ["arn:aws:iam::ACCOUNT_ID:role/service-role/ROLE_NAME"], a)

    def test_it_cannot_attach_managed_policies_or_pass_roles(self) -> None:
        every = {a for st in statements(load("admin-create-role-policy.json")) for a in actions(st)}
        for forbidden in ("iam:AttachRolePolicy", "iam:PassRole", "iam:DeleteRole",
                          "iam:PutRolePermissionsBoundary", "iam:*"):
            self.assertNotIn(forbidden, every)

    def test_the_developer_policy_stays_without_them(self) -> None:
        every = {a for st in statements(load("developer-policy.json")) for a in actions(st)}
        self.assertEqual(every & self.CALLS, {"iam:GetRole"})  # GetRole: to resolve a role name


class CiTrustPolicyTest(unittest.TestCase):
    def test_web_identity_from_github_with_audience_and_repository(self) -> None:
        stmts = list(statements(load("ci-oidc-trust-policy.json")))
        self.assertEqual(len(stmts), 1)
        stmt = stmts[0]
        self.assertEqual(actions(stmt), ["sts:AssumeRoleWithWebIdentity"])
        self.assertEqual(stmt["Principal"], {
            "Federated": "arn:aws:iam::ACCOUNT_ID:oidc-provider/token.actions.githubusercontent.com"})
        cond = stmt["Condition"]
        self.assertEqual(cond["StringEquals"]["token.actions.githubusercontent.com:aud"],
                         "sts.amazonaws.com")
        sub = cond["StringLike"]["token.actions.githubusercontent.com:sub"]
        self.assertRegex(sub, r"^repo:[^*/]+/[^*/]+:")
        self.assertNotEqual(sub, "*")

    def test_workflow_uses_oidc_and_no_stored_keys(self) -> None:
        text = WORKFLOW.read_text(encoding="utf-8")
        self.assertRegex(text, r"(?m)^\s+id-token: write")
        self.assertIn("aws-actions/configure-aws-credentials@", text)
        self.assertIn("role-to-assume:", text)
        self.assertRegex(text, r"SAGEMAKER_ROLE: \$\{\{ vars\.SAGEMAKER_ROLE \}\}")
        self.assertRegex(text, r"sagetrain train --epochs 50 .*--wait")
        # The prebuilt release binary, checked against its published checksum.
        self.assertIn("sagetrain-x86_64-unknown-linux-gnu.tar.gz", text)
        self.assertRegex(text, r"sha256sum --check")
        for forbidden in ("aws-access-key-id", "aws-secret-access-key", "AWS_SECRET_ACCESS_KEY",
                          "secrets."):
            self.assertNotIn(forbidden, text)
        try:
            import yaml  # not in the standard library: parse only when available
        except ImportError:
            return
        doc = yaml.safe_load(text)
        self.assertEqual(doc["permissions"], {})
        self.assertEqual(doc["jobs"]["train"]["permissions"]["id-token"], "write")


@unittest.skipIf(BASH is None, "bash not found")
class SetupScriptTest(unittest.TestCase):
    VALUES = {"region": "eu-west-1", "account": "111122223333", "bucket": "vessel-data-bucket",
              "repository": "unet-vessels", "role": "SageMakerExecutionRole-unet",
              "user": "alice", "ci_role": "sagetrain-github", "github": "acme/vessels"}

    def setUp(self) -> None:
        self._tmp = tempfile.TemporaryDirectory()
        self.tmp = Path(self._tmp.name)
        self.bin = self.tmp / "bin"
        self.bin.mkdir()
        self.calls = self.tmp / "aws-calls.log"

    def tearDown(self) -> None:
        self._tmp.cleanup()

    def fake_aws(self, body: str) -> None:
        aws = self.bin / "aws"
        aws.write_text("#!/bin/sh\n" f'echo "$*" >> "{self.calls}"\n' + body)
        aws.chmod(0o755)

    def setup_sh(self, *args: str) -> subprocess.CompletedProcess:
        env = dict(os.environ)
        env["PATH"] = f"{self.bin}{os.pathsep}{env.get('PATH', '')}"
        for var in ("AWS_REGION", "AWS_DEFAULT_REGION", "ACCOUNT_ID", "BUCKET", "REPOSITORY",
                    "ROLE_NAME", "DEV_USER", "CI_ROLE", "GITHUB_REPO"):
            env.pop(var, None)
        return subprocess.run([BASH, str(SETUP_SH), *args], env=env, capture_output=True,
                              text=True, timeout=60)

    def full_args(self) -> List[str]:
        v = self.VALUES
        return ["--region", v["region"], "--account-id", v["account"], "--bucket", v["bucket"],
                "--repository", v["repository"], "--role-name", v["role"], "--user", v["user"],
                "--ci-role", v["ci_role"], "--github-repo", v["github"]]

    def test_dry_run_substitutes_everything_and_calls_nothing(self) -> None:
        self.fake_aws("echo 'aws must not be called in a dry run' >&2\nexit 99\n")
        proc = self.setup_sh("--dry-run", *self.full_args())
        self.assertEqual(proc.returncode, 0, proc.stderr)
        self.assertFalse(self.calls.exists(), "aws was called")
        out = proc.stdout
        self.assertIsNone(PLACEHOLDER_RE.search(out), PLACEHOLDER_RE.search(out))
        v = self.VALUES
        for expected in (
                f"arn:aws:s3:::{v['bucket']}/sagetrain/data/*",
                f"arn:aws:ecr:{v['region']}:{v['account']}:repository/{v['repository']}",
                f"arn:aws:iam::{v['account']}:role/{v['role']}",
                f"arn:aws:logs:{v['region']}:{v['account']}:log-group:/aws/sagemaker/TrainingJobs*",
                f"arn:aws:s3:::sagemaker-{v['region']}-{v['account']}",
                f"repo:{v['github']}:*",
                f"arn:aws:iam::{v['account']}:oidc-provider/token.actions.githubusercontent.com"):
            self.assertIn(expected, out)
        commands = [line for line in out.splitlines() if line.startswith("+ aws ")]
        verbs = [" ".join(c.split()[2:4]) for c in commands]
        self.assertEqual(verbs, [
            "iam create-role", "iam put-role-policy", "ecr create-repository",
            "s3api create-bucket", "s3api put-public-access-block", "iam put-user-policy",
            "iam create-open-id-connect-provider", "iam create-role", "iam put-role-policy"])
        self.assertIn(f"LocationConstraint={v['region']}", out)

    def test_printed_policy_documents_are_valid_json(self) -> None:
        self.fake_aws("exit 99\n")
        proc = self.setup_sh("--dry-run", *self.full_args())
        docs = re.findall(r"--(?:assume-role-)?policy-document '([^']*)'", proc.stdout)
        self.assertEqual(len(docs), 5)
        for doc in docs:
            policy = json.loads(doc)
            self.assertEqual(policy["Version"], "2012-10-17")

    def test_default_bucket_and_us_east_1(self) -> None:
        self.fake_aws("exit 99\n")
        proc = self.setup_sh("--dry-run", "--region", "us-east-1", "--account-id", "111122223333")
        self.assertEqual(proc.returncode, 0, proc.stderr)
        self.assertIn("--bucket sagemaker-us-east-1-111122223333", proc.stdout)
        self.assertNotIn("LocationConstraint", proc.stdout)  # us-east-1 takes none
        self.assertIsNone(PLACEHOLDER_RE.search(proc.stdout))

    def test_invalid_input_is_refused(self) -> None:
        self.fake_aws("exit 99\n")
        cases = [
            (["--dry-run", "--region", "eu-west-1"], "--account-id"),
            (["--dry-run", "--account-id", "111122223333"], "--region"),
            (["--dry-run", "--region", "eu-west-1", "--account-id", "12345"], "12-digit"),
            (["--dry-run", "--region", "eu-west-1", "--account-id", "111122223333",
              "--bucket", "Bad_Bucket"], "bucket"),
            (["--dry-run", "--region", "eu-west-1", "--account-id", "111122223333",
              "--ci-role", "ci"], "--github-repo"),
            (["--dry-run", "--bogus"], "unknown argument"),
        ]
        for args, message in cases:
            with self.subTest(args=args):
                proc = self.setup_sh(*args)
                self.assertEqual(proc.returncode, 2, proc.stdout + proc.stderr)
                self.assertIn(message, proc.stderr)
        self.assertFalse(self.calls.exists(), "aws was called")

    def test_real_run_calls_the_aws_cli(self) -> None:
        # get-role, describe-repositories, head-bucket and get-open-id-connect-provider say
        # "not found", so everything is created; sts answers the account id.
        self.fake_aws(
            'case "$*" in\n'
            '  "sts get-caller-identity"*) echo 111122223333 ;;\n'
            '  *get-role*|*describe-repositories*|*head-bucket*|*get-open-id-connect-provider*) exit 254 ;;\n'
            'esac\n'
            "exit 0\n")
        v = self.VALUES
        proc = self.setup_sh("--region", v["region"], "--user", v["user"])
        self.assertEqual(proc.returncode, 0, proc.stdout + proc.stderr)
        calls = self.calls.read_text().splitlines()
        verbs = [" ".join(c.split()[:2]) for c in calls]
        self.assertEqual(verbs, [
            "sts get-caller-identity", "iam get-role", "iam create-role", "iam put-role-policy",
            "ecr describe-repositories", "ecr create-repository", "s3api head-bucket",
            "s3api create-bucket", "s3api put-public-access-block", "iam put-user-policy"])
        self.assertIn("--bucket sagemaker-eu-west-1-111122223333", calls[7])
        self.assertIsNone(PLACEHOLDER_RE.search("\n".join(calls)))
        # each command is printed before it runs
        self.assertIn("+ aws iam create-role --role-name SageMakerExecutionRole-unet", proc.stdout)

    def test_existing_resources_are_updated_not_created(self) -> None:
        self.fake_aws("exit 0\n")
        proc = self.setup_sh("--region", "eu-west-1", "--account-id", "111122223333")
        self.assertEqual(proc.returncode, 0, proc.stdout + proc.stderr)
        verbs = [" ".join(c.split()[:2]) for c in self.calls.read_text().splitlines()]
        self.assertEqual(verbs, [
            "iam get-role", "iam update-assume-role-policy", "iam put-role-policy",
            "ecr describe-repositories", "s3api head-bucket"])

    def test_a_failing_command_stops_the_script(self) -> None:
        self.fake_aws('case "$*" in\n  *get-role*) exit 254 ;;\n  *create-role*) exit 255 ;;\nesac\nexit 0\n')
        proc = self.setup_sh("--region", "eu-west-1", "--account-id", "111122223333")
        self.assertEqual(proc.returncode, 255)
        self.assertNotIn("put-role-policy", self.calls.read_text())


if __name__ == "__main__":
    unittest.main()

    def test_ecr_actions_are_exactly_what_sagetrain_calls_on_the_repository(self) -> None:
        # image push: DescribeRepositories, CreateRepository (scan on push), the layer-upload
        # API and PutImage; train/doctor: DescribeImages, ListImages (tags in an error),
        # BatchGetImage and GetDownloadUrlForLayer (the platform check). No docker login, so no
        # ecr:GetAuthorizationToken.
        expected = {
            "ecr:DescribeRepositories", "ecr:CreateRepository", "ecr:BatchCheckLayerAvailability",
            "ecr:InitiateLayerUpload", "ecr:UploadLayerPart", "ecr:CompleteLayerUpload",
            "ecr:PutImage", "ecr:DescribeImages", "ecr:ListImages", "ecr:BatchGetImage",
            "ecr:GetDownloadUrlForLayer",
        }
        granted: Dict[str, List[str]] = {}
        for stmt in statements(load("developer-policy.json")):
            for a in actions(stmt):
                if a.startswith("ecr:"):
                    granted.setdefault(a, []).extend(resources(stmt))
        self.assertEqual(set(granted), expected)
        for a, res in granted.items():
            self.assertEqual(res, ["arn:aws:ecr:REGION:ACCOUNT_ID:repository/REPOSITORY"], a)
