#!/usr/bin/env bash
# Create what sagetrain needs in an AWS account, with the AWS CLI:
#
#   * the execution role SageMaker assumes (trust: execution-role-trust-policy.json,
#     inline policy "sagetrain-execution": execution-role-policy.json);
#   * the ECR repository for the training image;
#   * the S3 bucket for data, checkpoints and models (default: sagemaker-REGION-ACCOUNT);
#   * optionally the developer policy ("sagetrain-developer": developer-policy.json) on an IAM
#     user (--user) and/or on a CI role that GitHub Actions assumes with OIDC (--ci-role,
#     trust: ci-oidc-trust-policy.json; also creates the GitHub OIDC provider if missing).
#
# Run it once, with administrator credentials (e.g. AWS_PROFILE=admin). It is safe to run
# again: existing roles get their trust policy updated, inline policies are overwritten, an
# existing repository or bucket is left alone. Each command is printed before it runs;
# --dry-run prints them (with the filled-in policy documents) and calls nothing, not even AWS.
#
# Needs only bash, sed and the aws CLI.

set -euo pipefail

usage() {
  cat <<'USAGE'
Usage: setup.sh --region REGION [options]

  --region REGION        AWS region of the jobs [env: AWS_REGION, AWS_DEFAULT_REGION]
  --account-id ID        12-digit account id [env: ACCOUNT_ID; default: aws sts
                         get-caller-identity; required with --dry-run]
  --bucket NAME          S3 bucket [env: BUCKET; default: sagemaker-<region>-<account>,
                         the bucket sagetrain uses by default for output]
  --repository NAME      ECR repository [env: REPOSITORY; default: unet-vessels]
  --role-name NAME       execution role [env: ROLE_NAME; default: SageMakerExecutionRole-unet]
  --user NAME            attach the developer policy to this IAM user [env: DEV_USER]
  --ci-role NAME         create this role for GitHub Actions (OIDC) with the developer
                         policy [env: CI_ROLE]; needs --github-repo
  --github-repo O/R      the GitHub repository allowed to assume --ci-role [env: GITHUB_REPO]
  --dry-run              print the commands only; call nothing
  -h, --help             this help
USAGE
}

die() {
  printf 'setup.sh: %s\n' "$*" >&2
  exit 2
}

REGION=${AWS_REGION:-${AWS_DEFAULT_REGION:-}}
ACCOUNT_ID=${ACCOUNT_ID:-}
BUCKET=${BUCKET:-}
REPOSITORY=${REPOSITORY:-unet-vessels}
ROLE_NAME=${ROLE_NAME:-SageMakerExecutionRole-unet}
DEV_USER=${DEV_USER:-}
CI_ROLE=${CI_ROLE:-}
GITHUB_REPO=${GITHUB_REPO:-}
DRY_RUN=0

need_value() {
  [[ $# -ge 2 && -n $2 ]] || die "$1 needs a value"
}

while [[ $# -gt 0 ]]; do
  case $1 in
    --region) need_value "$@"; REGION=$2; shift 2 ;;
    --account-id) need_value "$@"; ACCOUNT_ID=$2; shift 2 ;;
    --bucket) need_value "$@"; BUCKET=$2; shift 2 ;;
    --repository) need_value "$@"; REPOSITORY=$2; shift 2 ;;
    --role-name) need_value "$@"; ROLE_NAME=$2; shift 2 ;;
    --user) need_value "$@"; DEV_USER=$2; shift 2 ;;
    --ci-role) need_value "$@"; CI_ROLE=$2; shift 2 ;;
    --github-repo) need_value "$@"; GITHUB_REPO=$2; shift 2 ;;
    --dry-run) DRY_RUN=1; shift ;;
    -h|--help) usage; exit 0 ;;
    *) usage >&2; die "unknown argument: $1" ;;
  esac
done

case ${BASH_SOURCE[0]} in
  */*) HERE=${BASH_SOURCE[0]%/*} ;;
  *) HERE=. ;;
esac

# The AWS CLI v2 pages long output through `less`; never in a script.
export AWS_PAGER=""

# --- printing and running ------------------------------------------------------------------

# Print a command so that it can be copied into a shell.
show() {
  local out="+" arg q="'\\''"
  for arg in "$@"; do
    if [[ $arg =~ ^[A-Za-z0-9_./:=@,+-]+$ ]]; then
      out+=" $arg"
    else
      out+=" '${arg//\'/$q}'"
    fi
  done
  printf '%s\n' "$out"
}

run() {
  show "$@"
  if [[ $DRY_RUN -eq 0 ]]; then
    "$@"
  fi
}

# Does a resource exist? (Never asked in a dry run: the create command is printed instead.)
exists() {
  [[ $DRY_RUN -eq 0 ]] && "$@" >/dev/null 2>&1
}

# --- inputs --------------------------------------------------------------------------------

[[ -n $REGION ]] || die "give --region (or set AWS_REGION)"
[[ $REGION =~ ^[a-z]{2}(-[a-z]+)+-[0-9]+$ ]] || die "--region: '$REGION' is not a region name"

if [[ -z $ACCOUNT_ID ]]; then
  [[ $DRY_RUN -eq 0 ]] || die "--dry-run calls no AWS API: give --account-id (or ACCOUNT_ID)"
  show aws sts get-caller-identity --query Account --output text
  ACCOUNT_ID=$(aws sts get-caller-identity --query Account --output text)
fi
[[ $ACCOUNT_ID =~ ^[0-9]{12}$ ]] || die "--account-id: '$ACCOUNT_ID' is not a 12-digit account id"

BUCKET=${BUCKET:-sagemaker-$REGION-$ACCOUNT_ID}
[[ $BUCKET =~ ^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$ ]] || die "--bucket: '$BUCKET' is not a valid bucket name"
[[ $REPOSITORY =~ ^([a-z0-9]+([._-][a-z0-9]+)*/)*[a-z0-9]+([._-][a-z0-9]+)*$ ]] \
  || die "--repository: '$REPOSITORY' is not a valid ECR repository name"
[[ $ROLE_NAME =~ ^[A-Za-z0-9+=,.@_-]{1,64}$ ]] || die "--role-name: '$ROLE_NAME' is not a valid role name"
if [[ -n $DEV_USER ]]; then
  [[ $DEV_USER =~ ^[A-Za-z0-9+=,.@_-]{1,64}$ ]] || die "--user: '$DEV_USER' is not a valid user name"
fi
if [[ -n $CI_ROLE ]]; then
  [[ $CI_ROLE =~ ^[A-Za-z0-9+=,.@_-]{1,64}$ ]] || die "--ci-role: '$CI_ROLE' is not a valid role name"
  [[ -n $GITHUB_REPO ]] || die "--ci-role needs --github-repo OWNER/REPO"
  [[ $GITHUB_REPO =~ ^[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+$ ]] \
    || die "--github-repo: '$GITHUB_REPO' is not OWNER/REPO"
fi

# A policy file with the placeholders filled in, on one line.
render() {
  local doc
  doc=$(sed -e "s|ACCOUNT_ID|$ACCOUNT_ID|g" \
            -e "s|REGION|$REGION|g" \
            -e "s|BUCKET|$BUCKET|g" \
            -e "s|REPOSITORY|$REPOSITORY|g" \
            -e "s|ROLE_NAME|$ROLE_NAME|g" \
            -e "s|GITHUB_OWNER/GITHUB_REPO|$GITHUB_REPO|g" \
            "$HERE/$1")
  doc=${doc//$'\n'/ }
  while [[ $doc == *"  "* ]]; do
    doc=${doc//  / }
  done
  # When BUCKET is the default bucket, the developer policy names it twice: keep one.
  local arn one two
  for arn in "arn:aws:s3:::$BUCKET" "arn:aws:s3:::$BUCKET/sagetrain/*"; do
    one="\"$arn\""
    two="$one, $one"
    doc=${doc//"$two"/$one}
  done
  if [[ $doc =~ (ACCOUNT_ID|REGION|BUCKET|REPOSITORY|ROLE_NAME|GITHUB_OWNER|GITHUB_REPO) ]]; then
    die "$1: placeholder ${BASH_REMATCH[1]} left after substitution"
  fi
  printf '%s' "$doc"
}

TRUST_POLICY=$(render execution-role-trust-policy.json)
EXECUTION_POLICY=$(render execution-role-policy.json)
DEVELOPER_POLICY=$(render developer-policy.json)
CI_TRUST_POLICY=
if [[ -n $CI_ROLE ]]; then
  CI_TRUST_POLICY=$(render ci-oidc-trust-policy.json)
fi

if [[ $DRY_RUN -eq 1 ]]; then
  echo "# dry run: nothing is called; commands that create something are shown even if it exists"
fi

# --- execution role ------------------------------------------------------------------------

echo "# execution role $ROLE_NAME (assumed by SageMaker)"
if exists aws iam get-role --role-name "$ROLE_NAME"; then
  run aws iam update-assume-role-policy --role-name "$ROLE_NAME" \
    --policy-document "$TRUST_POLICY"
else
  run aws iam create-role --role-name "$ROLE_NAME" \
    --description "SageMaker execution role for sagetrain jobs" \
    --assume-role-policy-document "$TRUST_POLICY"
fi
run aws iam put-role-policy --role-name "$ROLE_NAME" --policy-name sagetrain-execution \
  --policy-document "$EXECUTION_POLICY"

# --- ECR repository ------------------------------------------------------------------------

echo "# ECR repository $REPOSITORY"
if ! exists aws ecr describe-repositories --region "$REGION" --repository-names "$REPOSITORY"; then
  run aws ecr create-repository --region "$REGION" --repository-name "$REPOSITORY" \
    --image-scanning-configuration scanOnPush=true
fi

# --- S3 bucket -----------------------------------------------------------------------------

echo "# S3 bucket $BUCKET"
if ! exists aws s3api head-bucket --bucket "$BUCKET"; then
  if [[ $REGION == us-east-1 ]]; then
    run aws s3api create-bucket --region "$REGION" --bucket "$BUCKET"
  else
    run aws s3api create-bucket --region "$REGION" --bucket "$BUCKET" \
      --create-bucket-configuration "LocationConstraint=$REGION"
  fi
  run aws s3api put-public-access-block --region "$REGION" --bucket "$BUCKET" \
    --public-access-block-configuration \
    BlockPublicAcls=true,IgnorePublicAcls=true,BlockPublicPolicy=true,RestrictPublicBuckets=true
fi

# --- developer permissions -----------------------------------------------------------------

if [[ -n $DEV_USER ]]; then
  echo "# developer policy on IAM user $DEV_USER"
  run aws iam put-user-policy --user-name "$DEV_USER" --policy-name sagetrain-developer \
    --policy-document "$DEVELOPER_POLICY"
fi

if [[ -n $CI_ROLE ]]; then
  echo "# CI role $CI_ROLE for GitHub Actions in $GITHUB_REPO (OIDC, no stored keys)"
  provider_arn="arn:aws:iam::$ACCOUNT_ID:oidc-provider/token.actions.githubusercontent.com"
  if ! exists aws iam get-open-id-connect-provider --open-id-connect-provider-arn "$provider_arn"; then
    # IAM verifies GitHub's certificate itself; older CLI versions still require a thumbprint.
    run aws iam create-open-id-connect-provider --url https://token.actions.githubusercontent.com \
      --client-id-list sts.amazonaws.com \
      --thumbprint-list 6938fd4d98bab03faadb97b34396831e3780aea1
  fi
  if exists aws iam get-role --role-name "$CI_ROLE"; then
    run aws iam update-assume-role-policy --role-name "$CI_ROLE" \
      --policy-document "$CI_TRUST_POLICY"
  else
    run aws iam create-role --role-name "$CI_ROLE" \
      --description "GitHub Actions role for sagetrain in $GITHUB_REPO" \
      --assume-role-policy-document "$CI_TRUST_POLICY"
  fi
  run aws iam put-role-policy --role-name "$CI_ROLE" --policy-name sagetrain-developer \
    --policy-document "$DEVELOPER_POLICY"
fi

if [[ -z $DEV_USER && -z $CI_ROLE ]]; then
  echo "# no --user or --ci-role: give your own identity the permissions of developer-policy.json"
fi

# --- summary -------------------------------------------------------------------------------

cat <<EOF
# done$([[ $DRY_RUN -eq 1 ]] && echo " (dry run)"). In sagetrain.toml:
#   region = "$REGION"
#   role   = "arn:aws:iam::$ACCOUNT_ID:role/$ROLE_NAME"
#   image  = "$REPOSITORY:latest"    (pushed to $ACCOUNT_ID.dkr.ecr.$REGION.amazonaws.com/$REPOSITORY)
#   data   = s3://$BUCKET/sagetrain/data/train/ and .../validation/
EOF
if [[ -n $CI_ROLE ]]; then
  echo "# GitHub repository variables: AWS_CI_ROLE_ARN=arn:aws:iam::$ACCOUNT_ID:role/$CI_ROLE" \
       "AWS_REGION=$REGION SAGEMAKER_ROLE=arn:aws:iam::$ACCOUNT_ID:role/$ROLE_NAME"
fi
