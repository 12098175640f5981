package io.idemkey.execution;

import io.idemkey.store.IdempotencyException;

/** The key is held or completed for other work (another fingerprint): nothing ran (SPEC §4). */
public final class KeyReusedException extends IdempotencyException {

  public KeyReusedException(String message) {
    super(message);
  }
}
