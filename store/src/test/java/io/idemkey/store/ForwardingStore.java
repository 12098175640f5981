package io.idemkey.store;

/** A real store, every call forwarded: tests override the one call they make fail or count. */
public class ForwardingStore implements IdempotencyStore {

  protected final IdempotencyStore store;

  public ForwardingStore(IdempotencyStore store) {
    this.store = store;
  }

  @Override
  public ClaimResult claim(IdempotencyKey key, Fingerprint fingerprint) {
    return store.claim(key, fingerprint);
  }

  @Override
  public boolean complete(IdempotencyKey key, long token, StoredResponse response) {
    return store.complete(key, token, response);
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
  public StoreTransaction beginTransaction(IdempotencyKey key, long token) {
    return store.beginTransaction(key, token);
  }

  @Override
  public StepStore steps() {
    return store.steps();
  }

  @Override
  public Registration watch(IdempotencyKey key, Runnable onSettled) {
    return store.watch(key, onSettled);
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
