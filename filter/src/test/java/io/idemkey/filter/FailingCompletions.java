package io.idemkey.filter;

import io.idemkey.store.ClaimResult;
import io.idemkey.store.Fingerprint;
import io.idemkey.store.IdempotencyKey;
import io.idemkey.store.IdempotencyStore;
import io.idemkey.store.StoreUnavailableException;
import io.idemkey.store.StoredResponse;

/** A store that claims, renews and releases, but cannot complete: the database went away. */
class FailingCompletions implements IdempotencyStore {

  private final IdempotencyStore store;

  FailingCompletions(IdempotencyStore store) {
    this.store = store;
  }

  @Override
  public ClaimResult claim(IdempotencyKey key, Fingerprint fingerprint) {
    return store.claim(key, fingerprint);
  }

  @Override
  public boolean complete(IdempotencyKey key, long token, StoredResponse response) {
    throw new StoreUnavailableException("test: the database went away", null);
  }

  @Override
  public boolean release(IdempotencyKey key, long token) {
    return store.release(key, token);
  }

  @Override
  public boolean renew(IdempotencyKey key, long token) {
    return store.renew(key, token);
  }

  @Override
  public io.idemkey.store.StoreTransaction beginTransaction(IdempotencyKey key, long token) {
    return store.beginTransaction(key, token);
  }

  @Override
  public int purgeExpired() {
    return store.purgeExpired();
  }

  @Override
  public void close() {
    store.close();
  }
}
