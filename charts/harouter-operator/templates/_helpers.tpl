{{/*
Expand the name of the chart.
*/}}
{{- define "harouter-operator.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Create a default fully qualified app name (63 characters at most: some name fields are limited by
the DNS naming spec). If the release name contains the chart name it is used as the full name.
*/}}
{{- define "harouter-operator.fullname" -}}
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

{{/*
Create chart name and version as used by the chart label.
*/}}
{{- define "harouter-operator.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Common labels
*/}}
{{- define "harouter-operator.labels" -}}
helm.sh/chart: {{ include "harouter-operator.chart" . }}
{{ include "harouter-operator.selectorLabels" . }}
{{- if .Chart.AppVersion }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
{{- end }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: harouter
{{- end }}

{{/*
Selector labels
*/}}
{{- define "harouter-operator.selectorLabels" -}}
app.kubernetes.io/name: {{ include "harouter-operator.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/*
Name of the operator's ServiceAccount.
*/}}
{{- define "harouter-operator.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "harouter-operator.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/*
Webhook Service name and the Secret holding its serving certificate.
*/}}
{{- define "harouter-operator.webhookServiceName" -}}
{{- printf "%s-webhook" (include "harouter-operator.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "harouter-operator.webhookSecretName" -}}
{{- printf "%s-webhook-tls" (include "harouter-operator.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "harouter-operator.metricsServiceName" -}}
{{- printf "%s-metrics" (include "harouter-operator.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "harouter-operator.metricsSecretName" -}}
{{- printf "%s-metrics-tls" (include "harouter-operator.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
True ("true") when the operator serves the validating webhook (admission.mode webhook or both).
*/}}
{{- define "harouter-operator.webhookEnabled" -}}
{{- if has .Values.admission.mode (list "webhook" "both") }}true{{ end }}
{{- end }}

{{- define "harouter-operator.policyEnabled" -}}
{{- if has .Values.admission.mode (list "policy" "both") }}true{{ end }}
{{- end }}

{{/*
Namespace of the reporter ServiceAccount and the agent DaemonSet (empty value: the release namespace).
*/}}
{{- define "harouter-operator.reporterNamespace" -}}
{{- default .Release.Namespace .Values.reporter.serviceAccount.namespace }}
{{- end }}

{{/*
Namespaces where reporters may write HARouterStates, comma-separated: reporter.namespaces, else the
watched namespace, else the release namespace.
*/}}
{{- define "harouter-operator.reporterBindingNamespaces" -}}
{{- $namespaces := .Values.reporter.namespaces }}
{{- if not $namespaces }}
{{- $namespaces = list (default .Release.Namespace .Values.operator.watchNamespace) }}
{{- end }}
{{- join "," (uniq $namespaces) }}
{{- end }}

{{/*
Reporter service accounts as `namespace/name`, the chart's own first.
*/}}
{{- define "harouter-operator.reporterServiceAccounts" -}}
{{- $accounts := list }}
{{- if .Values.reporter.create }}
{{- $accounts = append $accounts (printf "%s/%s" (include "harouter-operator.reporterNamespace" .) .Values.reporter.name) }}
{{- end }}
{{- range .Values.reporter.extraServiceAccounts }}
{{- $accounts = append $accounts . }}
{{- end }}
{{- join "," (uniq $accounts) }}
{{- end }}

{{/*
Container image reference.
*/}}
{{- define "harouter-operator.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}
{{- end }}

{{/*
The split documents of a multi-document YAML file, without empty ones.
Usage: include "harouter-operator.yamlDocuments" (.Files.Get "files/x.yaml") | fromYamlArray
*/}}
{{- define "harouter-operator.yamlDocuments" -}}
{{- $docs := list }}
{{- range (regexSplit "(?m)^---[ \t]*$" . -1) }}
{{- $doc := fromYaml . }}
{{- if hasKey $doc "Error" }}
{{- fail (printf "cannot parse a YAML document: %s" (get $doc "Error")) }}
{{- end }}
{{- if $doc }}
{{- $docs = append $docs $doc }}
{{- end }}
{{- end }}
{{- toYaml $docs }}
{{- end }}

{{/*
The webhook's CA and serving certificate (base64 PEM, as YAML: caCert, tlsCert, tlsKey).
The existing Secret is reused so that the certificate stays stable across upgrades (and between the
Secret and the webhook configuration's caBundle, rendered in separate templates); otherwise a new CA
and certificate are generated. The result is memoized in .Release so both templates agree.
*/}}
{{- define "harouter-operator.servingCertificate" -}}
{{- include "harouter-operator.generatedCertificate" (dict "root" . "secret" (include "harouter-operator.webhookSecretName" .) "service" (include "harouter-operator.webhookServiceName" .) "ca" "webhook-ca" "cacheKey" "harouterServingCertificate") }}
{{- end }}

{{/*
The secure metrics' CA and certificate for the metrics Service, like the webhook's (a CA of its own,
in a Secret of its own): what a scraper verifies the operator with.
*/}}
{{- define "harouter-operator.metricsCertificate" -}}
{{- include "harouter-operator.generatedCertificate" (dict "root" . "secret" (include "harouter-operator.metricsSecretName" .) "service" (include "harouter-operator.metricsServiceName" .) "ca" "metrics-ca" "cacheKey" "harouterMetricsCertificate") }}
{{- end }}

{{/*
A CA and a certificate for a Service's DNS names (base64 PEM, as YAML: caCert, tlsCert, tlsKey),
taken from the existing Secret when it holds all three, else generated once per render.
Arguments (dict): root, secret, service, ca (the CA name's suffix), cacheKey.
*/}}
{{- define "harouter-operator.generatedCertificate" -}}
{{- $root := .root }}
{{- $existing := lookup "v1" "Secret" $root.Release.Namespace .secret }}
{{- if and $existing $existing.data (index $existing.data "ca.crt") (index $existing.data "tls.crt") (index $existing.data "tls.key") }}
caCert: {{ index $existing.data "ca.crt" }}
tlsCert: {{ index $existing.data "tls.crt" }}
tlsKey: {{ index $existing.data "tls.key" }}
{{- else }}
{{- $cache := $root.Release }}
{{- if not (hasKey $cache .cacheKey) }}
{{- $days := int $root.Values.certificate.validityDays }}
{{- $ca := genCA (printf "%s-%s" (include "harouter-operator.fullname" $root) .ca) $days }}
{{- $dnsNames := list (printf "%s.%s.svc" .service $root.Release.Namespace) (printf "%s.%s.svc.cluster.local" .service $root.Release.Namespace) }}
{{- $leaf := genSignedCert (printf "%s.%s.svc" .service $root.Release.Namespace) nil $dnsNames $days $ca }}
{{- $_ := set $cache .cacheKey (dict "caCert" ($ca.Cert | b64enc) "tlsCert" ($leaf.Cert | b64enc) "tlsKey" ($leaf.Key | b64enc)) }}
{{- end }}
{{- toYaml (get $cache .cacheKey) }}
{{- end }}
{{- end }}
