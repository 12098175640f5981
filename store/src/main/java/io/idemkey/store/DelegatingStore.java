package io.idemkey.store;

/**
 * A store that forwards every call to the store it decorates; a decorator overrides only what it
 * adds. Closing it closes the decorated store.
 *
 * <p>Thread-safe when the decorated store is.
 */
abstract class DelegatingStore implements IdempotencyStore {

  final IdempotencyStore delegate;

  DelegatingStore(IdempotencyStore delegate) {
    this.delegate = delegate;
  }

  @Override
  public ClaimResult claim(IdempotencyKey key, Fingerprint fingerprint) {
    return delegate.claim(key, fingerprint);
  }

  @Override
  public boolean complete(IdempotencyKey key, long token, StoredResponse response) {
    return delegate.complete(key, token, response);
  }

  @Override
  public boolean release(IdempotencyKey key, long token) {
    return delegate.release(key, token);
  }

  @Override
  public boolean renew(IdempotencyKey key, long token) {
    return delegate.renew(key, token);
  }

  @Override
  public StoreTransaction beginTransaction(IdempotencyKey key, long token) {
    return delegate.beginTransaction(key, token);
  }

  @Override
  public long floor(IdempotencyKey key) {
    return delegate.floor(key);
  }

  @Override
  public StoreTransaction beginInOrder(IdempotencyKey first, IdempotencyKey last) {
    return delegate.beginInOrder(first, last);
  }

  @Override
  public StepStore steps() {
    return delegate.steps();
  }

  @Override
  public boolean knownDown() {
    return delegate.knownDown();
  }

  @Override
  public boolean wakesWaiters() {
    return delegate.wakesWaiters();
  }

  @Override
  public int requestConnections() {
    return delegate.requestConnections();
  }

  @Override
  public Registration watch(IdempotencyKey key, Runnable onSettled) {
    return delegate.watch(key, onSettled);
  }

  @Override
  public int purgeExpired() {
    return delegate.purgeExpired();
  }

  @Override
  public void close() {
    delegate.close();
  }
}
