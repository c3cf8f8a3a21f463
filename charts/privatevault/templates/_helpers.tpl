{{/* Names and labels shared by every template. */}}
{{- define "privatevault.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "privatevault.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else if contains (include "privatevault.name" .) .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name (include "privatevault.name" .) | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "privatevault.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "privatevault.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "privatevault.selectorLabels" -}}
app.kubernetes.io/name: {{ include "privatevault.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: operator
{{- end -}}

{{- define "privatevault.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{ include "privatevault.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/part-of: privatevault
{{- end -}}

{{- define "privatevault.image" -}}
{{- if .Values.image.digest -}}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest -}}
{{- else -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}
{{- end -}}

{{/* The pod and container security settings shared by the operator and the migration Job. */}}
{{- define "privatevault.podSecurityContext" -}}
runAsNonRoot: true
runAsUser: {{ .Values.securityContext.runAsUser }}
runAsGroup: {{ .Values.securityContext.runAsGroup }}
fsGroup: {{ .Values.securityContext.runAsGroup }}
seccompProfile:
  type: RuntimeDefault
{{- if or .Values.securityContext.seLinuxType .Values.securityContext.seLinuxLevel }}
seLinuxOptions:
  {{- with .Values.securityContext.seLinuxType }}
  type: {{ . }}
  {{- end }}
  {{- with .Values.securityContext.seLinuxLevel }}
  level: {{ . | quote }}
  {{- end }}
{{- end }}
{{- end -}}

{{- define "privatevault.containerSecurityContext" -}}
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
privileged: false
capabilities:
  drop: ["ALL"]
{{- end -}}

{{/* The claim holding EvidenceExport bundles: an existing one, or the one evidence-pvc.yaml makes. */}}
{{- define "privatevault.evidenceClaim" -}}
{{- default (printf "%s-evidence" (include "privatevault.fullname" .)) .Values.evidence.persistence.existingClaim -}}
{{- end -}}
