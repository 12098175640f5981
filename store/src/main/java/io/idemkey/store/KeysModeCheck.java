package io.idemkey.store;

import io.idemkey.migrations.TableName;
import java.time.Duration;
import javax.sql.DataSource;

/**
 * A PostgreSQL store that serves no claim and runs no purge until its keys are known to be its
 * table's ({@link TableKeysMode}). The check is made when the store is built; only a store built
 * while its database could not be reached (without migrations, which would have failed) makes it
 * on first use, and then fails each call with {@link KeysModeMismatchException} if the table's
 * keys differ. Every other call follows a claim, and is forwarded.
 *
 * <p>Thread-safe: once agreed, a volatile read per call; until then, concurrent first calls may
 * each check (the check is idempotent).
 */
final class KeysModeCheck extends DelegatingStore {

  private final DataSource dataSource;
  private final TableName table;
  private final boolean sequenceKeys;
  private final Duration timeout;
  private volatile boolean agreed;

  KeysModeCheck(IdempotencyStore delegate, DataSource dataSource, TableName table,
      boolean sequenceKeys, Duration timeout, boolean agreed) {
    super(delegate);
    this.dataSource = dataSource;
    this.table = table;
    this.sequenceKeys = sequenceKeys;
    this.timeout = timeout;
    this.agreed = agreed;
  }

  private void agree(String operation) {
    if (agreed) {
      return;
    }
    try {
      TableKeysMode.agree(dataSource, table, sequenceKeys, timeout);
    } catch (StoreUnavailableException e) {
      throw new StoreUnavailableException(
          operation + " on " + table + " failed: " + e.getMessage(), e);
    }
    agreed = true;
  }

  /**
   * @throws KeysModeMismatchException if the table's keys turn out to be the other ones
   */
  @Override
  public ClaimResult claim(IdempotencyKey key, Fingerprint fingerprint) {
    agree("claim");
    return delegate.claim(key, fingerprint);
  }

  /**
   * @throws KeysModeMismatchException if the table's keys turn out to be the other ones
   */
  @Override
  public int purgeExpired() {
    agree("purge");
    return delegate.purgeExpired();
  }
}
