{{- define "windlass-agent.labels" -}}
app.kubernetes.io/name: windlass-agent
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}
{{- define "windlass-agent.selector" -}}
app.kubernetes.io/name: windlass-agent
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}
