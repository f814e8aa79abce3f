{{/*
Expand the name of the chart.
*/}}
{{- define "pushrelay.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Namespace to set on the resources.
*/}}
{{- define "pushrelay.namespace" -}}
{{- default .Release.Namespace .Values.namespaceOverride }}
{{- end }}

{{/*
Create a default fully qualified app name, truncated at 63 characters (DNS
names). If the release name contains the chart name it is used as is.
*/}}
{{- define "pushrelay.fullname" -}}
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
Chart name and version as used by the chart label.
*/}}
{{- define "pushrelay.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
The name of the service account to use.
*/}}
{{- define "pushrelay.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "pushrelay.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/*
Default labels.
*/}}
{{- define "pushrelay.defaultLabels" -}}
helm.sh/chart: {{ include "pushrelay.chart" . }}
{{ include "pushrelay.selectorLabels" . }}
{{- if .Chart.AppVersion }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
{{- end }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- with .Values.podLabels }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/*
Selector labels.
*/}}
{{- define "pushrelay.selectorLabels" -}}
app.kubernetes.io/name: {{ include "pushrelay.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/*
The effective mode: forward, cache or both. An empty `mode` forwards when a
backend URL is set and caches otherwise, as pushrelay itself does.
*/}}
{{- define "pushrelay.mode" -}}
{{- $mode := .Values.mode | default (ternary "forward" "cache" (ne .Values.remoteWrite.url "")) }}
{{- if and (has $mode (list "forward" "both")) (not .Values.remoteWrite.url) }}
{{- fail (printf "mode %q needs remoteWrite.url (the backend's remote_write URL)" $mode) }}
{{- end }}
{{- if and (eq $mode "cache") .Values.remoteWrite.url }}
{{- fail "mode \"cache\" does not forward: unset remoteWrite.url, or use mode \"both\"" }}
{{- end }}
{{- $mode }}
{{- end }}

{{/*
Whether pushes are kept (cache or both): "true" or "".
*/}}
{{- define "pushrelay.caching" -}}
{{- if ne (include "pushrelay.mode" .) "forward" }}true{{ end }}
{{- end }}

{{/*
Whether the cache is persisted to a volume: "true" or "".
*/}}
{{- define "pushrelay.persistent" -}}
{{- if .Values.persistentVolume.enabled }}
{{- if not (include "pushrelay.caching" .) }}
{{- fail "persistentVolume.enabled persists the cache: it needs mode cache or both" }}
{{- end }}
{{- if eq .Values.kind "DaemonSet" }}
{{- fail "persistentVolume.enabled is not supported with kind DaemonSet: use a Deployment or StatefulSet" }}
{{- end }}
{{- true }}
{{- end }}
{{- end }}

{{/*
Whether pushes go through the disk queue (ack = durable): "true" or "".
*/}}
{{- define "pushrelay.durable" -}}
{{- if .Values.durableQueue.enabled }}
{{- if eq (include "pushrelay.mode" .) "cache" }}
{{- fail "durableQueue.enabled queues forwarded pushes: it needs mode forward or both" }}
{{- end }}
{{- if and (eq .Values.kind "Deployment") (gt (int .Values.replicaCount) 1) }}
{{- fail "durableQueue.enabled with kind Deployment takes one replica (one claim, one writer): use kind StatefulSet for more" }}
{{- end }}
{{- true }}
{{- end }}
{{- end }}

{{/*
The pushrelay configuration file: .Values.config with the keys the chart
owns set from the other values.
*/}}
{{- define "pushrelay.config" -}}
{{- $config := deepCopy (.Values.config | default dict) }}
{{- $web := get $config "web" | default dict }}
{{- $_ := set $web "listen_address" (printf ":%v" .Values.service.targetPort) }}
{{- $_ = set $config "web" $web }}
{{- $mode := include "pushrelay.mode" . }}
{{- if ne $mode "cache" }}
{{- $remoteWrite := get $config "remote_write" | default dict }}
{{- $_ = set $remoteWrite "url" .Values.remoteWrite.url }}
{{- with .Values.remoteWrite.tenant }}
{{- $tenant := get $remoteWrite "tenant" | default dict }}
{{- $_ = set $tenant "id" . }}
{{- $_ = set $remoteWrite "tenant" $tenant }}
{{- end }}
{{- with .Values.remoteWrite.resendInterval }}
{{- if ne $mode "both" }}
{{- fail "remoteWrite.resendInterval re-sends the cache: it needs mode \"both\"" }}
{{- end }}
{{- $_ = set $remoteWrite "resend_interval" . }}
{{- end }}
{{- with .Values.externalLabels }}
{{- $_ = set $remoteWrite "external_labels" . }}
{{- end }}
{{- if include "pushrelay.durable" . }}
{{- $_ = set $remoteWrite "ack" "durable" }}
{{- $_ = set $remoteWrite "queue" (dict "dir" .Values.durableQueue.mountPath "max_bytes" (int64 .Values.durableQueue.maxBytes)) }}
{{- end }}
{{- with .Values.writeRelabelConfigs }}
{{- $_ = set $remoteWrite "write_relabel_configs" . }}
{{- end }}
{{- $_ = set $config "remote_write" $remoteWrite }}
{{- end }}
{{- $cache := get $config "cache" | default dict }}
{{- $_ = set $cache "enabled" (ne $mode "forward") }}
{{- $_ = set $config "cache" $cache }}
{{- if include "pushrelay.persistent" . }}
{{- $persistence := get $config "persistence" | default dict }}
{{- $_ = set $persistence "file" (printf "%s/%s" (.Values.persistentVolume.mountPath | trimSuffix "/") .Values.persistentVolume.fileName) }}
{{- $_ = set $config "persistence" $persistence }}
{{- end }}
{{- toYaml $config }}
{{- end }}

{{/*
Container arguments for the backend credentials and headers: files mounted
from Secrets, never values in the pod spec.
*/}}
{{- define "pushrelay.remoteWriteArgs" -}}
{{- if ne (include "pushrelay.mode" .) "cache" }}
{{- with .Values.remoteWrite.auth }}
{{- if .existingSecret }}
{{- if eq .type "basic" }}
- --remote-write.basic-auth.username=$(PUSHRELAY_REMOTE_WRITE_USERNAME)
- --remote-write.basic-auth.password-file=/etc/pushrelay/secrets/remote-write/{{ .passwordKey }}
{{- else }}
- --remote-write.bearer-token-file=/etc/pushrelay/secrets/remote-write/{{ .bearerTokenKey }}
{{- end }}
{{- end }}
{{- end }}
{{- with .Values.remoteWrite.tls }}
{{- if .existingSecret }}
{{- with .caKey }}
- --remote-write.tls.ca-file=/etc/pushrelay/secrets/tls/{{ . }}
{{- end }}
{{- if and .certKey .keyKey }}
- --remote-write.tls.cert-file=/etc/pushrelay/secrets/tls/{{ .certKey }}
- --remote-write.tls.key-file=/etc/pushrelay/secrets/tls/{{ .keyKey }}
{{- end }}
{{- end }}
{{- end }}
{{- range $name, $value := .Values.remoteWrite.headers }}
- {{ printf "--remote-write.header=%s:%s" $name $value | quote }}
{{- end }}
{{- end }}
{{- end }}

{{/*
The pod spec shared by the Deployment, StatefulSet and DaemonSet.
*/}}
{{- define "pushrelay.podSpec" -}}
serviceAccountName: {{ include "pushrelay.serviceAccountName" . }}
automountServiceAccountToken: {{ .Values.automountServiceAccountToken }}
{{- /* Service links would inject <SERVICE>_SERVICE_HOST and the like; for a
Service named pushrelay* those are PUSHRELAY_* variables, which pushrelay reads
as configuration and refuses. */}}
enableServiceLinks: false
terminationGracePeriodSeconds: {{ .Values.terminationGracePeriodSeconds }}
{{- with .Values.priorityClassName }}
priorityClassName: {{ . | quote }}
{{- end }}
{{- with .Values.hostAliases }}
hostAliases:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .Values.imagePullSecrets }}
imagePullSecrets:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .Values.extraInitContainers }}
initContainers:
  {{- toYaml . | nindent 2 }}
{{- end }}
containers:
  {{- with .Values.extraContainers }}
  {{- toYaml . | nindent 2 }}
  {{- end }}
  - name: pushrelay
    image: "{{ .Values.image.repository }}:{{ .Values.image.tag | default .Chart.AppVersion }}"
    imagePullPolicy: {{ .Values.image.pullPolicy }}
    args:
      - --config=/etc/pushrelay/config/pushrelay.yaml
      {{- with include "pushrelay.remoteWriteArgs" . | trim }}
      {{- . | nindent 6 }}
      {{- end }}
      {{- with .Values.extraArgs }}
      {{- toYaml . | nindent 6 }}
      {{- end }}
    {{- $basicAuth := and (ne (include "pushrelay.mode" .) "cache") .Values.remoteWrite.auth.existingSecret (eq .Values.remoteWrite.auth.type "basic") }}
    {{- if or $basicAuth .Values.extraVars }}
    env:
      {{- if $basicAuth }}
      - name: PUSHRELAY_REMOTE_WRITE_USERNAME
        valueFrom:
          secretKeyRef:
            name: {{ .Values.remoteWrite.auth.existingSecret }}
            key: {{ .Values.remoteWrite.auth.usernameKey }}
      {{- end }}
      {{- with .Values.extraVars }}
      {{- toYaml . | nindent 6 }}
      {{- end }}
    {{- end }}
    ports:
      - name: http
        containerPort: {{ .Values.service.targetPort }}
        protocol: TCP
    {{- if .Values.liveness.enabled }}
    livenessProbe:
      {{- toYaml .Values.liveness.probe | nindent 6 }}
    {{- end }}
    {{- if .Values.readiness.enabled }}
    readinessProbe:
      {{- toYaml .Values.readiness.probe | nindent 6 }}
    {{- end }}
    {{- with .Values.lifecycle }}
    lifecycle:
      {{- toYaml . | nindent 6 }}
    {{- end }}
    {{- with .Values.resources }}
    resources:
      {{- toYaml . | nindent 6 }}
    {{- end }}
    {{- with .Values.containerSecurityContext }}
    securityContext:
      {{- toYaml . | nindent 6 }}
    {{- end }}
    volumeMounts:
      - name: config
        mountPath: /etc/pushrelay/config
        readOnly: true
      {{- if and (ne (include "pushrelay.mode" .) "cache") .Values.remoteWrite.auth.existingSecret }}
      - name: remote-write-auth
        mountPath: /etc/pushrelay/secrets/remote-write
        readOnly: true
      {{- end }}
      {{- if and (ne (include "pushrelay.mode" .) "cache") .Values.remoteWrite.tls.existingSecret }}
      - name: remote-write-tls
        mountPath: /etc/pushrelay/secrets/tls
        readOnly: true
      {{- end }}
      {{- if include "pushrelay.persistent" . }}
      - name: storage-volume
        mountPath: {{ .Values.persistentVolume.mountPath | quote }}
        {{- with .Values.persistentVolume.subPath }}
        subPath: {{ . | quote }}
        {{- end }}
      {{- end }}
      {{- if include "pushrelay.durable" . }}
      - name: queue-volume
        mountPath: {{ .Values.durableQueue.mountPath | quote }}
      {{- end }}
      {{- with .Values.extraVolumeMounts }}
      {{- toYaml . | nindent 6 }}
      {{- end }}
{{- with .Values.nodeSelector }}
nodeSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .Values.tolerations }}
tolerations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .Values.affinity }}
affinity:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .Values.topologySpreadConstraints }}
topologySpreadConstraints:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .Values.securityContext }}
securityContext:
  {{- toYaml . | nindent 2 }}
{{- end }}
volumes:
  - name: config
    configMap:
      name: {{ include "pushrelay.fullname" . }}
  {{- if and (ne (include "pushrelay.mode" .) "cache") .Values.remoteWrite.auth.existingSecret }}
  - name: remote-write-auth
    secret:
      secretName: {{ .Values.remoteWrite.auth.existingSecret }}
      defaultMode: 0440
  {{- end }}
  {{- if and (ne (include "pushrelay.mode" .) "cache") .Values.remoteWrite.tls.existingSecret }}
  - name: remote-write-tls
    secret:
      secretName: {{ .Values.remoteWrite.tls.existingSecret }}
      defaultMode: 0440
  {{- end }}
  {{- if and (include "pushrelay.persistent" .) (ne .Values.kind "StatefulSet") }}
  - name: storage-volume
    persistentVolumeClaim:
      claimName: {{ .Values.persistentVolume.existingClaim | default (include "pushrelay.fullname" .) }}
  {{- end }}
  {{- if and (include "pushrelay.durable" .) (eq .Values.kind "DaemonSet") }}
  - name: queue-volume
    hostPath:
      path: {{ .Values.durableQueue.hostPath | quote }}
      type: DirectoryOrCreate
  {{- else if and (include "pushrelay.durable" .) (eq .Values.kind "Deployment") }}
  - name: queue-volume
    persistentVolumeClaim:
      claimName: {{ .Values.durableQueue.existingClaim | default (printf "%s-queue" (include "pushrelay.fullname" .)) }}
  {{- end }}
  {{- with .Values.extraVolumes }}
  {{- toYaml . | nindent 2 }}
  {{- end }}
{{- end }}

{{/*
The PersistentVolumeClaim spec (a Deployment's claim or a StatefulSet's
claim template).
*/}}
{{- define "pushrelay.pvcSpec" -}}
accessModes:
  {{- toYaml .Values.persistentVolume.accessModes | nindent 2 }}
{{- with .Values.persistentVolume.storageClass }}
storageClassName: {{ if eq . "-" }}""{{ else }}{{ . | quote }}{{ end }}
{{- end }}
resources:
  requests:
    storage: {{ .Values.persistentVolume.size | quote }}
{{- end }}

{{/*
The disk queue's claim spec (a Deployment's claim or a StatefulSet's claim
template).
*/}}
{{- define "pushrelay.queuePvcSpec" -}}
accessModes:
  {{- toYaml .Values.durableQueue.accessModes | nindent 2 }}
{{- with .Values.durableQueue.storageClass }}
storageClassName: {{ if eq . "-" }}""{{ else }}{{ . | quote }}{{ end }}
{{- end }}
resources:
  requests:
    storage: {{ .Values.durableQueue.size | quote }}
{{- end }}
