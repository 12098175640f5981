package io.idemkey.execution;

import io.idemkey.store.IdempotencyKey;
import io.idemkey.store.StoreUnavailableException;
import java.sql.Connection;
import java.util.Optional;

/**
 * One run of the work of a key, while it holds the key: what the work may ask of it. Handed to
 * {@link Work#run}.
 *
 * <p>Thread-safe, but {@link #connection()} belongs to the thread that runs the work.
 */
public interface Attempt {

  /** The key this run holds. */
  IdempotencyKey key();

  /** The fencing token this run holds its key with; 0 for a key taken in order, which has none. */
  long token();

  /** The steps of this run (SPEC §12): calls to other services, each stored as it returns. */
  Steps steps();

  /**
   * In transactional mode, the connection of the run's transaction, begun on the first call: what
   * the work writes through it commits with the key's completion, or not at all. Its {@code
   * commit()} and {@code close()} do nothing. Empty without transactional mode. Code that takes
   * its connections from a data source wrapped by {@code RequestTransactions.dataSource} gets
   * the same connection on this thread.
   *
   * @throws StoreUnavailableException if no connection could be had within the store's bound
   */
  Optional<Connection> connection();

  /**
   * Whether a renewal found this run's lease taken over: its completion will be refused, so long
   * work may stop early. A false answer promises nothing; the completion's token check decides.
   */
  boolean leaseLost();
}
