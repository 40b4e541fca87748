{{/*
Deployment of one worker role. Call with
(dict "root" $ "worker" .Values.spanWorker "component" "span-worker" "role" "spans"
      "topic" .Values.topics.spans.name).
*/}}
{{- define "spanline.workerDeployment" -}}
{{- $root := .root -}}
{{- $worker := .worker -}}
apiVersion: apps/v1
kind: Deployment
metadata:
  name: {{ include "spanline.fullname" $root }}-{{ .component }}
  labels:
    {{- include "spanline.labels" (dict "root" $root "component" .component) | nindent 4 }}
spec:
  {{- if not (include "spanline.autoscaling" $root) }}
  replicas: {{ $worker.replicas }}
  {{- end }}
  revisionHistoryLimit: 5
  selector:
    matchLabels:
      {{- include "spanline.selectorLabels" (dict "root" $root "component" .component) | nindent 6 }}
  strategy:
    # One pod at a time: each replacement triggers a consumer-group rebalance.
    type: RollingUpdate
    rollingUpdate:
      maxSurge: 1
      maxUnavailable: 0
  template:
    metadata:
      labels:
        {{- include "spanline.labels" (dict "root" $root "component" .component) | nindent 8 }}
      annotations:
        checksum/config: {{ include "spanline.configChecksum" $root }}
        {{- with $worker.podAnnotations }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
    spec:
      {{- include "spanline.podCommon" $root | nindent 6 }}
      serviceAccountName: {{ include "spanline.serviceAccountName" $root }}
      automountServiceAccountToken: {{ $root.Values.serviceAccount.automountToken }}
      terminationGracePeriodSeconds: {{ $worker.terminationGracePeriodSeconds }}
      containers:
        - name: worker
          image: {{ include "spanline.image" $root | quote }}
          imagePullPolicy: {{ $root.Values.image.pullPolicy }}
          command:
            {{- toYaml $worker.command | nindent 12 }}
          env:
            {{- include "spanline.env" $root | nindent 12 }}
            # faust keeps its data folder under the state folder, so it must be writable.
            - name: SPANLINE_STATE_DIR
              value: /var/lib/spanline
            {{- with $worker.extraEnv }}
            {{- toYaml . | nindent 12 }}
            {{- end }}
          ports:
            - name: http
              containerPort: {{ $root.Values.workerPort }}
              protocol: TCP
          livenessProbe:
            httpGet:
              path: /healthz
              port: http
            {{- toYaml $root.Values.workerProbes.liveness | nindent 12 }}
          readinessProbe:
            httpGet:
              path: /readyz
              port: http
            {{- toYaml $root.Values.workerProbes.readiness | nindent 12 }}
          resources:
            {{- toYaml $worker.resources | nindent 12 }}
          securityContext:
            {{- toYaml $root.Values.containerSecurityContext | nindent 12 }}
          volumeMounts:
            {{- include "spanline.commonVolumeMounts" $root | nindent 12 }}
            - name: data
              mountPath: /var/lib/spanline
      volumes:
        {{- include "spanline.commonVolumes" $root | nindent 8 }}
        - name: data
          emptyDir:
            sizeLimit: {{ $worker.dataSizeLimit }}
      {{- with $worker.nodeSelector }}
      nodeSelector:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      {{- with $worker.tolerations }}
      tolerations:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      {{- with $worker.affinity }}
      affinity:
        {{- toYaml . | nindent 8 }}
      {{- end }}
---
# Service for scraping /metrics; the workers take no other traffic.
apiVersion: v1
kind: Service
metadata:
  name: {{ include "spanline.fullname" $root }}-{{ .component }}
  labels:
    {{- include "spanline.labels" (dict "root" $root "component" .component) | nindent 4 }}
spec:
  type: ClusterIP
  clusterIP: None
  selector:
    {{- include "spanline.selectorLabels" (dict "root" $root "component" .component) | nindent 4 }}
  ports:
    - name: http
      port: {{ $root.Values.workerPort }}
      targetPort: http
      protocol: TCP
{{- if and $worker.pdb.enabled (or (include "spanline.autoscaling" $root) (gt (int $worker.replicas) 1)) }}
---
apiVersion: policy/v1
kind: PodDisruptionBudget
metadata:
  name: {{ include "spanline.fullname" $root }}-{{ .component }}
  labels:
    {{- include "spanline.labels" (dict "root" $root "component" .component) | nindent 4 }}
spec:
  maxUnavailable: {{ $worker.pdb.maxUnavailable }}
  selector:
    matchLabels:
      {{- include "spanline.selectorLabels" (dict "root" $root "component" .component) | nindent 6 }}
{{- end }}
{{- if $root.Values.autoscaling.keda.enabled }}
---
apiVersion: keda.sh/v1alpha1
kind: ScaledObject
metadata:
  name: {{ include "spanline.fullname" $root }}-{{ .component }}
  labels:
    {{- include "spanline.labels" (dict "root" $root "component" .component) | nindent 4 }}
spec:
  scaleTargetRef:
    name: {{ include "spanline.fullname" $root }}-{{ .component }}
  minReplicaCount: {{ $worker.scaling.minReplicas }}
  maxReplicaCount: {{ $worker.scaling.maxReplicas }}
  pollingInterval: {{ $root.Values.autoscaling.keda.pollingInterval }}
  cooldownPeriod: {{ $root.Values.autoscaling.keda.cooldownPeriod }}
  triggers:
    - type: kafka
      metadata:
        bootstrapServers: {{ $root.Values.config.kafkaBootstrap | quote }}
        consumerGroup: {{ printf "%s-%s" $root.Values.config.consumerGroupPrefix .role | quote }}
        topic: {{ .topic | quote }}
        lagThreshold: {{ $worker.scaling.lagThreshold | toString | quote }}
        activationLagThreshold: {{ $worker.scaling.activationLagThreshold | toString | quote }}
        offsetResetPolicy: earliest
        {{- if include "spanline.saslEnabled" $root }}
        sasl: {{ include "spanline.kedaSasl" $root | quote }}
        {{- end }}
        {{- if include "spanline.tlsEnabled" $root }}
        tls: enable
        {{- end }}
      {{- if or (include "spanline.saslEnabled" $root) $root.Values.kafka.tls.caSecret }}
      authenticationRef:
        name: {{ include "spanline.fullname" $root }}-kafka
      {{- end }}
{{- else if $root.Values.autoscaling.hpa.enabled }}
---
apiVersion: autoscaling/v2
kind: HorizontalPodAutoscaler
metadata:
  name: {{ include "spanline.fullname" $root }}-{{ .component }}
  labels:
    {{- include "spanline.labels" (dict "root" $root "component" .component) | nindent 4 }}
spec:
  scaleTargetRef:
    apiVersion: apps/v1
    kind: Deployment
    name: {{ include "spanline.fullname" $root }}-{{ .component }}
  minReplicas: {{ $worker.scaling.minReplicas }}
  maxReplicas: {{ $worker.scaling.maxReplicas }}
  metrics:
    - type: Resource
      resource:
        name: cpu
        target:
          type: Utilization
          averageUtilization: {{ $worker.scaling.targetCPUUtilizationPercentage }}
{{- end }}
{{- end -}}
