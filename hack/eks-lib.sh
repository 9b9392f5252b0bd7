# shellcheck shell=bash disable=SC2034  # sourced: the variables set here are read by the scripts that source it
# The setup hack/eks-up.sh and hack/eks-down.sh share (sourced, not run): lib.sh, the working folder, the
# settings both read (documented in each script's header), the tools both need, and the AWS account check.
#
#   source "$(dirname "${BASH_SOURCE[0]}")/eks-lib.sh"     # from hack/eks-*.sh
#
# Sets ROOT (and cd's there), AWS_REGION (exported, so every aws call uses it), CLUSTER_NAME, HELM, NAMESPACE
# and RELEASE; aws_account sets ACCOUNT.

# Messages carry the sourcing script's name (eks-up, eks-down), not this file's.
SCRIPT=${SCRIPT:-$(basename "${BASH_SOURCE[1]:-$0}" .sh)}
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$ROOT" || exit

AWS_REGION=${AWS_REGION:-${AWS_DEFAULT_REGION:-us-east-1}}
CLUSTER_NAME=${CLUSTER_NAME:-species-classifier}
HELM=${HELM:-$ROOT/bin/helm}
NAMESPACE=species-classifier
RELEASE=species-classifier
export AWS_REGION

# --- prerequisites: fail fast, saying what to install or set ---------------------------------------------------
need aws "install the AWS CLI v2 (https://docs.aws.amazon.com/cli/latest/userguide/getting-started-install.html)"
need eksctl "install eksctl v0.230.0 or later (https://eksctl.io/installation/)"
need kubectl "install kubectl (https://kubernetes.io/docs/tasks/tools/)"
[[ -x $HELM ]] || die "$HELM is missing: run \`make tools\`"

# aws_account: ACCOUNT, the AWS account the credentials belong to; fails when there are none. A function, so
# each script asks AWS only after its own local checks.
aws_account() {
    ACCOUNT=$(aws sts get-caller-identity --query Account --output text 2>/dev/null) ||
        die "no usable AWS credentials: run \`aws configure\` / \`aws sso login\`, or set AWS_PROFILE"
}
