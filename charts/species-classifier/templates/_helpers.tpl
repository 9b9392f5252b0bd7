{{/* Chart name, or nameOverride; used in the app.kubernetes.io/name label and resource names. */}}
{{- define "species-classifier.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Release-qualified name (63 chars max); the release name alone when it already contains the chart name. */}}
{{- define "species-classifier.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{/* Chart name and version for the helm.sh/chart label. */}}
{{- define "species-classifier.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Name of one component's objects, `<fullname>-<component>`, 63 chars max; call with (dict "ctx" $ "component" "gateway"). */}}
{{- define "species-classifier.componentName" -}}
{{- $room := sub 62 (len .component) | int }}
{{- printf "%s-%s" (include "species-classifier.fullname" .ctx | trunc $room | trimSuffix "-") .component }}
{{- end }}

{{/* Standard labels of one component's objects; call with (dict "ctx" $ "component" "gateway"). */}}
{{- define "species-classifier.labels" -}}
helm.sh/chart: {{ include "species-classifier.chart" .ctx }}
{{ include "species-classifier.selectorLabels" . }}
app.kubernetes.io/part-of: {{ include "species-classifier.name" .ctx }}
{{- with .ctx.Chart.AppVersion }}
app.kubernetes.io/version: {{ . | quote }}
{{- end }}
app.kubernetes.io/managed-by: {{ .ctx.Release.Service }}
{{- end }}

{{/* Selector labels of one component: name, instance and component only, never the chart version. */}}
{{- define "species-classifier.selectorLabels" -}}
app.kubernetes.io/name: {{ include "species-classifier.name" .ctx }}
app.kubernetes.io/instance: {{ .ctx.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{/* ServiceAccount of one component: its own when serviceAccount.create, else the namespace default. */}}
{{- define "species-classifier.serviceAccountName" -}}
{{- if .ctx.Values.serviceAccount.create }}
{{- include "species-classifier.componentName" . }}
{{- else }}
{{- "default" }}
{{- end }}
{{- end }}

{{/* Image reference `registry/repository:tag[@digest]`; tag defaults to appVersion; call with (dict "ctx" $ "image" .Values.gateway.image). */}}
{{- define "species-classifier.image" -}}
{{- $tag := .image.tag | default .ctx.Chart.AppVersion | toString }}
{{- $ref := printf "%s:%s" .image.repository $tag }}
{{- if .image.registry }}
{{- $ref = printf "%s/%s" .image.registry $ref }}
{{- end }}
{{- if .image.digest }}
{{- $ref = printf "%s@%s" $ref .image.digest }}
{{- end }}
{{- $ref }}
{{- end }}

{{/* Effective minimum replica count of a component: HPA minReplicas when autoscaling, else replicaCount. */}}
{{- define "species-classifier.minReplicas" -}}
{{- if .autoscaling.enabled }}{{ .autoscaling.minReplicas }}{{ else }}{{ .replicaCount }}{{ end }}
{{- end }}

{{/* "true" when a component's PDB can be met: maxUnavailable set, or an integer minAvailable below the minimum replicas, or a percentage with more than one replica. */}}
{{- define "species-classifier.pdbSatisfiable" -}}
{{- $min := include "species-classifier.minReplicas" . | int }}
{{- $pdb := .podDisruptionBudget }}
{{- if not (kindIs "invalid" $pdb.maxUnavailable) }}
{{- "true" }}
{{- else if kindIs "string" $pdb.minAvailable }}
{{- if gt $min 1 }}{{ "true" }}{{ end }}
{{- else if lt (int $pdb.minAvailable) $min }}
{{- "true" }}
{{- end }}
{{- end }}

{{/* Topology spread constraints of one component; entries without labelSelector select the component's pods. */}}
{{- define "species-classifier.topologySpreadConstraints" -}}
{{- $selector := include "species-classifier.selectorLabels" . | fromYaml }}
{{- range .values.topologySpreadConstraints }}
{{- $c := deepCopy . }}
{{- if not $c.labelSelector }}
{{- $_ := set $c "labelSelector" (dict "matchLabels" $selector) }}
{{- end }}
- {{ toYaml $c | nindent 2 | trim }}
{{- end }}
{{- end }}

{{/* Fails when env or extraEnv sets a variable the chart sets itself from a value; call with (dict "component" "gateway" "values" .Values.gateway "names" (list ...)). */}}
{{- define "species-classifier.envNotSet" -}}
{{- $given := keys .values.env }}
{{- range .values.extraEnv }}{{ $given = append $given .name }}{{ end }}
{{- range .names }}
{{- if has . $given }}
{{- fail (printf "%s.env/extraEnv must not set %s: the chart sets it (see values.yaml for the value that does)" $.component .) }}
{{- end }}
{{- end }}
{{- end }}
