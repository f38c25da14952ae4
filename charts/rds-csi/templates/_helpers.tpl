{{/*
Labels every object carries: part-of (as in deploy/base) and Helm's own.
Object names are fixed, not derived from the release: the CSIDriver, the
ClusterRoles and the StorageClasses are cluster-wide, so one installation per
cluster, and the same names as the kustomize base let one take over from the
other.
*/}}
{{- define "rds-csi.labels" -}}
app.kubernetes.io/part-of: rds-csi
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
{{- end }}

{{- define "rds-csi.image" -}}
{{ .Values.image.repository }}:{{ .Values.image.tag | default .Chart.AppVersion }}
{{- end }}

{{- define "rds-csi.address" -}}
{{- required "rds.address is required: the RDS's SSH address" .Values.rds.address -}}
{{- end }}
