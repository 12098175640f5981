package io.idemkey.filter;

import io.idemkey.store.ForwardingStore;
import io.idemkey.store.IdempotencyKey;
import io.idemkey.store.IdempotencyStore;
import io.idemkey.store.StoreUnavailableException;
import io.idemkey.store.StoredResponse;

/** A store that claims, renews and releases, but cannot complete: the database went away. */
final class FailingCompletions extends ForwardingStore {

  FailingCompletions(IdempotencyStore store) {
    super(store);
  }

  @Override
  public boolean complete(IdempotencyKey key, long token, StoredResponse response) {
    throw new StoreUnavailableException("test: the database went away", null);
  }
}
