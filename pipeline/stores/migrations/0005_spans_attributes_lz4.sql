-- Compress span attributes with lz4 instead of the default pglz. Rows whose attributes push them
-- over the 2 kB TOAST threshold are compressed on insert, and pglz was the largest single cost
-- of COPY into spans: with the load harness's recorded shape (mean 2.4 kB of attributes), COPY
-- went from about 19,000 to 36,000 rows/s, at about the same size per row (docs/performance.md).
-- The column stays jsonb, so queries are unchanged.
-- TimescaleDB 2.19 applies this to the existing chunks and to every chunk created later. Values
-- already stored keep their pglz compression until they are rewritten.
ALTER TABLE spans ALTER COLUMN attributes SET COMPRESSION lz4;
