{{/* Chart name, shortened to the 63 characters a label value allows. */}}
{{- define "spanline.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Resource name prefix: the release name, plus the chart name when the release name lacks it. */}}
{{- define "spanline.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "spanline.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Labels of every resource. Call with (dict "root" $ "component" "span-worker"). */}}
{{- define "spanline.labels" -}}
helm.sh/chart: {{ include "spanline.chart" .root }}
{{ include "spanline.selectorLabels" . }}
app.kubernetes.io/version: {{ .root.Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .root.Release.Service }}
app.kubernetes.io/part-of: spanline
{{- with .root.Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{/* Selector labels: name, instance and component only, because selectors are immutable. */}}
{{- define "spanline.selectorLabels" -}}
app.kubernetes.io/name: {{ include "spanline.name" .root }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{- define "spanline.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "spanline.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "spanline.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}

{{/* True when either autoscaler owns the worker replica counts. */}}
{{- define "spanline.autoscaling" -}}
{{- if or .Values.autoscaling.keda.enabled .Values.autoscaling.hpa.enabled -}}true{{- end -}}
{{- end -}}

{{/* Kafka SASL mechanism in the spelling of KEDA's kafka scaler (sasl parameter). */}}
{{- define "spanline.kedaSasl" -}}
{{- $mechanism := .Values.kafka.sasl.mechanism -}}
{{- if eq $mechanism "PLAIN" -}}plaintext
{{- else if eq $mechanism "SCRAM-SHA-256" -}}scram_sha256
{{- else if eq $mechanism "SCRAM-SHA-512" -}}scram_sha512
{{- else -}}none
{{- end -}}
{{- end -}}

{{- define "spanline.saslEnabled" -}}
{{- if hasPrefix "SASL_" .Values.kafka.securityProtocol -}}true{{- end -}}
{{- end -}}

{{- define "spanline.tlsEnabled" -}}
{{- if or (eq .Values.kafka.securityProtocol "SSL") (eq .Values.kafka.securityProtocol "SASL_SSL") -}}true{{- end -}}
{{- end -}}

{{/* Stops rendering with a clear message when required Secrets are missing or inconsistent. */}}
{{- define "spanline.validate" -}}
{{- if not .Values.database.existingSecret -}}
{{- fail "database.existingSecret is empty: create a Secret with the libpq DSN under key database.dsnKey and set database.existingSecret to its name" -}}
{{- end -}}
{{- if and (include "spanline.saslEnabled" .) (not .Values.kafka.sasl.existingSecret) -}}
{{- fail (printf "kafka.securityProtocol=%s needs kafka.sasl.existingSecret: create a Secret with the SASL username and password and set it" .Values.kafka.securityProtocol) -}}
{{- end -}}
{{- if and (include "spanline.saslEnabled" .) (not .Values.kafka.sasl.mechanism) -}}
{{- fail (printf "kafka.securityProtocol=%s needs kafka.sasl.mechanism: set PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512" .Values.kafka.securityProtocol) -}}
{{- end -}}
{{- if and .Values.kafka.strimziTopics.enabled .Values.topics.create (not .Values.kafka.strimziTopics.clusterName) -}}
{{- fail "kafka.strimziTopics.enabled needs kafka.strimziTopics.clusterName: set it to the name of the Strimzi Kafka resource" -}}
{{- end -}}
{{- $spans := int .Values.topics.spans.partitions -}}
{{- if or (ne (int .Values.topics.spansEnriched.partitions) $spans) (ne (int .Values.topics.runs.partitions) $spans) -}}
{{- fail (printf "topics.spansEnriched.partitions (%v) and topics.runs.partitions (%v) must equal topics.spans.partitions (%v): these topics are keyed by run id and the runs worker's tables are partitioned like the span topic" .Values.topics.spansEnriched.partitions .Values.topics.runs.partitions .Values.topics.spans.partitions) -}}
{{- end -}}
{{- end -}}

{{/* SPANLINE_* environment of every container; keep in step with pipeline/config.py Settings. */}}
{{- define "spanline.env" -}}
- name: SPANLINE_KAFKA_BOOTSTRAP
  value: {{ .Values.config.kafkaBootstrap | quote }}
- name: SPANLINE_KAFKA_SECURITY_PROTOCOL
  value: {{ .Values.kafka.securityProtocol | quote }}
{{- if include "spanline.saslEnabled" . }}
- name: SPANLINE_KAFKA_SASL_MECHANISM
  value: {{ .Values.kafka.sasl.mechanism | quote }}
- name: SPANLINE_KAFKA_SASL_USERNAME
  valueFrom:
    secretKeyRef:
      name: {{ .Values.kafka.sasl.existingSecret }}
      key: {{ .Values.kafka.sasl.usernameKey }}
- name: SPANLINE_KAFKA_SASL_PASSWORD
  valueFrom:
    secretKeyRef:
      name: {{ .Values.kafka.sasl.existingSecret }}
      key: {{ .Values.kafka.sasl.passwordKey }}
{{- end }}
{{- if .Values.kafka.tls.caSecret }}
- name: SPANLINE_KAFKA_CA_FILE
  value: {{ printf "%s/%s" .Values.kafka.tls.mountPath .Values.kafka.tls.caKey | quote }}
{{- end }}
- name: SPANLINE_DATABASE_DSN
  valueFrom:
    secretKeyRef:
      name: {{ .Values.database.existingSecret }}
      key: {{ .Values.database.dsnKey }}
- name: SPANLINE_S3_ENDPOINT
  value: {{ .Values.config.s3Endpoint | quote }}
- name: SPANLINE_S3_SECURE
  value: {{ .Values.config.s3Secure | toString | quote }}
- name: SPANLINE_S3_BUCKET
  value: {{ .Values.config.s3Bucket | quote }}
- name: SPANLINE_S3_REGION
  value: {{ .Values.config.s3Region | quote }}
{{- if .Values.s3.existingSecret }}
- name: SPANLINE_S3_ACCESS_KEY
  valueFrom:
    secretKeyRef:
      name: {{ .Values.s3.existingSecret }}
      key: {{ .Values.s3.accessKeyKey }}
- name: SPANLINE_S3_SECRET_KEY
  valueFrom:
    secretKeyRef:
      name: {{ .Values.s3.existingSecret }}
      key: {{ .Values.s3.secretKeyKey }}
{{- end }}
- name: SPANLINE_SPANS_TOPIC
  value: {{ .Values.topics.spans.name | quote }}
- name: SPANLINE_FRAMES_TOPIC
  value: {{ .Values.topics.frames.name | quote }}
- name: SPANLINE_SPANS_DLQ_TOPIC
  value: {{ .Values.topics.spansDeadLetter.name | quote }}
- name: SPANLINE_FRAMES_DLQ_TOPIC
  value: {{ .Values.topics.framesDeadLetter.name | quote }}
- name: SPANLINE_SPANS_ENRICHED_TOPIC
  value: {{ .Values.topics.spansEnriched.name | quote }}
- name: SPANLINE_RUNS_TOPIC
  value: {{ .Values.topics.runs.name | quote }}
- name: SPANLINE_PRICES_TOPIC
  value: {{ .Values.topics.prices.name | quote }}
- name: SPANLINE_CONSUMER_GROUP_PREFIX
  value: {{ .Values.config.consumerGroupPrefix | quote }}
- name: SPANLINE_MAX_FRAME_BYTES
  value: {{ .Values.config.maxFrameBytes | int64 | toString | quote }}
- name: SPANLINE_CACHE_DIR
  value: /tmp/spanline-cache
- name: HOME
  value: /tmp
{{- with .Values.config.extraEnv }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{/* Volumes every pod mounts: /tmp, and the Kafka CA when one is configured. */}}
{{- define "spanline.commonVolumes" -}}
- name: tmp
  emptyDir:
    sizeLimit: {{ .Values.tmpSizeLimit }}
{{- if .Values.kafka.tls.caSecret }}
- name: kafka-ca
  secret:
    secretName: {{ .Values.kafka.tls.caSecret }}
    items:
      - key: {{ .Values.kafka.tls.caKey }}
        path: {{ .Values.kafka.tls.caKey }}
{{- end }}
{{- end -}}

{{- define "spanline.commonVolumeMounts" -}}
- name: tmp
  mountPath: /tmp
{{- if .Values.kafka.tls.caSecret }}
- name: kafka-ca
  mountPath: {{ .Values.kafka.tls.mountPath }}
  readOnly: true
{{- end }}
{{- end -}}

{{/* Pod spec fields shared by all workloads. */}}
{{- define "spanline.podCommon" -}}
{{- with .Values.imagePullSecrets }}
imagePullSecrets:
  {{- range . }}
  - name: {{ . }}
  {{- end }}
{{- end }}
securityContext:
  {{- toYaml .Values.podSecurityContext | nindent 2 }}
{{- end -}}

{{/* Checksum of the rendered environment, so a settings change rolls the pods. */}}
{{- define "spanline.configChecksum" -}}
{{- include "spanline.env" . | sha256sum -}}
{{- end -}}

{{/* Keys under .Values.topics that are Kafka topics, as a JSON array. */}}
{{- define "spanline.topicKeys" -}}
{{- list "spans" "frames" "spansDeadLetter" "framesDeadLetter" "spansEnriched" "runs" "prices" | toJson -}}
{{- end -}}
