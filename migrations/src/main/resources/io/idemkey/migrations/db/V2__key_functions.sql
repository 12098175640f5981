-- One function per operation on one key, so that each is one short call with a plan cached by the
-- session (PL/pgSQL prepares its statements once per connection and keeps generic plans), and its
-- races are handled in one readable place. Every function takes the store's notion of "now"
-- (statement_timestamp(), moved forward by p_shift_us in tests): the database's clock decides
-- leases and expiry for every node (SPEC §5).

-- Claims a key. Answers one row (its OUT parameters):
--   claimed: the new fencing token when the caller now holds the key, else NULL;
--   state, token, fingerprint, expires_at: the row found before the call (NULL if none), so the
--     caller can tell a take-over (state IN_PROGRESS, expired) from a new key, and otherwise what
--     holds the key; the response columns only when the key is completed and live;
--   now: the time the call used.
-- A duplicate of a live key reads and writes nothing else: no row lock, no sequence value, no WAL.
-- Each statement sees what was committed before it ran (READ COMMITTED), so a race lost between
-- the read and the write (an insert or take-over by another node, a release) is seen by the next
-- turn of the loop; the take-over's guard (same token, still expired) makes sure a lease renewed
-- or a key completed in between is never taken. Under REPEATABLE READ or stricter, such a race is
-- a serialization failure instead, which the store runs again.
CREATE FUNCTION "${schema}"."${table}_claim"(
    p_scope text, p_key text, p_fingerprint bytea, p_shift_us bigint, p_lease_us bigint,
    p_defer_flush boolean,
    OUT claimed bigint, OUT state text, OUT token bigint, OUT fingerprint bytea,
    OUT expires_at timestamptz, OUT now timestamptz, OUT response_status integer,
    OUT response_headers bytea, OUT response_body bytea, OUT body_stored boolean)
LANGUAGE plpgsql AS $$
#variable_conflict use_column
DECLARE
    v_lease_end timestamptz;
    v_row "${schema}"."${table}"%ROWTYPE;
BEGIN
    now := statement_timestamp() + p_shift_us * interval '1 microsecond';
    v_lease_end := now + p_lease_us * interval '1 microsecond';
    IF p_defer_flush THEN
        -- The request's own transaction commits later with synchronous_commit on, and WAL is
        -- flushed in order: whatever of the request becomes durable, its claim does too.
        PERFORM set_config('synchronous_commit', 'off', true);
    END IF;
    FOR attempt IN 1..5 LOOP
        SELECT * INTO v_row FROM "${schema}"."${table}" k
            WHERE k.scope = p_scope AND k.idem_key = p_key;
        IF NOT FOUND THEN
            INSERT INTO "${schema}"."${table}" AS k (scope, idem_key, fingerprint, state, token,
                    lease_expires_at, created_at, expires_at)
                VALUES (p_scope, p_key, p_fingerprint, 'IN_PROGRESS',
                    nextval('"${schema}"."${table}_token_seq"'), v_lease_end, now, v_lease_end)
                ON CONFLICT (scope, idem_key) DO NOTHING
                RETURNING k.token INTO claimed;
            IF claimed IS NOT NULL THEN
                RETURN;
            END IF;
        ELSIF v_row.expires_at > now THEN
            state := v_row.state;
            token := v_row.token;
            fingerprint := v_row.fingerprint;
            expires_at := v_row.expires_at;
            IF v_row.state = 'COMPLETED' THEN
                response_status := v_row.response_status;
                response_headers := v_row.response_headers;
                response_body := v_row.response_body;
                body_stored := v_row.body_stored;
            END IF;
            RETURN;
        ELSE
            UPDATE "${schema}"."${table}" k SET fingerprint = p_fingerprint,
                    state = 'IN_PROGRESS',
                    token = nextval('"${schema}"."${table}_token_seq"'),
                    lease_expires_at = v_lease_end, response_status = NULL,
                    response_headers = NULL, response_body = NULL, body_stored = NULL,
                    created_at = now, expires_at = v_lease_end
                WHERE k.scope = p_scope AND k.idem_key = p_key AND k.token = v_row.token
                    AND k.expires_at <= now
                RETURNING k.token INTO claimed;
            IF claimed IS NOT NULL THEN
                state := v_row.state;
                token := v_row.token;
                fingerprint := v_row.fingerprint;
                expires_at := v_row.expires_at;
                RETURN;
            END IF;
        END IF;
    END LOOP;
    -- Five races lost in a row (a key released and claimed again over and over): the caller
    -- answers "in progress" and the client retries.
    state := 'IN_PROGRESS';
    fingerprint := p_fingerprint;
    expires_at := now + interval '1 second';
END
$$;

-- Completes a key held with p_token, storing the response for p_ttl_us. Answers true when stored
-- now, or already stored by this same token (a retry after a commit whose reply was lost); false
-- when the token is no longer current. Notifies the waiting nodes when asked to (delivered at
-- commit).
CREATE FUNCTION "${schema}"."${table}_complete"(
    p_scope text, p_key text, p_token bigint, p_status integer, p_headers bytea, p_body bytea,
    p_body_stored boolean, p_shift_us bigint, p_ttl_us bigint, p_channel text)
RETURNS boolean
LANGUAGE plpgsql AS $$
BEGIN
    UPDATE "${schema}"."${table}" k SET state = 'COMPLETED', lease_expires_at = NULL,
            response_status = p_status, response_headers = p_headers, response_body = p_body,
            body_stored = p_body_stored,
            expires_at = statement_timestamp() + (p_shift_us + p_ttl_us) * interval '1 microsecond'
        WHERE k.scope = p_scope AND k.idem_key = p_key AND k.token = p_token
            AND k.state = 'IN_PROGRESS';
    IF FOUND THEN
        IF p_channel IS NOT NULL THEN
            PERFORM pg_notify(p_channel, p_scope || chr(10) || p_key);
        END IF;
        RETURN true;
    END IF;
    RETURN EXISTS (SELECT 1 FROM "${schema}"."${table}" k
        WHERE k.scope = p_scope AND k.idem_key = p_key AND k.token = p_token
            AND k.state = 'COMPLETED');
END
$$;

-- Releases a key held with p_token (deletes its in-progress row). Answers whether it did, and
-- notifies the waiting nodes when asked to.
CREATE FUNCTION "${schema}"."${table}_release"(
    p_scope text, p_key text, p_token bigint, p_channel text)
RETURNS boolean
LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM "${schema}"."${table}" k
        WHERE k.scope = p_scope AND k.idem_key = p_key AND k.token = p_token
            AND k.state = 'IN_PROGRESS';
    IF NOT FOUND THEN
        RETURN false;
    END IF;
    IF p_channel IS NOT NULL THEN
        PERFORM pg_notify(p_channel, p_scope || chr(10) || p_key);
    END IF;
    RETURN true;
END
$$;
