#!/usr/bin/env bash
# make eks-up: create (or reuse) the EKS cluster from eksctl-cluster.yaml, push both images to ECR, install the
# AWS Load Balancer Controller and the chart with values-eks.yaml, then classify every golden image through the
# internet-facing NLB. Idempotent: every step skips what already exists.
#
# Settings (environment):
#   AWS_REGION      region of the cluster and registries (default: AWS_DEFAULT_REGION, else us-east-1)
#   CLUSTER_NAME    EKS cluster name (default: species-classifier)
#   IMAGE_TAG       tag of both images (default: git short SHA, `-dirty-<time>` appended for uncommitted changes)
#   HELM            helm binary (default: bin/helm, installed by `make tools`)
set -euo pipefail
# The settings shared with eks-down.sh, the aws/eksctl/kubectl/helm checks and aws_account.
source "$(dirname "${BASH_SOURCE[0]}")/eks-lib.sh"

CHART=$ROOT/charts/species-classifier
# AWS Load Balancer Controller chart (https://aws.github.io/eks-charts), pinned; chart 3.5.0 ships controller
# v3.5.0. Its IAM policy comes from eksctl's wellKnownPolicies.awsLoadBalancerController.
LBC_CHART_VERSION=3.5.0
# Cluster Autoscaler chart (https://kubernetes.github.io/autoscaler), pinned; its image minor must equal the
# cluster's Kubernetes minor (eksctl-cluster.yaml metadata.version), so the tag is set explicitly.
CA_CHART_VERSION=9.54.0
CA_IMAGE_TAG=v1.35.0
GW_PY=$ROOT/.venv-gateway/bin/python
WORK=$ROOT/build/eks

# --- prerequisites: fail fast, saying what to install or set ---------------------------------------------------
need docker "install Docker (https://docs.docker.com/get-docker/)"
docker_answers || die "the Docker engine is not reachable: start Docker (the images are built locally)"
[[ -x $GW_PY ]] || die "$GW_PY is missing: run \`make venv\`"
compgen -G "build/golden/*.jpg" >/dev/null || die "no golden images in build/golden: run \`make model\`"
[[ -f build/models/species_model/1/saved_model.pb ]] || die "no exported model in build/models: run \`make model\`"
aws_account
REGISTRY=$ACCOUNT.dkr.ecr.$AWS_REGION.amazonaws.com

if [[ -z ${IMAGE_TAG:-} ]]; then
    IMAGE_TAG=$(git rev-parse --short HEAD 2>/dev/null || echo "${APP_VERSION:-$(make -s -C "$ROOT" print-version)}")
    if [[ -n $(git status --porcelain 2>/dev/null) ]]; then
        # ECR tags are immutable here, so uncommitted changes get a tag of their own.
        IMAGE_TAG=$IMAGE_TAG-dirty-$(date -u +%Y%m%d%H%M%S)
    fi
fi
log "account $ACCOUNT, region $AWS_REGION, cluster $CLUSTER_NAME, image tag $IMAGE_TAG"
mkdir -p "$WORK/golden"

# --- cluster ---------------------------------------------------------------------------------------------------
if eksctl get cluster --name "$CLUSTER_NAME" --region "$AWS_REGION" >/dev/null 2>&1; then
    log "cluster $CLUSTER_NAME exists: reusing it"
else
    log "creating cluster $CLUSTER_NAME (15-20 minutes)"
    # eksctl refuses --name/--region together with -f, so the two metadata fields are substituted in a copy.
    sed -e "s/^  name: .*/  name: $CLUSTER_NAME/" -e "s/^  region: .*/  region: $AWS_REGION/" \
        -e "s#k8s.io/cluster-autoscaler/species-classifier:#k8s.io/cluster-autoscaler/$CLUSTER_NAME:#" \
        eksctl-cluster.yaml >"$WORK/eksctl-cluster.yaml"
    eksctl create cluster -f "$WORK/eksctl-cluster.yaml"
fi
aws eks update-kubeconfig --name "$CLUSTER_NAME" --region "$AWS_REGION" >/dev/null
VPC_ID=$(aws eks describe-cluster --name "$CLUSTER_NAME" --query cluster.resourcesVpcConfig.vpcId --output text)

# --- images ----------------------------------------------------------------------------------------------------
log "pushing images to $REGISTRY"
aws ecr get-login-password | docker login --username AWS --password-stdin "$REGISTRY" >/dev/null
for component in gateway serving; do
    repo=species-classifier/$component
    if ! aws ecr describe-repositories --repository-names "$repo" >/dev/null 2>&1; then
        aws ecr create-repository --repository-name "$repo" --image-tag-mutability IMMUTABLE \
            --image-scanning-configuration scanOnPush=true >/dev/null
        log "created ECR repository $repo"
    fi
    if aws ecr describe-images --repository-name "$repo" --image-ids "imageTag=$IMAGE_TAG" >/dev/null 2>&1; then
        log "$repo:$IMAGE_TAG is already in ECR"
        continue
    fi
    # The node group runs x86_64 (c7i); --platform keeps builds on ARM laptops runnable there.
    docker build --platform linux/amd64 -f "$component/Dockerfile" -t "$REGISTRY/$repo:$IMAGE_TAG" .
    docker push "$REGISTRY/$repo:$IMAGE_TAG"
done

# --- AWS Load Balancer Controller ------------------------------------------------------------------------------
log "installing the AWS Load Balancer Controller (chart $LBC_CHART_VERSION)"
# The ServiceAccount and its Pod Identity role come from eksctl-cluster.yaml. region and vpcId are passed because
# the node group blocks IMDS for pods, where the controller would otherwise look them up.
"$HELM" upgrade --install aws-load-balancer-controller aws-load-balancer-controller \
    --repo https://aws.github.io/eks-charts --version "$LBC_CHART_VERSION" \
    --namespace kube-system \
    --set clusterName="$CLUSTER_NAME" \
    --set serviceAccount.create=false \
    --set serviceAccount.name=aws-load-balancer-controller \
    --set region="$AWS_REGION" \
    --set vpcId="$VPC_ID" \
    --wait --timeout 10m

# --- Cluster Autoscaler ----------------------------------------------------------------------------------------
log "installing the Cluster Autoscaler (chart $CA_CHART_VERSION, image $CA_IMAGE_TAG)"
# ServiceAccount and Pod Identity role from eksctl-cluster.yaml; awsRegion is given because pods have no IMDS.
"$HELM" upgrade --install cluster-autoscaler cluster-autoscaler \
    --repo https://kubernetes.github.io/autoscaler --version "$CA_CHART_VERSION" \
    --namespace kube-system \
    --set autoDiscovery.clusterName="$CLUSTER_NAME" \
    --set awsRegion="$AWS_REGION" \
    --set image.tag="$CA_IMAGE_TAG" \
    --set rbac.serviceAccount.create=false \
    --set rbac.serviceAccount.name=cluster-autoscaler \
    --wait --timeout 10m

# --- the chart -------------------------------------------------------------------------------------------------
log "installing $RELEASE into namespace $NAMESPACE"
kubectl create namespace "$NAMESPACE" --dry-run=client -o yaml | kubectl apply -f - >/dev/null
# Pod Security "restricted" enforced by the API server, as in k8s/components/namespace; and the controller's
# pod readiness gate, so a rollout waits until new pods are healthy NLB targets.
kubectl label namespace "$NAMESPACE" --overwrite \
    pod-security.kubernetes.io/enforce=restricted \
    pod-security.kubernetes.io/warn=restricted \
    elbv2.k8s.aws/pod-readiness-gate-inject=enabled >/dev/null

# helm test classifies three golden images: a release (one Secret) holds at most 1 MiB and carries each image
# twice (values and the hook's ConfigMap). All eight go through the load balancer below.
golden_args=()
for label in leopard bird blank; do
    image=build/golden/$label.jpg
    base64 <"$image" | tr -d '\n' >"$WORK/golden/$label.b64"
    golden_args+=(--set-file "tests.predict.goldenImages.$label=$WORK/golden/$label.b64")
done

"$HELM" upgrade --install "$RELEASE" "$CHART" \
    --namespace "$NAMESPACE" --create-namespace \
    -f "$CHART/values-eks.yaml" \
    --set gateway.image.registry="$REGISTRY" --set-string gateway.image.tag="$IMAGE_TAG" \
    --set serving.image.registry="$REGISTRY" --set-string serving.image.tag="$IMAGE_TAG" \
    "${golden_args[@]}" \
    --wait --timeout 15m

# --- the load balancer -----------------------------------------------------------------------------------------
log "waiting for the NLB hostname"
host=""
for _ in $(seq 60); do
    host=$(kubectl -n "$NAMESPACE" get service "$RELEASE-gateway" \
        -o jsonpath='{.status.loadBalancer.ingress[0].hostname}' 2>/dev/null || true)
    [[ -n $host ]] && break
    sleep 10
done
[[ -n $host ]] || die "no load balancer hostname after 10 minutes: kubectl -n kube-system logs deployment/aws-load-balancer-controller"
log "gateway endpoint: http://$host"

# --- smoke test through the NLB --------------------------------------------------------------------------------
log "classifying the golden images through http://$host"
# A new NLB needs a few minutes before its DNS name resolves and its targets pass health checks: retry the first
# image for up to 10 minutes, then every image must pass.
goldens=(build/golden/*.jpg)
first=${goldens[0]}
for attempt in $(seq 40); do
    if "$GW_PY" -m gateway.client --endpoint "http://$host" --expect-label "$(basename "$first" .jpg)" "$first" \
        >/dev/null 2>&1; then
        break
    fi
    [[ $attempt == 40 ]] && die "http://$host did not answer correctly within 10 minutes"
    sleep 15
done
for image in "${goldens[@]}"; do
    "$GW_PY" -m gateway.client --endpoint "http://$host" --expect-label "$(basename "$image" .jpg)" "$image"
done

log "running helm test (the in-cluster check)"
"$HELM" test "$RELEASE" --namespace "$NAMESPACE" --logs

cat <<EOF

species-classifier is live at http://$host
  curl -s -X POST -H 'Content-Type: image/jpeg' --data-binary @build/golden/leopard.jpg http://$host/predict

COSTS: this cluster bills by the hour until you remove it (roughly USD 0.55/hour in us-east-1 on-demand:
EKS control plane, 2 x c7i.xlarge, NAT gateway, NLB, EBS, public IPv4). Remove everything with:
  make eks-down
EOF
