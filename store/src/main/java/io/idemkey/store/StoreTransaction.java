package io.idemkey.store;

import java.sql.Connection;

/**
 * A database transaction that one request runs in (transactional mode, SPEC §6): the
 * application's writes go through {@link #connection()}, and {@link #commit(StoredResponse)}
 * writes the completion of the request's key in the same transaction, then commits both with one
 * commit. A crash before that commit leaves neither; after it, both. The transaction begins when
 * {@link #connection()} is first called (SPEC §15): until then the request holds no connection.
 *
 * <p>Not thread-safe: it belongs to the request that opened it. Close it in every case; closing
 * rolls back whatever was not committed and returns the connection.
 */
public interface StoreTransaction extends AutoCloseable {

  /**
   * The connection the application writes through, in this transaction; the first call begins
   * it. Its {@code commit()}, {@code close()}, {@code setAutoCommit}, {@code setReadOnly} and
   * {@code setTransactionIsolation} do nothing: the filter commits, and the transaction keeps
   * what it began with. Its {@code rollback()} rolls back the application's writes so far.
   *
   * @throws StoreUnavailableException if no connection could be had within the store's bound,
   *     or the request no longer holds its key
   */
  Connection connection();

  /**
   * Rolls back and releases the request's key, so that its next claim runs the request again.
   *
   * @return true if released; false if the key's token is no longer current
   * @throws StoreUnavailableException if the store cannot be reached
   */
  boolean release();

  /**
   * The step results of the request (SPEC §12) as seen from this transaction: results are read
   * in it once it has begun, and saved in commits of their own that never wait for a connection
   * another request holds.
   */
  StepStore steps();

  /**
   * Completes the key with {@code response} in this transaction and commits.
   *
   * @return true if committed; false if the key's token is no longer current (the lease was taken
   *     over), in which case everything was rolled back
   * @throws TransactionAbortedException if a statement of the application's failed in this
   *     transaction and the application went on, or the commit was refused for what the
   *     transaction did (a constraint checked at commit, a serialization failure, a deadlock):
   *     everything was rolled back
   * @throws StoreUnavailableException if the completion or the commit failed; everything was
   *     rolled back, unless the commit reached the database before its reply was lost
   */
  boolean commit(StoredResponse response);

  /** Rolls back the application's writes. */
  void rollback();

  /** Rolls back what was not committed and returns the connection. */
  @Override
  void close();
}
