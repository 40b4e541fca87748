-- Previous and new cost of every span whose stored cost `spanline reprice` changed. Rows are
-- written in the same transaction as the update of `spans`, so no cost changes without a trace.
CREATE TABLE span_cost_audit (
    audit_id               bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    -- One id per `spanline reprice` invocation, so a whole run can be reviewed or undone.
    reprice_id             uuid             NOT NULL,
    span_id                text             NOT NULL,
    run_id                 text             NOT NULL,
    start_time             timestamptz      NOT NULL,
    provider               text,
    model                  text,
    repriced_at            timestamptz      NOT NULL DEFAULT now(),
    old_cost_usd           double precision,
    new_cost_usd           double precision,
    old_computed_cost_usd  double precision,
    new_computed_cost_usd  double precision,
    old_price_id           text,
    new_price_id           text,
    old_pricing_status     text             NOT NULL,
    new_pricing_status     text             NOT NULL,
    -- The command line that made the change, e.g. "spanline reprice --from ... --to ...".
    reason                 text             NOT NULL
);

CREATE INDEX span_cost_audit_span_idx ON span_cost_audit (span_id, start_time);
CREATE INDEX span_cost_audit_reprice_idx ON span_cost_audit (reprice_id);
