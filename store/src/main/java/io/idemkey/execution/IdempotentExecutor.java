package io.idemkey.execution;

import io.idemkey.store.Fingerprint;
import io.idemkey.store.IdempotencyKey;
import io.idemkey.store.IdempotencyStore;
import io.idemkey.store.StoreUnavailableException;
import io.idemkey.store.TransactionAbortedException;
import java.util.List;

/**
 * Runs work once per key, over an {@link IdempotencyStore}: the life of a key without HTTP, which
 * the servlet filter and the message consumers share. The first call with a key claims it (with
 * a fencing token), runs the work with its lease renewed, and stores the result; every later call
 * gets the stored result back, and a call that finds the key held by another run either waits
 * for it (bounded) or is refused ({@link OnInFlight}). Work that throws releases the key, so the
 * next call runs it again.
 *
 * <pre>{@code
 * IdempotentExecutor once = IdempotentExecutor.builder(store).transactional(true).build();
 * Outcome<String> charged = once.execute(key, fingerprint, Codec.text(), attempt -> {
 *   String chargeId = attempt.steps().runText("charge", processor::charge);
 *   try (PreparedStatement insert = attempt.connection().orElseThrow().prepareStatement(...)) {
 *     ...                              // commits with the key's completion, or not at all
 *   }
 *   return chargeId;
 * });
 * }</pre>
 *
 * <p>In transactional mode (SPEC §6) the work runs in a transaction of the store's database,
 * bound to its thread ({@code RequestTransactions}), and the key's completion is written in it:
 * one commit makes the work's writes and the stored result durable together, and a run whose
 * lease was taken over commits nothing.
 *
 * <p>Thread-safe: calls for different keys run at once, each on its caller's thread.
 */
public interface IdempotentExecutor extends AutoCloseable {

  /** A builder of an executor over {@code store}. */
  static ExecutorBuilder builder(IdempotencyStore store) {
    return new ExecutorBuilder(store);
  }

  /**
   * Runs {@code work} for {@code key} unless a run of it completed: then returns that run's
   * result, decoded by {@code codec}.
   *
   * @return what happened, with the result
   * @throws E what {@code work} throws: the key was released, nothing stored (in transactional
   *     mode, the work's writes rolled back)
   * @throws InProgressException if another run holds the key and the call does not wait, or its
   *     wait ran out (or was interrupted: the flag is restored)
   * @throws KeyReusedException if the key is held or completed with another fingerprint
   * @throws LeaseLostException if the work ran but its lease was taken over before it completed:
   *     its result was not stored (in transactional mode, its writes rolled back); the new holder's
   *     result counts
   * @throws TransactionAbortedException in transactional mode, if the work went on after a
   *     failed statement, or the commit was refused for what the transaction did: nothing was
   *     committed and the key was released
   * @throws StoreUnavailableException if the store cannot be reached; if that was while
   *     completing, the key is left to its lease (or, in transactional mode, released)
   * @throws IllegalStateException if the completed key's result was not stored
   */
  <T, E extends Exception> Outcome<T> execute(
      IdempotencyKey key, Fingerprint fingerprint, Codec<T> codec, Work<T, E> work) throws E;

  /**
   * Runs {@code work} for sequence key {@code key} unless the key was handled, for keys that one
   * caller at a time takes in rising order per scope (a partition's offsets, each partition read
   * by one consumer): a scope then costs one row, its floor, the highest key handled, however many
   * keys it carries, and a key at or below it counts as handled.
   *
   * <p>In transactional mode no row is kept per key: the work runs in a transaction whose commit
   * raises the floor to the key, or, if another caller raised it meanwhile (a consumer that lost
   * its partition in a rebalance and still runs), rolls everything back. Nothing is stored of
   * the result, there is no lease, and the work's steps are not stored: each run calls with the
   * same derived key, for the other service to deduplicate. The floor is read once per scope and
   * then kept in memory, so a key below it is answered without a database call; it is read again
   * whenever a run fails, so that a run that failed because another caller had committed the key
   * meanwhile (its writes met the other's rows, or its commit's reply was lost) is {@link
   * Outcome.Kind#USED_UP}, not a failure. Without a
   * transaction the key is claimed as by {@link #execute}, its fingerprint the key's own
   * ({@code Fingerprint.ofKey}): the work's effects are outside the database, so only a claim
   * keeps two callers from running it at once.
   *
   * @return {@link Outcome.Kind#EXECUTED} with the result; {@link Outcome.Kind#USED_UP}, with no
   *     result, if the key was handled (or, when not transactional, {@code execute}'s outcome)
   * @throws E what {@code work} throws: its writes rolled back, the floor unchanged
   * @throws IllegalArgumentException if {@code key} is not a sequence key
   * @throws UnsupportedOperationException in transactional mode, if the store does not keep
   *     sequence keys
   * @throws TransactionAbortedException as for {@link #execute}: nothing was committed
   * @throws StoreUnavailableException if the store cannot be reached: nothing was committed,
   *     unless the commit landed and only its reply was lost; either way the key may be run
   *     again, and the floor says which
   */
  <T, E extends Exception> Outcome<T> executeInOrder(
      IdempotencyKey key, Codec<T> codec, Work<T, E> work) throws E;

  /**
   * Runs {@code work} for each key of {@code keys} that was not handled, keys of one scope in
   * rising order, as {@link #executeInOrder(IdempotencyKey, Codec, Work)} does one, but in one
   * transaction whose commit raises the floor once, to the last key: one commit for them all (a
   * poll's records of one partition). A work that throws rolls back every key's writes. If
   * another caller raised the floor meanwhile, everything is rolled back and the keys above the
   * new floor are run again. Without a transaction each key is claimed and run by itself.
   *
   * @return how many keys' work ran and committed
   * @throws E what {@code work} throws: every key's writes rolled back, the floor unchanged
   * @throws IllegalArgumentException if the keys are not sequence keys of one scope in rising
   *     order
   * @throws InProgressException if other callers kept raising the floor while these keys ran
   */
  <E extends Exception> int executeInOrder(List<IdempotencyKey> keys, InOrderWork<E> work)
      throws E;

  /**
   * Holds a key that the caller claimed ({@code token} from {@link IdempotencyStore#claim}): starts
   * renewing its lease, opens its transaction in transactional mode, and gives it steps. For
   * adapters that settle the key themselves (the servlet filter).
   *
   * @param onLeaseLost called once, on a renewal's thread, if a renewal finds the lease lost; may
   *     be null
   * @param steps told of each step of the run
   * @throws StoreUnavailableException if the transaction could not be opened; the lease is not
   *     renewed then, and the key is the caller's to release
   */
  HeldKey hold(
      IdempotencyKey key, Fingerprint fingerprint, long token, Runnable onLeaseLost,
      StepListener steps);

  /** The store this executor runs over. */
  IdempotencyStore store();

  /** Whether work runs in the store's transaction, which commits with the key's completion. */
  boolean transactional();

  /** Stops renewing leases. The store is the caller's to close. */
  @Override
  void close();
}
