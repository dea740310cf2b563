{{/*
Names and labels, in one place. Operators' runbooks rely on these (SPEC §6 naming contract):
Deployments <fullname>-service-discovery / <fullname>-cleanup, container "controller", labels
app.kubernetes.io/name=gitops-lifecycle-management and app.kubernetes.io/component=
service-discovery-controller / cleanup-controller.
*/}}

{{/* The product name: the app.kubernetes.io/name label everywhere (never overridable). */}}
{{- define "glm.name" -}}
gitops-lifecycle-management
{{- end }}

{{/*
Prefix of every resource name: the release name (SPEC §5/§6 name objects <release>-…), or
fullnameOverride.
*/}}
{{- define "glm.fullname" -}}
{{- .Values.fullnameOverride | default .Release.Name | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
A name derived from the full name; fails (instead of silently truncating and breaking the
naming contract) when it would not be a valid DNS label.
Usage: include "glm.derivedName" (list $ "service-discovery-metrics")
*/}}
{{- define "glm.derivedName" -}}
{{- $root := index . 0 }}
{{- $name := printf "%s-%s" (include "glm.fullname" $root) (index . 1) }}
{{- if gt (len $name) 63 }}
{{- fail (printf "resource name %q is longer than 63 characters: use a shorter release name or set fullnameOverride" $name) }}
{{- end }}
{{- $name }}
{{- end }}

{{- define "glm.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Labels on every object. */}}
{{- define "glm.labels" -}}
helm.sh/chart: {{ include "glm.chart" . }}
app.kubernetes.io/name: {{ include "glm.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: {{ include "glm.name" . }}
{{- end }}

{{/*
The two controllers. Keys are the values sections; each entry gives the name suffix, the
component label, the binary and the settings the templates need.
*/}}
{{- define "glm.controllers" -}}
serviceDiscovery:
  suffix: service-discovery
  component: service-discovery-controller
  binary: gitops-service-discovery
cleanup:
  suffix: cleanup
  component: cleanup-controller
  binary: gitops-cleanup
{{- end }}

{{/*
The enabled controllers as a list of dicts: key, suffix, component, binary, values.
Usage: range (include "glm.enabledControllers" $ | fromYamlArray)
*/}}
{{- define "glm.enabledControllers" -}}
{{- $out := list }}
{{- range $key, $meta := include "glm.controllers" . | fromYaml }}
{{- $values := index $.Values $key }}
{{- if $values.enabled }}
{{- $out = append $out (merge (dict "key" $key "values" $values) $meta) }}
{{- end }}
{{- end }}
{{- toYaml $out }}
{{- end }}

{{/* Selector labels of one controller's Pods. Usage: include "glm.selectorLabels" (list $ $controller) */}}
{{- define "glm.selectorLabels" -}}
{{- $root := index . 0 }}
{{- $controller := index . 1 -}}
app.kubernetes.io/name: {{ include "glm.name" $root }}
app.kubernetes.io/instance: {{ $root.Release.Name }}
app.kubernetes.io/component: {{ $controller.component }}
{{- end }}

{{/* All labels of one controller's objects. */}}
{{- define "glm.controllerLabels" -}}
{{ include "glm.labels" (index . 0) }}
app.kubernetes.io/component: {{ (index . 1).component }}
{{- end }}

{{/* Name of a controller's objects: <fullname>-service-discovery / <fullname>-cleanup. */}}
{{- define "glm.controllerName" -}}
{{- include "glm.derivedName" (list (index . 0) (index . 1).suffix) }}
{{- end }}

{{/* The Secret holding the authentik token. */}}
{{- define "glm.tokenSecretName" -}}
{{- .Values.authentik.existingSecret | default (include "glm.derivedName" (list . "authentik-token")) }}
{{- end }}

{{/* The Secret the settings ExternalSecret creates. */}}
{{- define "glm.settingsSecretName" -}}
{{- include "glm.derivedName" (list . "settings") }}
{{- end }}

{{/* Where the token Secret is mounted, and the file the controllers read. */}}
{{- define "glm.tokenDir" -}}
/var/run/secrets/authentik
{{- end }}

{{/* Image reference: registry/repository:tag[@digest]. Usage: include "glm.image" (list $ $controller) */}}
{{- define "glm.image" -}}
{{- $root := index . 0 }}
{{- $image := (index . 1).values.image }}
{{- $ref := printf "%s/%s:%s" $root.Values.image.registry $image.repository ($image.tag | default $root.Chart.AppVersion) }}
{{- if $image.digest }}
{{- $ref = printf "%s@%s" $ref $image.digest }}
{{- end }}
{{- $ref }}
{{- end }}

{{/*
Environment of one controller as a dict NAME → value (strings). Unset settings are left out so
the binaries' own defaults apply; keys the settings ExternalSecret provides are left out so the
Secret wins. An empty excludedJobLabels list is sent as " " (the binary trims it to "none"),
because leaving EXCLUDED_JOB_LABELS out would bring back its default, helm.sh/hook.
*/}}
{{- define "glm.env" -}}
{{- $root := index . 0 }}
{{- $c := index . 1 }}
{{- $v := $c.values }}
{{- $env := dict
  "LOG_FORMAT" $root.Values.global.logFormat
  "RUST_LOG" ($v.logLevel | default $root.Values.global.logLevel)
  "METRICS_ADDR" (printf "0.0.0.0:%v" $root.Values.metrics.port)
  "HEALTH_ADDR" (printf "0.0.0.0:%v" $root.Values.metrics.healthPort)
  "LEADER_ELECTION" (toString $v.leaderElection.enabled)
  "LEASE_NAME" $v.leaderElection.leaseName
  "LEASE_DURATION" $v.leaderElection.leaseDuration
  "AUTHENTIK_HOST" $root.Values.authentik.host
  "AUTHENTIK_TIMEOUT" $root.Values.authentik.timeout
  "AUTHENTIK_TOKEN_FILE" (printf "%s/token" (include "glm.tokenDir" $root))
  "WATCH_NAMESPACE" $root.Values.global.watchNamespace
}}
{{- if eq $c.key "serviceDiscovery" }}
{{- $env = merge $env (dict
  "DEFAULT_AUTHORIZATION_FLOW" $v.defaultAuthorizationFlow
  "DEFAULT_INVALIDATION_FLOW" $v.defaultInvalidationFlow
  "DEFAULT_OUTPOST" $v.defaultOutpost
  "COOKIE_DOMAIN" $v.cookieDomain
  "RESYNC_INTERVAL" $v.resyncInterval
  "MAX_CONCURRENT_RECONCILES" (toString $v.maxConcurrentReconciles)
  "AUTHENTIK_CONCURRENCY" (toString $v.authentikConcurrency)
  "OUTPOST_BATCH_WINDOW" $v.outpostBatchWindow
  "AUTHENTIK_OUTPOST_TIMEOUT" $v.outpostWriteTimeout
  "CROSS_NAMESPACE_ALLOWLIST" (join "," $v.crossNamespaceAllowlist)
  "SERVICE_DISCOVERY_ENABLED" (toString $v.discovery)
  "FORWARD_AUTH_OUTPOST_URL" $v.forwardAuthOutpostUrl
) }}
{{- else }}
{{- $env = merge $env (dict
  "CLEANUP_INTERVAL" $v.interval
  "COMPLETED_JOBS_TTL" $v.completedJobsTTL
  "FAILED_JOBS_TTL" $v.failedJobsTTL
  "ORPHANED_PROVIDERS_MAX_AGE" $v.orphanedProvidersMaxAge
  "DRY_RUN" (toString $v.dryRun)
  "NAMESPACES_INCLUDE" (join "," $v.namespaces.include)
  "NAMESPACES_EXCLUDE" (join "," $v.namespaces.exclude)
  "JOB_LABEL_SELECTOR" $v.jobLabelSelector
  "EXCLUDED_JOB_LABELS" (join "," $v.excludedJobLabels | default " ")
  "CLEANUP_CRONJOB_JOBS" (toString $v.cleanupCronJobJobs)
  "MAX_DELETIONS_PER_CYCLE" (toString $v.maxDeletionsPerCycle)
  "DELETE_RATE" (toString $v.deleteRate)
  "POD_CLEANUP" (toString $v.pods.cleanup)
  "ORPHAN_POD_TTL" $v.pods.orphanTTL
  "STUCK_POD_CLEANUP" (toString $v.stuckPods.cleanup)
  "STUCK_POD_NAMESPACES" (join "," $v.stuckPods.namespaces)
  "STUCK_POD_AFTER" $v.stuckPods.after
  "ORPHAN_SWEEP" (toString $v.orphanSweep)
) }}
{{- end }}
{{- if and (eq $c.key "serviceDiscovery") $root.Values.externalSecrets.settings.enabled }}
{{- range $root.Values.externalSecrets.settings.data }}
{{- $_ := unset $env .secretKey }}
{{- end }}
{{- end }}
{{- range $name, $value := $env }}
{{- if eq (toString $value) "" }}
{{- $_ := unset $env $name }}
{{- end }}
{{- end }}
{{- toYaml $env }}
{{- end }}
