-- The request encoding eMAG honours for an account (issue 9, point 1): found by probing
-- (a read with itemsPerPage=1 must return at most one offer, one with type=2 only type-2
-- orders), kept so the probe runs once per account, and cleared to probe again after an
-- encoding-shaped failure. `api_encoding_url` is the API URL it was probed against: a kept
-- encoding counts only while the account's base_url is still that URL. NULL: not probed yet.
-- Values: 'form', 'json-data', 'json' (domain::ApiEncoding). Keep in step with ../sqlite.
ALTER TABLE accounts ADD COLUMN api_encoding TEXT;
ALTER TABLE accounts ADD COLUMN api_encoding_at BIGINT;
ALTER TABLE accounts ADD COLUMN api_encoding_url TEXT;
