{{/*
Names and labels, as `helm create` makes them.
*/}}

{{/* The chart name, or nameOverride. */}}
{{- define "reconcile.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
The full name: fullnameOverride, else release name + chart name (the release
name alone when it already holds the chart name). At most 63 characters.
*/}}
{{- define "reconcile.fullname" -}}
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

{{/* chart-version, for the helm.sh/chart label. */}}
{{- define "reconcile.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Labels of every object. */}}
{{- define "reconcile.labels" -}}
helm.sh/chart: {{ include "reconcile.chart" . }}
{{ include "reconcile.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: reconcile
{{- end }}

{{/* Selector labels (immutable in a Deployment: never add to them). */}}
{{- define "reconcile.selectorLabels" -}}
app.kubernetes.io/name: {{ include "reconcile.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/*
The controller pods' selector (Deployment, Service, PodDisruptionBudget): the
drift job's pods carry component drift-check and are never selected.
*/}}
{{- define "reconcile.controllerSelectorLabels" -}}
{{ include "reconcile.selectorLabels" . }}
app.kubernetes.io/component: controller
{{- end }}

{{/* The ServiceAccount the pods run as. */}}
{{- define "reconcile.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "reconcile.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* The controller image. */}}
{{- define "reconcile.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}

{{/* Whether the controller runs with --leader-elect ("true" or ""). */}}
{{- define "reconcile.leaderElect" -}}
{{- if or .Values.leaderElection.enabled (gt (int .Values.replicaCount) 1) }}true{{- end }}
{{- end }}

{{/* The Lease the replicas share. */}}
{{- define "reconcile.leaseName" -}}
{{- default (include "reconcile.fullname" .) .Values.leaderElection.leaseName }}
{{- end }}

{{/* The state claim's name. */}}
{{- define "reconcile.claimName" -}}
{{- default (include "reconcile.fullname" .) .Values.persistence.existingClaim }}
{{- end }}

{{/*
A duration of the controller's syntax (<digits><ms|s|m|h>, values.schema.json
checks it) in milliseconds, and in whole seconds rounded up.
*/}}
{{- define "reconcile.millis" -}}
{{- $n := int64 (regexFind "^[0-9]+" .) }}
{{- $unit := trimPrefix (regexFind "^[0-9]+" .) . }}
{{- if eq $unit "ms" }}{{ $n }}
{{- else if eq $unit "s" }}{{ mul $n 1000 }}
{{- else if eq $unit "m" }}{{ mul $n 60000 }}
{{- else if eq $unit "h" }}{{ mul $n 3600000 }}
{{- else }}{{ fail (printf "%q is not a duration such as 30s, 5m or 1h" .) }}
{{- end }}
{{- end }}

{{- define "reconcile.seconds" -}}
{{- div (add (include "reconcile.millis" .) 999) 1000 }}
{{- end }}

{{/*
Checks the combinations values.schema.json cannot express; fails the render
with a message that names the values to change.
*/}}
{{- define "reconcile.validate" -}}
{{- if gt (int .Values.replicaCount) 1 }}
{{- if not .Values.persistence.enabled }}
{{- fail "replicaCount > 1 needs persistence.enabled: the replicas share one state folder (the Lease holder applies, a new leader goes on from the state the old one recorded); per-pod emptyDirs would each start from nothing" }}
{{- end }}
{{- if and (not .Values.persistence.existingClaim) (not (has "ReadWriteMany" .Values.persistence.accessModes)) }}
{{- fail "replicaCount > 1 needs a state claim every replica can mount: set persistence.accessModes to [ReadWriteMany] (a storage class that supports it, with flock), or persistence.existingClaim" }}
{{- end }}
{{- end }}
{{- if and .Values.driftCheck.enabled (not .Values.persistence.enabled) }}
{{- fail "driftCheck.enabled needs persistence.enabled: `reconcile drift` compares what runs with the controller's last apply, recorded in its state claim" }}
{{- end }}
{{- if and .Values.git.sshKeyKey (not .Values.git.knownHostsKey) }}
{{- fail "git.sshKeyKey needs git.knownHostsKey: the controller checks the SSH host key against known_hosts" }}
{{- end }}
{{- if and .Values.git.existingSecret (not (or .Values.git.passwordKey .Values.git.sshKeyKey)) }}
{{- fail "git.existingSecret is set but names no key: set git.passwordKey (HTTPS) or git.sshKeyKey and git.knownHostsKey (SSH)" }}
{{- end }}
{{- if and (or .Values.git.passwordKey .Values.git.sshKeyKey) (not .Values.git.existingSecret) }}
{{- fail "git.passwordKey / git.sshKeyKey name keys of git.existingSecret: set git.existingSecret" }}
{{- end }}
{{- if ge (int64 (include "reconcile.millis" .Values.leaderElection.renewDeadline)) (int64 (include "reconcile.millis" .Values.leaderElection.leaseDuration)) }}
{{- fail "leaderElection.renewDeadline must be shorter than leaderElection.leaseDuration (a leader that cannot renew stops before its lease can expire)" }}
{{- end }}
{{- if ge (int64 (include "reconcile.millis" .Values.leaderElection.retryPeriod)) (int64 (include "reconcile.millis" .Values.leaderElection.renewDeadline)) }}
{{- fail "leaderElection.retryPeriod must be shorter than leaderElection.renewDeadline (the leader renews every retry period)" }}
{{- end }}
{{- end }}

{{/* Arguments common to the controller and the drift job (global flags). */}}
{{- define "reconcile.globalArgs" -}}
- --state=/var/lib/reconcile
- --secrets=/etc/reconcile/secrets
- --log-format={{ .Values.controller.logFormat }}
{{- if .Values.controller.path }}
- --path={{ .Values.controller.path }}
{{- end }}
{{- range until (int .Values.controller.verbosity) }}
- -v
{{- end }}
{{- with .Values.git.username }}
- --git-username={{ . }}
{{- end }}
{{- if and .Values.git.existingSecret .Values.git.passwordKey }}
- --git-password-file=/etc/reconcile/git/password
{{- end }}
{{- if and .Values.git.existingSecret .Values.git.sshKeyKey }}
- --git-ssh-key=/etc/reconcile/git/ssh-key
- --git-known-hosts=/etc/reconcile/git/known_hosts
{{- end }}
{{- range .Values.controller.allowSecretEnv }}
- --allow-secret-env={{ . }}
{{- end }}
{{- range .Values.controller.allowBind }}
- --allow-bind={{ . }}
{{- end }}
{{- end }}

{{/* Environment common to the controller and the drift job. */}}
{{- define "reconcile.env" -}}
- name: HOME
  value: /tmp
{{- with .Values.credentials.aws }}
{{- if .existingSecret }}
- name: AWS_ACCESS_KEY_ID
  valueFrom:
    secretKeyRef:
      name: {{ .existingSecret }}
      key: {{ .accessKeyIdKey }}
- name: AWS_SECRET_ACCESS_KEY
  valueFrom:
    secretKeyRef:
      name: {{ .existingSecret }}
      key: {{ .secretAccessKeyKey }}
{{- if .sessionTokenKey }}
- name: AWS_SESSION_TOKEN
  valueFrom:
    secretKeyRef:
      name: {{ .existingSecret }}
      key: {{ .sessionTokenKey }}
{{- end }}
{{- end }}
{{- end }}
{{- if .Values.credentials.gcp.existingSecret }}
- name: GOOGLE_APPLICATION_CREDENTIALS
  value: /etc/reconcile/gcp/credentials.json
{{- end }}
{{- with .Values.credentials.azure }}
{{- if .existingSecret }}
- name: AZURE_TENANT_ID
  valueFrom:
    secretKeyRef:
      name: {{ .existingSecret }}
      key: {{ .tenantIdKey }}
- name: AZURE_CLIENT_ID
  valueFrom:
    secretKeyRef:
      name: {{ .existingSecret }}
      key: {{ .clientIdKey }}
- name: AZURE_CLIENT_SECRET
  valueFrom:
    secretKeyRef:
      name: {{ .existingSecret }}
      key: {{ .clientSecretKey }}
{{- end }}
{{- end }}
{{- if .Values.dockerTLS.existingSecret }}
- name: DOCKER_CERT_PATH
  value: /etc/reconcile/docker-tls
- name: DOCKER_TLS_VERIFY
  value: "1"
{{- end }}
{{- range .Values.secretEnv }}
- name: {{ .name }}
  valueFrom:
    secretKeyRef:
      name: {{ .existingSecret }}
      key: {{ .key }}
{{- end }}
{{- end }}

{{/* Volume mounts common to the controller and the drift job. */}}
{{- define "reconcile.volumeMounts" -}}
- name: state
  mountPath: /var/lib/reconcile
- name: tmp
  mountPath: /tmp
- name: secrets
  mountPath: /etc/reconcile/secrets
  readOnly: true
{{- if .Values.git.existingSecret }}
- name: git
  mountPath: /etc/reconcile/git
  readOnly: true
{{- end }}
{{- if .Values.credentials.gcp.existingSecret }}
- name: gcp
  mountPath: /etc/reconcile/gcp
  readOnly: true
{{- end }}
{{- if .Values.dockerTLS.existingSecret }}
- name: docker-tls
  mountPath: /etc/reconcile/docker-tls
  readOnly: true
{{- end }}
{{- end }}

{{/*
Volumes common to the controller and the drift job. Secrets are mounted
(0440, group fsGroup), never read through the API: the pods need no RBAC on
Secrets.
*/}}
{{- define "reconcile.volumes" -}}
- name: state
{{- if .Values.persistence.enabled }}
  persistentVolumeClaim:
    claimName: {{ include "reconcile.claimName" . }}
{{- else }}
  emptyDir: {}
{{- end }}
- name: tmp
  emptyDir: {}
- name: secrets
{{- if .Values.secretFiles }}
  projected:
    defaultMode: 0440
    sources:
{{- range .Values.secretFiles }}
      - secret:
          name: {{ .existingSecret }}
{{- with .items }}
          items:
{{- range . }}
            - key: {{ .key }}
              path: {{ .path }}
{{- end }}
{{- end }}
{{- end }}
{{- else }}
  emptyDir: {}
{{- end }}
{{- with .Values.git }}
{{- if .existingSecret }}
- name: git
  secret:
    secretName: {{ .existingSecret }}
    defaultMode: 0440
    items:
{{- if .passwordKey }}
      - key: {{ .passwordKey }}
        path: password
{{- end }}
{{- if .sshKeyKey }}
      - key: {{ .sshKeyKey }}
        path: ssh-key
      - key: {{ .knownHostsKey }}
        path: known_hosts
{{- end }}
{{- end }}
{{- end }}
{{- if .Values.credentials.gcp.existingSecret }}
- name: gcp
  secret:
    secretName: {{ .Values.credentials.gcp.existingSecret }}
    defaultMode: 0440
    items:
      - key: {{ .Values.credentials.gcp.key }}
        path: credentials.json
{{- end }}
{{- with .Values.dockerTLS }}
{{- if .existingSecret }}
- name: docker-tls
  secret:
    secretName: {{ .existingSecret }}
    defaultMode: 0440
    items:
      - key: {{ .caKey }}
        path: ca.pem
{{- if .certKey }}
      - key: {{ .certKey }}
        path: cert.pem
{{- end }}
{{- if .keyKey }}
      - key: {{ .keyKey }}
        path: key.pem
{{- end }}
{{- end }}
{{- end }}
{{- end }}

{{/*
The Kubernetes target's rules in a namespace it deploys into: what a
server-side-apply provider needs on what it deploys. Deployments and
Services: read and watch to observe (by label selector), create/patch to
apply (an apply that creates needs both), update and delete to prune and
destroy. Secrets: the provider keeps an agent's secretEnv / secretFiles in
one Secret per agent ("<agent>.secrets"), read by name before it is applied
or deleted: get, create, patch, delete, but no list or watch (nothing reads
the namespace's other Secrets in bulk). Nothing else: no pods, no
namespaces, no RBAC objects.
*/}}
{{- define "reconcile.targetRules" -}}
- apiGroups: ["apps"]
  resources: ["deployments"]
  verbs: ["get", "list", "watch", "create", "update", "patch", "delete"]
- apiGroups: [""]
  resources: ["services"]
  verbs: ["get", "list", "watch", "create", "update", "patch", "delete"]
- apiGroups: [""]
  resources: ["secrets"]
  verbs: ["get", "create", "patch", "delete"]
{{- end }}

{{/* The pod and container security settings (restricted Pod Security Standard). */}}
{{- define "reconcile.podSecurityContext" -}}
runAsNonRoot: true
runAsUser: 65532
runAsGroup: 65532
fsGroup: 65532
seccompProfile:
  type: RuntimeDefault
{{- end }}

{{- define "reconcile.containerSecurityContext" -}}
runAsNonRoot: true
runAsUser: 65532
runAsGroup: 65532
readOnlyRootFilesystem: true
allowPrivilegeEscalation: false
privileged: false
capabilities:
  drop:
    - ALL
seccompProfile:
  type: RuntimeDefault
{{- end }}
