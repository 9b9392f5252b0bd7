{{- /*
Objects every component has in the same shape. Each `<component>-<kind>.yaml` file calls one of these with
(dict "ctx" $ "component" "gateway" "values" .Values.gateway), so the gateway and serving copies cannot drift.
*/}}

{{/* HorizontalPodAutoscaler (autoscaling/v2, CPU) of one component, when its autoscaling.enabled. */}}
{{- define "species-classifier.hpa" -}}
{{- with .values.autoscaling }}
{{- if .enabled }}
apiVersion: autoscaling/v2
kind: HorizontalPodAutoscaler
metadata:
  name: {{ include "species-classifier.componentName" $ }}
  namespace: {{ $.ctx.Release.Namespace }}
  labels:
    {{- include "species-classifier.labels" $ | nindent 4 }}
spec:
  scaleTargetRef:
    apiVersion: apps/v1
    kind: Deployment
    name: {{ include "species-classifier.componentName" $ }}
  minReplicas: {{ .minReplicas }}
  maxReplicas: {{ .maxReplicas }}
  metrics:
    - type: Resource
      resource:
        name: cpu
        target:
          type: Utilization
          averageUtilization: {{ .targetCPUUtilizationPercentage }}
  {{- with .behavior }}
  behavior:
    {{- toYaml . | nindent 4 }}
  {{- end }}
{{- end }}
{{- end }}
{{- end }}

{{/* PodDisruptionBudget of one component, when enabled and satisfiable (see species-classifier.pdbSatisfiable). */}}
{{- define "species-classifier.pdb" -}}
{{- with .values }}
{{- if and .podDisruptionBudget.enabled (include "species-classifier.pdbSatisfiable" .) }}
apiVersion: policy/v1
kind: PodDisruptionBudget
metadata:
  name: {{ include "species-classifier.componentName" $ }}
  namespace: {{ $.ctx.Release.Namespace }}
  labels:
    {{- include "species-classifier.labels" $ | nindent 4 }}
spec:
  {{- if not (kindIs "invalid" .podDisruptionBudget.maxUnavailable) }}
  maxUnavailable: {{ .podDisruptionBudget.maxUnavailable }}
  {{- else }}
  minAvailable: {{ .podDisruptionBudget.minAvailable }}
  {{- end }}
  # A pod that is not ready protects nothing; letting it be evicted keeps node drains from stalling on a
  # crash-looping pod.
  unhealthyPodEvictionPolicy: AlwaysAllow
  selector:
    matchLabels:
      {{- include "species-classifier.selectorLabels" $ | nindent 6 }}
{{- end }}
{{- end }}
{{- end }}

{{/* ServiceAccount of one component, when serviceAccount.create. */}}
{{- define "species-classifier.serviceAccount" -}}
{{- with .ctx.Values.serviceAccount }}
{{- if .create }}
apiVersion: v1
kind: ServiceAccount
metadata:
  name: {{ include "species-classifier.serviceAccountName" $ }}
  namespace: {{ $.ctx.Release.Namespace }}
  labels:
    {{- include "species-classifier.labels" $ | nindent 4 }}
  {{- with .annotations }}
  annotations:
    {{- toYaml . | nindent 4 }}
  {{- end }}
automountServiceAccountToken: {{ .automount }}
{{- end }}
{{- end }}
{{- end }}

{{/* Prometheus Operator ServiceMonitor of one component, when its serviceMonitor.enabled; also takes "port" (a Service port name) and "path". */}}
{{- define "species-classifier.serviceMonitor" -}}
{{- with .values.serviceMonitor }}
{{- if .enabled }}
apiVersion: monitoring.coreos.com/v1
kind: ServiceMonitor
metadata:
  name: {{ include "species-classifier.componentName" $ }}
  namespace: {{ $.ctx.Release.Namespace }}
  labels:
    {{- include "species-classifier.labels" $ | nindent 4 }}
    {{- with .labels }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
spec:
  # Every Service of the component matches; only those with a port named {{ $.port }} are scraped.
  selector:
    matchLabels:
      {{- include "species-classifier.selectorLabels" $ | nindent 6 }}
  endpoints:
    - port: {{ $.port }}
      path: {{ $.path }}
      interval: {{ .interval }}
{{- end }}
{{- end }}
{{- end }}
