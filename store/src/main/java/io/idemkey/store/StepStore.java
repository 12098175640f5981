package io.idemkey.store;

import java.util.Optional;

/**
 * The results of steps (SPEC §12): calls to other services that a request holding a key made,
 * each stored as soon as it returned, so that a later run of the same request (the same key and
 * fingerprint) gets the result without calling again.
 *
 * <p>A result belongs to the request that made it: it is found only with the same scope, key and
 * fingerprint, and never by a request that reuses the key for another fingerprint. It outlives a
 * release of the key (the retry resumes after its last completed step) and expires no later than
 * the key would, a time to live after it was stored; {@link #purgeExpired()} then deletes it.
 *
 * <p>Implementations are thread-safe. Every method may throw {@link StoreUnavailableException}
 * when the backing database cannot be reached.
 */
public interface StepStore {

  /**
   * The stored result of step {@code name} of the request ({@code key}, {@code fingerprint}), if
   * a run of it stored one that has not expired.
   *
   * @throws StoreUnavailableException if the store cannot be reached
   */
  Optional<byte[]> find(IdempotencyKey key, Fingerprint fingerprint, String name);

  /**
   * Stores the result of step {@code name}, in its own commit, if {@code token} still holds the
   * key for {@code fingerprint}. A result stored for the same step before is replaced.
   *
   * @return true if stored; false if {@code token} no longer holds the key (the lease was taken
   *     over, or the key was released or completed), in which case nothing changes
   * @throws StoreUnavailableException if the store cannot be reached; the result may or may not
   *     have been stored
   */
  boolean save(
      IdempotencyKey key, long token, Fingerprint fingerprint, String name, byte[] result);

  /**
   * Deletes expired results in bounded batches. Across every instance sharing a database, only
   * one purges at a time.
   *
   * @return the number of results deleted by this call
   * @throws StoreUnavailableException if the store cannot be reached
   */
  int purgeExpired();
}
