-- Spans and frames as hypertables, plus the offsets the sinks store with their rows.
CREATE EXTENSION IF NOT EXISTS timescaledb;

CREATE TABLE spans (
    start_time            timestamptz      NOT NULL,
    end_time              timestamptz      NOT NULL,
    run_id                text             NOT NULL,
    agent                 text             NOT NULL,
    trace_id              text             NOT NULL,
    span_id               text             NOT NULL,
    parent_span_id        text             NOT NULL DEFAULT '',
    step                  integer          NOT NULL,
    kind                  text             NOT NULL,
    name                  text             NOT NULL,
    status                text             NOT NULL,
    error_message         text,
    provider              text,
    model                 text,
    -- Disjoint token classes: input excludes cache reads and writes, output excludes reasoning.
    -- NULL means the source did not report the class.
    input_tokens          bigint,
    cache_read_tokens     bigint,
    cache_write_tokens    bigint,
    cache_write_1h_tokens bigint,
    output_tokens         bigint,
    reasoning_tokens      bigint,
    audio_input_tokens    bigint,
    audio_output_tokens   bigint,
    usage_source          text,
    tool_name             text,
    tool_args             text,
    attributes            jsonb            NOT NULL DEFAULT '{}'::jsonb,
    -- cost_usd is NULL when the span could not be priced, never 0 for an unknown model.
    cost_usd              double precision,
    input_cost_usd        double precision,
    cache_read_cost_usd   double precision,
    cache_write_cost_usd  double precision,
    output_cost_usd       double precision,
    reasoning_cost_usd    double precision,
    other_cost_usd        double precision,
    computed_cost_usd     double precision,
    reported_cost_usd     double precision,
    price_id              text,
    pricing_status        text             NOT NULL,
    ingest_time           timestamptz      NOT NULL DEFAULT now()
);

-- 15-minute chunks keep the indexes of the newest chunk in shared buffers at 100K+ rows/s.
SELECT create_hypertable('spans', 'start_time', chunk_time_interval => INTERVAL '15 minutes');
-- One secondary index only: every extra index costs insert throughput on the hot path.
CREATE INDEX spans_run_id_start_time_idx ON spans (run_id, start_time DESC);

CREATE TABLE frames (
    capture_time  timestamptz NOT NULL,
    run_id        text        NOT NULL,
    span_id       text,
    step          integer     NOT NULL,
    seq           bigint      NOT NULL,
    kind          text        NOT NULL,
    content_type  text        NOT NULL,
    sha256        text        NOT NULL,
    size_bytes    bigint      NOT NULL,
    object_key    text        NOT NULL,
    width         integer,
    height        integer,
    ingest_time   timestamptz NOT NULL DEFAULT now()
);

SELECT create_hypertable('frames', 'capture_time', chunk_time_interval => INTERVAL '1 day');
CREATE INDEX frames_run_id_seq_idx ON frames (run_id, seq);

-- The next offset to read per partition, committed in the same transaction as the rows it covers.
CREATE TABLE sink_offsets (
    consumer_group text    NOT NULL,
    topic          text    NOT NULL,
    partition      integer NOT NULL,
    next_offset    bigint  NOT NULL,
    updated_at     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (consumer_group, topic, partition)
);
