// MetalLB's controller and speaker for the EKS rehearsal on kind (hack/kind-addons.sh), built from the Go
// module proxy where quay.io/metallb cannot be pulled.
//
// MetalLB v0.16.2 needs github.com/metallb/frr-k8s v0.0.27 and v0.15.2 needs v0.0.20; the proxy serves
// neither (only v0.0.17, v0.0.18, v0.0.21), so v0.15.2 is built with v0.0.21, whose API package is what
// MetalLB imports for its FRR-K8s mode (unused here: L2 mode). Every other module is pinned to the version
// MetalLB v0.15.2's own go.mod requires, so the rest of the build is the one MetalLB tested.
module species-classifier/hack/offline/metallb

go 1.26.0

require go.universe.tf/metallb v0.15.2

require (
	github.com/armon/go-metrics v0.3.9 // indirect
	github.com/beorn7/perks v1.0.1 // indirect
	github.com/cespare/xxhash/v2 v2.3.0 // indirect
	github.com/davecgh/go-spew v1.1.2-0.20180830191138-d8f796af33cc // indirect
	github.com/emicklei/go-restful/v3 v3.12.2 // indirect
	github.com/evanphx/json-patch/v5 v5.9.11 // indirect
	github.com/fsnotify/fsnotify v1.9.0 // indirect
	github.com/fxamacker/cbor/v2 v2.8.0 // indirect
	github.com/go-kit/log v0.2.1 // indirect
	github.com/go-logfmt/logfmt v0.5.1 // indirect
	github.com/go-logr/logr v1.4.2 // indirect
	github.com/go-logr/zapr v1.3.0 // indirect
	github.com/go-openapi/jsonpointer v0.21.1 // indirect
	github.com/go-openapi/jsonreference v0.21.0 // indirect
	github.com/go-openapi/swag v0.23.1 // indirect
	github.com/gogo/protobuf v1.3.2 // indirect
	github.com/google/btree v1.1.3 // indirect
	github.com/google/gnostic-models v0.6.9 // indirect
	github.com/google/go-cmp v0.7.0 // indirect
	github.com/google/uuid v1.6.0 // indirect
	github.com/hashicorp/errwrap v1.0.0 // indirect
	github.com/hashicorp/go-immutable-radix v1.3.1 // indirect
	github.com/hashicorp/go-msgpack/v2 v2.1.1 // indirect
	github.com/hashicorp/go-multierror v1.1.0 // indirect
	github.com/hashicorp/go-sockaddr v1.0.0 // indirect
	github.com/hashicorp/golang-lru v0.5.1 // indirect
	github.com/hashicorp/memberlist v0.5.1 // indirect
	github.com/inconshreveable/mousetrap v1.1.0 // indirect
	github.com/josharian/intern v1.0.0 // indirect
	github.com/josharian/native v1.0.0 // indirect
	github.com/json-iterator/go v1.1.12 // indirect
	github.com/mailru/easyjson v0.9.0 // indirect
	github.com/mdlayher/arp v0.0.0-20220221190821-c37aaafac7f9 // indirect
	github.com/mdlayher/ethernet v0.0.0-20220221185849-529eae5b6118 // indirect
	github.com/mdlayher/ndp v0.0.0-20200602162440-17ab9e3e5567 // indirect
	github.com/mdlayher/packet v1.0.0 // indirect
	github.com/mdlayher/socket v0.2.1 // indirect
	github.com/metallb/frr-k8s v0.0.20 // indirect
	github.com/miekg/dns v1.1.43 // indirect
	github.com/mikioh/ipaddr v0.0.0-20190404000644-d465c8ab6721 // indirect
	github.com/modern-go/concurrent v0.0.0-20180306012644-bacd9c7ef1dd // indirect
	github.com/modern-go/reflect2 v1.0.2 // indirect
	github.com/munnerz/goautoneg v0.0.0-20191010083416-a7dc8b61c822 // indirect
	github.com/open-policy-agent/cert-controller v0.10.2-0.20240531181455-2649f121ab97 // indirect
	github.com/pkg/errors v0.9.1 // indirect
	github.com/prometheus/client_golang v1.22.0 // indirect
	github.com/prometheus/client_model v0.6.2 // indirect
	github.com/prometheus/common v0.63.0 // indirect
	github.com/prometheus/procfs v0.16.1 // indirect
	github.com/sean-/seed v0.0.0-20170313163322-e2103e2c3529 // indirect
	github.com/spf13/cobra v1.8.1 // indirect
	github.com/spf13/pflag v1.0.6 // indirect
	github.com/x448/float16 v0.8.4 // indirect
	gitlab.com/golang-commonmark/puny v0.0.0-20191124015043-9f83538fa04f // indirect
	go.uber.org/atomic v1.11.0 // indirect
	go.uber.org/multierr v1.11.0 // indirect
	go.uber.org/zap v1.27.0 // indirect
	golang.org/x/net v0.39.0 // indirect
	golang.org/x/oauth2 v0.29.0 // indirect
	golang.org/x/sync v0.13.0 // indirect
	golang.org/x/sys v0.33.0 // indirect
	golang.org/x/term v0.31.0 // indirect
	golang.org/x/text v0.24.0 // indirect
	golang.org/x/time v0.11.0 // indirect
	gomodules.xyz/jsonpatch/v2 v2.5.0 // indirect
	google.golang.org/protobuf v1.36.6 // indirect
	gopkg.in/evanphx/json-patch.v4 v4.12.0 // indirect
	gopkg.in/inf.v0 v0.9.1 // indirect
	gopkg.in/yaml.v3 v3.0.1 // indirect
	k8s.io/api v0.33.0 // indirect
	k8s.io/apiextensions-apiserver v0.33.0 // indirect
	k8s.io/apimachinery v0.33.0 // indirect
	k8s.io/client-go v0.33.0 // indirect
	k8s.io/component-base v0.33.0 // indirect
	k8s.io/klog v1.0.0 // indirect
	k8s.io/klog/v2 v2.130.1 // indirect
	k8s.io/kube-openapi v0.0.0-20250318190949-c8a335a9a2ff // indirect
	k8s.io/utils v0.0.0-20250321185631-1f6e0b77f77e // indirect
	sigs.k8s.io/controller-runtime v0.20.4 // indirect
	sigs.k8s.io/json v0.0.0-20241014173422-cfa47c3a1cc8 // indirect
	sigs.k8s.io/randfill v1.0.0 // indirect
	sigs.k8s.io/structured-merge-diff/v4 v4.7.0 // indirect
	sigs.k8s.io/yaml v1.4.0 // indirect
)

replace github.com/metallb/frr-k8s => github.com/metallb/frr-k8s v0.0.21

// MetalLB v0.15.2's requirements (its go.mod), held in place.
replace github.com/davecgh/go-spew => github.com/davecgh/go-spew v1.1.2-0.20180830191138-d8f796af33cc

replace github.com/go-kit/log => github.com/go-kit/log v0.2.1

replace github.com/google/go-cmp => github.com/google/go-cmp v0.7.0

replace github.com/hashicorp/memberlist => github.com/hashicorp/memberlist v0.5.1

replace github.com/mdlayher/arp => github.com/mdlayher/arp v0.0.0-20220221190821-c37aaafac7f9

replace github.com/mdlayher/ethernet => github.com/mdlayher/ethernet v0.0.0-20220221185849-529eae5b6118

replace github.com/mdlayher/ndp => github.com/mdlayher/ndp v0.0.0-20200602162440-17ab9e3e5567

replace github.com/mikioh/ipaddr => github.com/mikioh/ipaddr v0.0.0-20190404000644-d465c8ab6721

replace github.com/onsi/ginkgo/v2 => github.com/onsi/ginkgo/v2 v2.22.2

replace github.com/onsi/gomega => github.com/onsi/gomega v1.36.2

replace github.com/open-policy-agent/cert-controller => github.com/open-policy-agent/cert-controller v0.10.2-0.20240531181455-2649f121ab97

replace github.com/ory/dockertest/v3 => github.com/ory/dockertest/v3 v3.12.0

replace github.com/prometheus/client_golang => github.com/prometheus/client_golang v1.22.0

replace go.uber.org/zap => go.uber.org/zap v1.27.0

replace golang.org/x/sys => golang.org/x/sys v0.33.0

replace k8s.io/api => k8s.io/api v0.33.0

replace k8s.io/apiextensions-apiserver => k8s.io/apiextensions-apiserver v0.33.0

replace k8s.io/apimachinery => k8s.io/apimachinery v0.33.0

replace k8s.io/client-go => k8s.io/client-go v0.33.0

replace k8s.io/component-base => k8s.io/component-base v0.33.0

replace k8s.io/klog => k8s.io/klog v1.0.0

replace k8s.io/utils => k8s.io/utils v0.0.0-20250321185631-1f6e0b77f77e

replace sigs.k8s.io/controller-runtime => sigs.k8s.io/controller-runtime v0.20.4

replace sigs.k8s.io/yaml => sigs.k8s.io/yaml v1.4.0

replace dario.cat/mergo => dario.cat/mergo v1.0.0

replace github.com/Azure/go-ansiterm => github.com/Azure/go-ansiterm v0.0.0-20230124172434-306776ec8161

replace github.com/Microsoft/go-winio => github.com/Microsoft/go-winio v0.6.2

replace github.com/Nvveen/Gotty => github.com/Nvveen/Gotty v0.0.0-20120604004816-cd527374f1e5

replace github.com/armon/go-metrics => github.com/armon/go-metrics v0.3.9

replace github.com/beorn7/perks => github.com/beorn7/perks v1.0.1

replace github.com/cenkalti/backoff/v4 => github.com/cenkalti/backoff/v4 v4.3.0

replace github.com/cespare/xxhash/v2 => github.com/cespare/xxhash/v2 v2.3.0

replace github.com/containerd/continuity => github.com/containerd/continuity v0.4.5

replace github.com/docker/cli => github.com/docker/cli v27.4.1+incompatible

replace github.com/docker/docker => github.com/docker/docker v27.1.1+incompatible

replace github.com/docker/go-connections => github.com/docker/go-connections v0.5.0

replace github.com/docker/go-units => github.com/docker/go-units v0.5.0

replace github.com/emicklei/go-restful/v3 => github.com/emicklei/go-restful/v3 v3.12.2

replace github.com/evanphx/json-patch => github.com/evanphx/json-patch v5.6.0+incompatible

replace github.com/evanphx/json-patch/v5 => github.com/evanphx/json-patch/v5 v5.9.11

replace github.com/fsnotify/fsnotify => github.com/fsnotify/fsnotify v1.9.0

replace github.com/fxamacker/cbor/v2 => github.com/fxamacker/cbor/v2 v2.8.0

replace github.com/go-logfmt/logfmt => github.com/go-logfmt/logfmt v0.5.1

replace github.com/go-logr/logr => github.com/go-logr/logr v1.4.2

replace github.com/go-logr/zapr => github.com/go-logr/zapr v1.3.0

replace github.com/go-openapi/jsonpointer => github.com/go-openapi/jsonpointer v0.21.1

replace github.com/go-openapi/jsonreference => github.com/go-openapi/jsonreference v0.21.0

replace github.com/go-openapi/swag => github.com/go-openapi/swag v0.23.1

replace github.com/go-task/slim-sprig/v3 => github.com/go-task/slim-sprig/v3 v3.0.0

replace github.com/go-viper/mapstructure/v2 => github.com/go-viper/mapstructure/v2 v2.1.0

replace github.com/gogo/protobuf => github.com/gogo/protobuf v1.3.2

replace github.com/google/btree => github.com/google/btree v1.1.3

replace github.com/google/gnostic-models => github.com/google/gnostic-models v0.6.9

replace github.com/google/pprof => github.com/google/pprof v0.0.0-20241210010833-40e02aabc2ad

replace github.com/google/shlex => github.com/google/shlex v0.0.0-20191202100458-e7afc7fbc510

replace github.com/google/uuid => github.com/google/uuid v1.6.0

replace github.com/hashicorp/errwrap => github.com/hashicorp/errwrap v1.0.0

replace github.com/hashicorp/go-immutable-radix => github.com/hashicorp/go-immutable-radix v1.3.1

replace github.com/hashicorp/go-msgpack/v2 => github.com/hashicorp/go-msgpack/v2 v2.1.1

replace github.com/hashicorp/go-multierror => github.com/hashicorp/go-multierror v1.1.0

replace github.com/hashicorp/go-sockaddr => github.com/hashicorp/go-sockaddr v1.0.0

replace github.com/hashicorp/golang-lru => github.com/hashicorp/golang-lru v0.5.1

replace github.com/inconshreveable/mousetrap => github.com/inconshreveable/mousetrap v1.1.0

replace github.com/josharian/intern => github.com/josharian/intern v1.0.0

replace github.com/josharian/native => github.com/josharian/native v1.0.0

replace github.com/json-iterator/go => github.com/json-iterator/go v1.1.12

replace github.com/kylelemons/godebug => github.com/kylelemons/godebug v1.1.0

replace github.com/mailru/easyjson => github.com/mailru/easyjson v0.9.0

replace github.com/mdlayher/packet => github.com/mdlayher/packet v1.0.0

replace github.com/mdlayher/socket => github.com/mdlayher/socket v0.2.1

replace github.com/miekg/dns => github.com/miekg/dns v1.1.43

replace github.com/moby/docker-image-spec => github.com/moby/docker-image-spec v1.3.1

replace github.com/moby/sys/user => github.com/moby/sys/user v0.3.0

replace github.com/moby/term => github.com/moby/term v0.5.0

replace github.com/modern-go/concurrent => github.com/modern-go/concurrent v0.0.0-20180306012644-bacd9c7ef1dd

replace github.com/modern-go/reflect2 => github.com/modern-go/reflect2 v1.0.2

replace github.com/munnerz/goautoneg => github.com/munnerz/goautoneg v0.0.0-20191010083416-a7dc8b61c822

replace github.com/opencontainers/go-digest => github.com/opencontainers/go-digest v1.0.0

replace github.com/opencontainers/image-spec => github.com/opencontainers/image-spec v1.1.0

replace github.com/opencontainers/runc => github.com/opencontainers/runc v1.2.3

replace github.com/pkg/errors => github.com/pkg/errors v0.9.1

replace github.com/prometheus/client_model => github.com/prometheus/client_model v0.6.2

replace github.com/prometheus/common => github.com/prometheus/common v0.63.0

replace github.com/prometheus/procfs => github.com/prometheus/procfs v0.16.1

replace github.com/sean-/seed => github.com/sean-/seed v0.0.0-20170313163322-e2103e2c3529

replace github.com/sirupsen/logrus => github.com/sirupsen/logrus v1.9.3

replace github.com/spf13/cobra => github.com/spf13/cobra v1.8.1

replace github.com/spf13/pflag => github.com/spf13/pflag v1.0.6

replace github.com/x448/float16 => github.com/x448/float16 v0.8.4

replace github.com/xeipuuv/gojsonpointer => github.com/xeipuuv/gojsonpointer v0.0.0-20190905194746-02993c407bfb

replace github.com/xeipuuv/gojsonreference => github.com/xeipuuv/gojsonreference v0.0.0-20180127040603-bd5ef7bd5415

replace github.com/xeipuuv/gojsonschema => github.com/xeipuuv/gojsonschema v1.2.0

replace gitlab.com/golang-commonmark/puny => gitlab.com/golang-commonmark/puny v0.0.0-20191124015043-9f83538fa04f

replace go.uber.org/atomic => go.uber.org/atomic v1.11.0

replace go.uber.org/multierr => go.uber.org/multierr v1.11.0

replace golang.org/x/net => golang.org/x/net v0.39.0

replace golang.org/x/oauth2 => golang.org/x/oauth2 v0.29.0

replace golang.org/x/sync => golang.org/x/sync v0.13.0

replace golang.org/x/term => golang.org/x/term v0.31.0

replace golang.org/x/text => golang.org/x/text v0.24.0

replace golang.org/x/time => golang.org/x/time v0.11.0

replace golang.org/x/tools => golang.org/x/tools v0.28.0

replace gomodules.xyz/jsonpatch/v2 => gomodules.xyz/jsonpatch/v2 v2.5.0

replace google.golang.org/protobuf => google.golang.org/protobuf v1.36.6

replace gopkg.in/evanphx/json-patch.v4 => gopkg.in/evanphx/json-patch.v4 v4.12.0

replace gopkg.in/inf.v0 => gopkg.in/inf.v0 v0.9.1

replace gopkg.in/yaml.v2 => gopkg.in/yaml.v2 v2.4.0

replace gopkg.in/yaml.v3 => gopkg.in/yaml.v3 v3.0.1

replace k8s.io/klog/v2 => k8s.io/klog/v2 v2.130.1

replace k8s.io/kube-openapi => k8s.io/kube-openapi v0.0.0-20250318190949-c8a335a9a2ff

replace sigs.k8s.io/json => sigs.k8s.io/json v0.0.0-20241014173422-cfa47c3a1cc8

replace sigs.k8s.io/randfill => sigs.k8s.io/randfill v1.0.0

replace sigs.k8s.io/structured-merge-diff/v4 => sigs.k8s.io/structured-merge-diff/v4 v4.7.0
