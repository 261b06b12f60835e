{{/* Names and labels shared by the templates. */}}

{{- define "bulwark-sensor.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "bulwark-sensor.selectorLabels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "bulwark-sensor.labels" -}}
{{ include "bulwark-sensor.selectorLabels" . }}
app.kubernetes.io/part-of: bulwark
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{- define "bulwark-sensor.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "bulwark-sensor.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{/* The Secret holding the API key: the chart's own when a value is given. */}}
{{- define "bulwark-sensor.tokenSecret" -}}
{{- if .Values.token.value -}}
{{- printf "%s-token" (include "bulwark-sensor.fullname" .) -}}
{{- else -}}
{{- required "token.existingSecret or token.value: the sensors need an API key with the sensor scope" .Values.token.existingSecret -}}
{{- end -}}
{{- end -}}

{{/* The ConfigMap holding the appliance's CA, or nothing for the image's system CAs. */}}
{{- define "bulwark-sensor.caConfigMap" -}}
{{- if .Values.ca.pem -}}
{{- printf "%s-ca" (include "bulwark-sensor.fullname" .) -}}
{{- else -}}
{{- .Values.ca.existingConfigMap -}}
{{- end -}}
{{- end -}}

{{/* The appliance's TCP port, from the URL (443/80 by scheme when it names none). */}}
{{- define "bulwark-sensor.serverPort" -}}
{{- $u := urlParse (required "server: the appliance's URL, e.g. https://bulwark.internal:8443" .Values.server) -}}
{{- $p := regexFind ":[0-9]+$" $u.host -}}
{{- if $p -}}
{{- trimPrefix ":" $p -}}
{{- else if eq $u.scheme "http" -}}
80
{{- else -}}
443
{{- end -}}
{{- end -}}
