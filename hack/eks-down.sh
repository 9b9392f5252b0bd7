#!/usr/bin/env bash
# make eks-down: remove everything `make eks-up` created, in dependency order: the chart first (so the load
# balancer controller deletes the NLB while it still runs), then the controller, the EKS cluster (eksctl deletes
# its VPC, node group and Pod Identity roles), and the ECR repositories with their images. Idempotent: whatever
# is already gone is skipped.
#
# Settings (environment): AWS_REGION (default: AWS_DEFAULT_REGION, else us-east-1), CLUSTER_NAME (default:
# species-classifier), HELM (default: bin/helm).
set -euo pipefail
# The settings shared with eks-up.sh, the aws/eksctl/kubectl/helm checks and aws_account.
source "$(dirname "${BASH_SOURCE[0]}")/eks-lib.sh"

aws_account

if eksctl get cluster --name "$CLUSTER_NAME" --region "$AWS_REGION" >/dev/null 2>&1; then
    aws eks update-kubeconfig --name "$CLUSTER_NAME" --region "$AWS_REGION" >/dev/null

    if "$HELM" status "$RELEASE" --namespace "$NAMESPACE" >/dev/null 2>&1; then
        log "uninstalling $RELEASE (the controller deletes its NLB)"
        # Foreground cascade + wait: returns only once the Service (held by the controller's finalizer until the
        # NLB is deleted) is really gone.
        "$HELM" uninstall "$RELEASE" --namespace "$NAMESPACE" --cascade foreground --wait --timeout 10m
    else
        log "release $RELEASE not installed: skipped"
    fi
    # Belt and braces: no load balancer may be orphaned in the VPC (it would also block eksctl from deleting it).
    for _ in $(seq 60); do
        kubectl -n "$NAMESPACE" get service "$RELEASE-gateway" >/dev/null 2>&1 || break
        sleep 5
    done
    kubectl delete namespace "$NAMESPACE" --ignore-not-found --wait=true

    if "$HELM" status aws-load-balancer-controller --namespace kube-system >/dev/null 2>&1; then
        log "uninstalling the AWS Load Balancer Controller"
        "$HELM" uninstall aws-load-balancer-controller --namespace kube-system --wait --timeout 5m
    else
        log "AWS Load Balancer Controller not installed: skipped"
    fi

    if "$HELM" status cluster-autoscaler --namespace kube-system >/dev/null 2>&1; then
        # Removed before the cluster so it cannot scale the node group up again during the teardown.
        log "uninstalling the Cluster Autoscaler"
        "$HELM" uninstall cluster-autoscaler --namespace kube-system --wait --timeout 5m
    fi

    log "deleting cluster $CLUSTER_NAME (10-15 minutes)"
    eksctl delete cluster --name "$CLUSTER_NAME" --region "$AWS_REGION" --wait
else
    log "cluster $CLUSTER_NAME not found in $AWS_REGION: skipped"
fi

for component in gateway serving; do
    repo=species-classifier/$component
    if aws ecr describe-repositories --repository-names "$repo" >/dev/null 2>&1; then
        log "deleting ECR repository $repo and its images"
        aws ecr delete-repository --repository-name "$repo" --force >/dev/null
    else
        log "ECR repository $repo not found: skipped"
    fi
done

cat <<EOF

Everything make eks-up created in $AWS_REGION is gone (check the EC2 console for load balancers if the
controller was removed by hand before the chart).
EOF
