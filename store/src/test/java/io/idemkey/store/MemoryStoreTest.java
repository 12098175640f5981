package io.idemkey.store;

class MemoryStoreTest extends IdempotencyStoreContract {

  private MemoryStore shared;

  @Override
  IdempotencyStore newStore(MutableClock clock) {
    shared = new MemoryStore(clock, TTL, LEASE);
    return shared;
  }

  /** In memory there is no second node: the same instance stands in for it. */
  @Override
  IdempotencyStore storeWithTtl(MutableClock clock, java.time.Duration ttl) {
    return new MemoryStore(clock, ttl, LEASE);
  }

  @Override
  IdempotencyStore secondStore(MutableClock clock) {
    return shared;
  }
}
