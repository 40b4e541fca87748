-- Latest state per run and its snapshots over time, written by the runs worker.
CREATE TABLE run_state (
    run_id              text PRIMARY KEY,
    agent               text             NOT NULL,
    status              text             NOT NULL,
    started_at          timestamptz,
    updated_at          timestamptz      NOT NULL,
    last_span_end       timestamptz,
    span_count          integer          NOT NULL,
    step_count          integer          NOT NULL,
    planned_steps       integer,
    elapsed_s           double precision NOT NULL,
    -- Token totals by class (input_tokens, cache_read_tokens, ...), unknown classes absent.
    tokens              jsonb            NOT NULL,
    input_tokens        bigint           NOT NULL,
    output_tokens       bigint           NOT NULL,
    cost_usd            double precision NOT NULL,
    planning_cost_usd   double precision NOT NULL,
    tool_cost_usd       double precision NOT NULL,
    unpriced_spans      integer          NOT NULL,
    cost_by_kind        jsonb            NOT NULL,
    -- [{"model", "role", "cost_usd", "share"}], largest first; shares sum to 1.
    ledger              jsonb            NOT NULL,
    tool_calls          jsonb            NOT NULL,
    error_count         integer          NOT NULL,
    first_error_step    integer,
    replan_count        integer          NOT NULL,
    replan_steps        integer[]        NOT NULL,
    p95_step_latency_s  double precision,
    flagged_spans       integer          NOT NULL,
    -- Run cost relative to the agent's average over its recent completed runs: -0.18 is 18 % below.
    vs_avg              double precision,
    agent_avg_cost_usd  double precision
);
CREATE INDEX run_state_agent_updated_idx ON run_state (agent, updated_at DESC);
CREATE INDEX run_state_updated_idx ON run_state (updated_at DESC);

CREATE TABLE run_metrics (
    time                timestamptz      NOT NULL,
    run_id              text             NOT NULL,
    agent               text             NOT NULL,
    status              text             NOT NULL,
    step_count          integer          NOT NULL,
    span_count          integer          NOT NULL,
    cost_usd            double precision NOT NULL,
    input_tokens        bigint           NOT NULL,
    output_tokens       bigint           NOT NULL,
    p95_step_latency_s  double precision,
    replan_count        integer          NOT NULL,
    error_count         integer          NOT NULL
);
SELECT create_hypertable('run_metrics', 'time', chunk_time_interval => INTERVAL '1 day');
CREATE INDEX run_metrics_run_id_time_idx ON run_metrics (run_id, time DESC);
