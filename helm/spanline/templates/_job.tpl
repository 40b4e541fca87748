{{/*
Pod template of the one-shot Jobs (migrations, topics, retention). Call with
(dict "root" $ "component" "migrator" "command" (list ...) "resources" (dict ...) "hook" true).
Hook Jobs run before the release's own ServiceAccount exists, so they use the namespace's
default ServiceAccount without an API token.
*/}}
{{- define "spanline.jobPodTemplate" -}}
{{- $root := .root -}}
metadata:
  labels:
    {{- include "spanline.labels" (dict "root" $root "component" .component) | nindent 4 }}
spec:
  {{- include "spanline.podCommon" $root | nindent 2 }}
  {{- if not .hook }}
  serviceAccountName: {{ include "spanline.serviceAccountName" $root }}
  {{- end }}
  automountServiceAccountToken: false
  restartPolicy: Never
  containers:
    - name: {{ .component }}
      image: {{ include "spanline.image" $root | quote }}
      imagePullPolicy: {{ $root.Values.image.pullPolicy }}
      command:
        {{- toYaml .command | nindent 8 }}
      env:
        {{- include "spanline.env" $root | nindent 8 }}
        - name: SPANLINE_STATE_DIR
          value: /tmp/spanline-state
      resources:
        {{- toYaml .resources | nindent 8 }}
      securityContext:
        {{- toYaml $root.Values.containerSecurityContext | nindent 8 }}
      volumeMounts:
        {{- include "spanline.commonVolumeMounts" $root | nindent 8 }}
  volumes:
    {{- include "spanline.commonVolumes" $root | nindent 4 }}
{{- end -}}
