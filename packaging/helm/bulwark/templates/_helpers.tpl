{{- define "bulwark.labels" -}}
app.kubernetes.io/name: bulwark
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end }}

{{- define "bulwark.image" -}}
{{- if .root.Values.imageRegistry -}}
{{ printf "%s/%s" (trimSuffix "/" .root.Values.imageRegistry) .image }}
{{- else -}}
{{ .image }}
{{- end -}}
{{- end }}

{{- define "bulwark.apiKeySecret" -}}
{{- if .Values.apiKey.existingSecret -}}
{{ .Values.apiKey.existingSecret }}
{{- else -}}
{{ printf "%s-api-key" .Release.Name }}
{{- end -}}
{{- end }}

{{- define "bulwark.require" -}}
{{- if not .Values.appliance.url }}{{ fail "appliance.url is required (e.g. https://bulwark.internal:8443)" }}{{ end }}
{{- if not .Values.appliance.cluster }}{{ fail "appliance.cluster is required (the cluster's name on the appliance)" }}{{ end }}
{{- if and (or .Values.kubeBench.enabled .Values.kubeHunter.enabled) (not .Values.apiKey.existingSecret) (not .Values.apiKey.value) }}{{ fail "the audit jobs need apiKey.existingSecret or apiKey.value" }}{{ end }}
{{- if and .Values.useExternalSecrets .Values.apiKey.value }}{{ fail "useExternalSecrets: give apiKey.existingSecret, not apiKey.value" }}{{ end }}
{{- end }}

{{- define "bulwark.proxyEnv" -}}
{{- if .Values.httpsProxy }}
- name: HTTPS_PROXY
  value: {{ .Values.httpsProxy | quote }}
- name: https_proxy
  value: {{ .Values.httpsProxy | quote }}
- name: NO_PROXY
  value: {{ .Values.httpsProxyNoProxy | quote }}
- name: no_proxy
  value: {{ .Values.httpsProxyNoProxy | quote }}
{{- end }}
{{- end }}

{{- define "bulwark.pullSecrets" -}}
{{- with .Values.imagePullSecrets }}
imagePullSecrets:
{{- range . }}
  - name: {{ . }}
{{- end }}
{{- end }}
{{- end }}
