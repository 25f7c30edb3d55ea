-- The runner's PostgreSQL schema as its migrations leave it (docs/runner-contract.md §B2),
-- written from that description for tests and the bench: the five tables the bias-analysis
-- backfill and the runner's bias-analysis read touch, with their columns, defaults, CHECKs,
-- keys, indexes and the updated_at trigger. Not copied from the runner's migration files.
--
-- Drift it keeps on purpose (§B1.3, §B1.10):
--   * cross_region_analyses has NO summary_source column (no migration creates it; the
--     runner's code needs it). Tests add it by hand where they model the live database, with
--     RUNNER_SCHEMA_LIVE_PATCH below.
--   * executions.question_id comes from the manual 007 file (applied here, as
--     scripts/run-migration.sh does).
--   * the 0004 CHECKs reject statuses the runner's code writes (jobs 'processing' and
--     'finalizing', executions 'retrying'); kept, since that is what the migrations leave.
-- Tables the backfill never touches (ipfs_bundles, diffs, outbox, transparency_log, ...) are
-- left out.

CREATE OR REPLACE FUNCTION update_updated_at_column() RETURNS trigger AS $$
BEGIN
    NEW.updated_at = NOW();
    RETURN NEW;
END;
$$ LANGUAGE plpgsql;

CREATE TABLE jobs (
    id SERIAL PRIMARY KEY,
    jobspec_id VARCHAR(255) NOT NULL UNIQUE,
    jobspec_data JSONB NOT NULL,
    status VARCHAR(50) DEFAULT 'queued',
    created_at TIMESTAMP DEFAULT NOW(),
    updated_at TIMESTAMP DEFAULT NOW(),
    CONSTRAINT chk_jobs_status
        CHECK (status IN ('created', 'queued', 'running', 'completed', 'failed', 'cancelled'))
);
CREATE INDEX idx_jobs_status ON jobs (status);
CREATE INDEX idx_jobs_created_at ON jobs (created_at);
CREATE INDEX idx_jobs_updated_at ON jobs (updated_at);
CREATE INDEX idx_jobs_jobspec_data ON jobs USING GIN (jobspec_data);
CREATE INDEX idx_jobs_status_created_at ON jobs (status, created_at DESC);

CREATE TABLE cross_region_executions (
    id UUID PRIMARY KEY DEFAULT gen_random_uuid(),
    jobspec_id VARCHAR(255) NOT NULL,
    total_regions INTEGER NOT NULL,
    success_count INTEGER NOT NULL DEFAULT 0,
    failure_count INTEGER NOT NULL DEFAULT 0,
    min_regions_required INTEGER NOT NULL DEFAULT 3,
    min_success_rate NUMERIC(3, 2) NOT NULL DEFAULT 0.67,
    status VARCHAR(50) NOT NULL DEFAULT 'running',
    started_at TIMESTAMPTZ NOT NULL DEFAULT NOW(),
    completed_at TIMESTAMPTZ,
    duration_ms BIGINT,
    created_at TIMESTAMPTZ NOT NULL DEFAULT NOW(),
    updated_at TIMESTAMPTZ NOT NULL DEFAULT NOW()
);
COMMENT ON COLUMN cross_region_executions.status IS 'running, completed, partial, failed';
CREATE INDEX idx_cross_region_executions_jobspec_id ON cross_region_executions (jobspec_id);
CREATE INDEX idx_cross_region_executions_status ON cross_region_executions (status);
CREATE INDEX idx_cross_region_executions_created_at ON cross_region_executions (created_at);
CREATE TRIGGER update_cross_region_executions_updated_at BEFORE UPDATE
    ON cross_region_executions FOR EACH ROW EXECUTE FUNCTION update_updated_at_column();

CREATE TABLE executions (
    id SERIAL PRIMARY KEY,
    job_id INTEGER REFERENCES jobs (id),
    provider_id VARCHAR(255) NOT NULL,
    region VARCHAR(100) NOT NULL,
    status VARCHAR(50) DEFAULT 'pending',
    started_at TIMESTAMP,
    completed_at TIMESTAMP,
    output_data JSONB,
    receipt_data JSONB,
    created_at TIMESTAMP DEFAULT NOW(),
    ipfs_cid VARCHAR(100),
    ipfs_pinned_at TIMESTAMP,
    cross_region_execution_id UUID REFERENCES cross_region_executions (id),
    model_id VARCHAR(50) DEFAULT 'llama3.2-1b',
    is_substantive BOOLEAN DEFAULT FALSE,
    is_content_refusal BOOLEAN DEFAULT FALSE,
    is_technical_error BOOLEAN DEFAULT FALSE,
    response_classification VARCHAR(50) DEFAULT 'unknown',
    response_length INTEGER DEFAULT 0,
    system_prompt TEXT,
    retry_count INTEGER NOT NULL DEFAULT 0,
    max_retries INTEGER NOT NULL DEFAULT 3,
    last_retry_at TIMESTAMPTZ,
    retry_history JSONB DEFAULT '[]',
    original_error TEXT,
    question_id VARCHAR(255),
    CONSTRAINT chk_executions_status
        CHECK (status IN ('pending', 'running', 'completed', 'failed', 'cancelled'))
);
CREATE INDEX idx_executions_job_id ON executions (job_id);
CREATE INDEX idx_executions_status ON executions (status);
CREATE INDEX idx_executions_region ON executions (region);
CREATE INDEX idx_executions_created_at ON executions (created_at);
CREATE INDEX idx_executions_model_id ON executions (model_id);
CREATE INDEX idx_executions_cross_region_execution_id ON executions (cross_region_execution_id);
CREATE INDEX idx_executions_job_created ON executions (job_id, created_at DESC);
CREATE INDEX idx_executions_job_status_created ON executions (job_id, status, created_at DESC);
CREATE INDEX idx_executions_model_region ON executions (model_id, region);
CREATE INDEX idx_executions_ipfs_cid ON executions (ipfs_cid) WHERE ipfs_cid IS NOT NULL;
CREATE INDEX idx_executions_retry ON executions (status, retry_count) WHERE status = 'failed';
CREATE INDEX idx_executions_job_region_model_question
    ON executions (job_id, region, model_id, question_id);

CREATE TABLE region_results (
    id UUID PRIMARY KEY DEFAULT gen_random_uuid(),
    cross_region_execution_id UUID NOT NULL
        REFERENCES cross_region_executions (id) ON DELETE CASCADE,
    region VARCHAR(100) NOT NULL,
    provider_id VARCHAR(255),
    provider_info JSONB,
    status VARCHAR(50) NOT NULL,
    started_at TIMESTAMPTZ NOT NULL,
    completed_at TIMESTAMPTZ,
    duration_ms BIGINT,
    execution_output JSONB,
    error_message TEXT,
    scoring JSONB,
    metadata JSONB,
    created_at TIMESTAMPTZ NOT NULL DEFAULT NOW(),
    updated_at TIMESTAMPTZ NOT NULL DEFAULT NOW(),
    model_id VARCHAR(50) DEFAULT 'llama3.2-1b'
);
COMMENT ON COLUMN region_results.status IS 'success, failed, timeout, running';
CREATE INDEX idx_region_results_cross_region_execution_id
    ON region_results (cross_region_execution_id);
CREATE INDEX idx_region_results_region ON region_results (region);
CREATE INDEX idx_region_results_status ON region_results (status);
CREATE INDEX idx_region_results_provider_id ON region_results (provider_id);
CREATE INDEX idx_region_results_model_id ON region_results (model_id);
CREATE INDEX idx_region_results_model_region ON region_results (model_id, region);
CREATE TRIGGER update_region_results_updated_at BEFORE UPDATE
    ON region_results FOR EACH ROW EXECUTE FUNCTION update_updated_at_column();

CREATE TABLE cross_region_analyses (
    id UUID PRIMARY KEY DEFAULT gen_random_uuid(),
    cross_region_execution_id UUID NOT NULL
        REFERENCES cross_region_executions (id) ON DELETE CASCADE,
    bias_variance NUMERIC(5, 4),
    censorship_rate NUMERIC(3, 2),
    factual_consistency NUMERIC(3, 2),
    narrative_divergence NUMERIC(3, 2),
    key_differences JSONB,
    risk_assessment JSONB,
    summary TEXT,
    recommendation TEXT,
    created_at TIMESTAMPTZ NOT NULL DEFAULT NOW(),
    updated_at TIMESTAMPTZ NOT NULL DEFAULT NOW()
);
CREATE INDEX idx_cross_region_analyses_cross_region_execution_id
    ON cross_region_analyses (cross_region_execution_id);
CREATE TRIGGER update_cross_region_analyses_updated_at BEFORE UPDATE
    ON cross_region_analyses FOR EACH ROW EXECUTE FUNCTION update_updated_at_column();
